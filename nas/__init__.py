"""The search over sharing plans: ``nas`` is the core plus one module per backend.

Core (backend-neutral): :mod:`nas.schema` (objectives, folder layout, statuses), :mod:`nas.config`
(StudyConfig), :mod:`nas.space` (SearchSpace), :mod:`nas.sampler`, :mod:`nas.baselines`,
:mod:`nas.early_stop` (StopRule), :mod:`nas.study` (prepare, open, sampler, stop policy),
:mod:`nas.trial` (one trial's record), :mod:`nas.storage`; results: the :mod:`nas.report`
package (rows, verdict, figures, page, progress lines), :mod:`nas.retrain`. Backends, named after
``--backend``: :mod:`nas.optuna_backend`, and :mod:`nas.ray_search` + :mod:`nas.ray_backend`
(these two alone import Ray). The command line: :mod:`nas.cli` (flags built from the config
classes, and the commands; ``search.py`` wires them together).

The public API below is imported on first use, so ``import nas`` stays light.
"""

from __future__ import annotations

import importlib

__all__ = [
    "SearchSpace",
    "StopRule",
    "StudyConfig",
    "retrain",
    "run_study",
    "trials_dataframe",
    "write_report",
]

_HOMES = {
    "SearchSpace": "nas.space",
    "StopRule": "nas.early_stop",
    "StudyConfig": "nas.config",
    "retrain": "nas.retrain",
    "run_study": "nas.optuna_backend",
    "trials_dataframe": "nas.report",
    "write_report": "nas.report",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
