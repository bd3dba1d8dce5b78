"""Where a trial's accuracy comes from: its own training from scratch, or a trained parent.

``--fidelity scratch`` (the default) trains each plan from a random start; ``--fidelity inherit``
fine-tunes it from a plain parent trained once per depth and width (:func:`ensure_parent`).

Design: docs/design.md#nasfidelity
"""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from softshare import ModelConfig, inherit
from softshare.data import Dataset
from softshare.evaluate import load
from softshare.train import BEST, CHECKPOINT, METRICS, TrainConfig, train

from .config import StudyConfig
from .schema import INHERIT, PARENTS_DIR, SCRATCH, parent_dir
from .space import SearchSpace

__all__ = [
    "ParentDiverged",
    "TrialStart",
    "ensure_parent",
    "load_parent",
    "parent_name",
    "parent_names",
    "parent_runs",
    "trial_recipe",
    "trial_start",
]

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
ENDED = ("complete", "diverged")  # a parent run that ends so is never trained again


def parent_name(depth: int, width: int) -> str:
    """The parent of every plan of depth ``depth`` and width ``width``: ``WRN-d-k``."""
    return f"WRN-{depth}-{width}"


def parent_names(space: SearchSpace) -> list[str]:
    """Every parent a study over ``space`` may need: one per (depth, width)."""
    return [parent_name(d, w) for d in space.depths for w in space.widths]


def trial_recipe(cfg: StudyConfig, recipe: TrainConfig | None = None) -> TrainConfig:
    """The recipe a trial trains with: ``recipe`` (default: the study's, runtime fields as the
    backend set them) from scratch; with inherit, the fine-tuning: ``inherit_epochs`` epochs,
    cosine from ``inherit_lr`` (as bench/bench_inherit.py measured it), the rest unchanged."""
    recipe = cfg.train_config() if recipe is None else recipe
    if cfg.fidelity != INHERIT:
        return recipe
    return replace(recipe, epochs=cfg.inherit_epochs, lr=cfg.inherit_lr, schedule="cosine")


# --- parents ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(folder: pathlib.Path):
    """One process at a time trains or checks the parent in ``folder`` (an flock on a file
    there): a second worker waits, then finds it trained."""
    import fcntl

    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ended_run(folder: pathlib.Path) -> dict | None:
    """The parent's run (metrics.json) when it ended and its weights are on disk, else None."""
    try:
        run = json.loads((folder / METRICS).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict) or run.get("status") not in ENDED:
        return None
    return run if (folder / CHECKPOINT).is_file() else None


class ParentDiverged(RuntimeError):
    """A parent whose training diverged: no trial of its depth and width can start, so a study
    stops at once (one line) rather than failing trial after trial."""


def ensure_parent(
    cfg: StudyConfig,
    study_dir: pathlib.Path,
    data: Dataset,
    name: str,
    recipe: TrainConfig | None = None,
) -> dict:
    """Parent ``name`` of the study in ``study_dir``, trained if it is not yet (resuming a killed
    run at its last epoch), with ``recipe`` (default: the study's; its runtime fields say where);
    returns its run (metrics.json: status, epochs_run, best_val_acc, train_seconds, ...).
    :class:`ParentDiverged` (one line) for a parent that diverged: nothing can inherit from it."""
    folder = parent_dir(study_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        run = _ended_run(folder)
        if run is None:
            log.info("training parent %s in %s", name, folder)
            model_config = ModelConfig(
                name, num_classes=data.num_classes, in_channels=data.train.images.shape[1]
            )
            result = train(
                model_config,
                cfg.train_config() if recipe is None else recipe,
                data,
                data_config=cfg.data_config(),
                out_dir=folder,
                resume=True,
            )
            run = {k: v for k, v in result.to_dict().items() if k != "coefficients"}
            (folder / BEST).unlink(missing_ok=True)  # children inherit the last epoch's weights
    if run["status"] != "complete":
        raise ParentDiverged(
            f"parent {name} of study {cfg.name!r} {run['status']} ({run.get('stop_reason') or '-'}); "
            f"inherit needs a trained parent: change the recipe (e.g. --lr) or use --fidelity scratch"
        )
    return run


def load_parent(study_dir: pathlib.Path, name: str, device: str = "cpu") -> nn.Module:
    """The trained parent ``name`` of the study in ``study_dir`` (its last epoch's weights);
    FileNotFoundError (one line) when the study has none finished."""
    folder = parent_dir(study_dir, name)
    run = _ended_run(folder)
    if run is None or run["status"] != "complete":
        raise FileNotFoundError(
            f"{study_dir} has no trained parent {name} ({folder}: none, or not finished); only an "
            f"inherit study trains parents, for the depths and widths its trials need"
        )
    return load(folder / CHECKPOINT, device=device)


def parent_runs(study_dir: str | pathlib.Path) -> list[dict]:
    """Every parent the study has on disk, by name: ``name``, ``status`` (complete, diverged,
    running: being trained or killed mid-run), ``epochs_run``, ``best_val_acc``,
    ``final_val_acc``, ``train_seconds`` (from its metrics.json)."""
    out = []
    for path in sorted((pathlib.Path(study_dir) / PARENTS_DIR).glob(f"*/{METRICS}")):
        try:
            run = json.loads(path.read_text())
            out.append(
                {"name": path.parent.name}
                | {
                    k: run[k]
                    for k in (
                        "status",
                        "epochs_run",
                        "best_val_acc",
                        "final_val_acc",
                        "train_seconds",
                    )
                }
            )
        except (OSError, ValueError, KeyError, TypeError):  # being written, or edited by hand
            continue
    return out


# --- a trial's start ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialStart:
    """How a trial starts: the recipe it trains with, the model it starts from (None: a random
    initialisation) and what it records of it (user attributes, nas.schema.START_ATTRS)."""

    recipe: TrainConfig
    model: nn.Module | None = None
    attrs: dict = field(default_factory=dict)


def trial_start(
    cfg: StudyConfig,
    study_dir: pathlib.Path,
    data: Dataset,
    model_config: ModelConfig,
    recipe: TrainConfig | None = None,
) -> TrialStart:
    """The start of a trial of ``model_config``'s plan. Scratch: ``recipe`` (default: the
    study's), no initial model. Inherit: the parent of its depth and width (trained now if it
    is not yet, :func:`ensure_parent`), the plan inherited from it (spare templates seeded by the
    study's seed), the fine-tuning recipe (:func:`trial_recipe`)."""
    recipe = cfg.train_config() if recipe is None else recipe
    if cfg.fidelity != INHERIT:
        return TrialStart(recipe, None, {"fidelity": SCRATCH})
    plan = model_config.sharing_plan
    name = parent_name(plan.depth, plan.width)
    run = ensure_parent(cfg, study_dir, data, name, recipe)
    parent = load_parent(study_dir, name)
    child = inherit(parent, plan, generator=torch.Generator().manual_seed(cfg.seed))
    errors = [g["relative_error"] for g in child.projection_errors]
    attrs = {
        "fidelity": INHERIT,
        "inherit_epochs": cfg.inherit_epochs,
        "inherit_lr": cfg.inherit_lr,
        "parent": name,
        "parent_val_acc": run["best_val_acc"],
        "parent_epochs": run["epochs_run"],
        "projection_error": max(errors, default=0.0),
    }
    return TrialStart(trial_recipe(cfg, recipe), child, attrs)
