"""The search space over sharing patterns: ranges, presets, and one define-by-run function.

``define_space(trial, space)`` only asks the trial for values (no computation), so Optuna's
samplers and Ray Tune's OptunaSearch drive the same space; ``plan_from_params`` turns the
values into a :class:`softshare.SharingPlan`.

Dimensions: depth, width, whether the net shares at all (plain WRNs compete on the same
front), and per stage the cuts between consecutive shareable convs (which layers form a
group) and each group's bank size (0 = that group stays unshared).
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from softshare.configs import strict_from_dict
from softshare import SharingPlan

__all__ = ["SearchSpace", "PRESETS", "define_space", "plan_from_params", "load_space"]


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: list) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the search. depths must be 6N+4 (10, 16, 22, 28, 40, ...); widths >= 1."""

    depths: tuple[int, ...] = (10, 16)
    widths: tuple[int, ...] = (1, 2)
    min_templates: int = 1
    max_templates: int = 4
    allow_unshared_groups: bool = True   # a group may keep plain convs inside a shared net
    allow_plain: bool = True             # plain WRNs (nothing shared) are in the space
    allow_cuts: bool = True              # False: one bank per stage, as the paper's SWRN

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "widths", tuple(self.widths))
        if not self.depths or any(not _is_int(d) or d < 10 or (d - 4) % 6 for d in self.depths):
            raise ValueError(f"depths must be a non-empty list of 6N+4 values >= 10 (10, 16, 22, 28, ...), "
                             f"but got depths={list(self.depths)}.")
        if not self.widths or any(not _is_int(w) or w < 1 for w in self.widths):
            raise ValueError(f"widths must be a non-empty list of integers >= 1, but got widths={list(self.widths)}.")
        if not _is_int(self.min_templates) or self.min_templates < 1:
            raise ValueError(f"min_templates must be an integer >= 1, but got min_templates={self.min_templates!r}.")
        if not _is_int(self.max_templates) or self.max_templates < self.min_templates:
            raise ValueError(f"max_templates must be an integer >= min_templates ({self.min_templates}), "
                             f"but got max_templates={self.max_templates!r}.")
        for name in ("allow_unshared_groups", "allow_plain", "allow_cuts"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, but got {name}={getattr(self, name)!r}.")
        if len(set(self.depths)) != len(self.depths) or len(set(self.widths)) != len(self.widths):
            raise ValueError(f"depths and widths must not repeat values, but got {list(self.depths)} and {list(self.widths)}.")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["depths"], data["widths"] = list(self.depths), list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        return strict_from_dict(cls, data, "search space")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Presets. smoke: seconds per trial on CPU (tests, demos). cpu: what a 2-core CPU can search on a
# CIFAR-10 subset in about an hour. paper: the paper's ranges (WRN-28-10 family), for GPUs.
# Depth 10 is left out: with one block per stage it has no shareable conv, so every depth-10
# sample would be the same plain WRN.
PRESETS: dict[str, SearchSpace] = {
    "smoke": SearchSpace(depths=(16,), widths=(1,), max_templates=3),
    "cpu": SearchSpace(depths=(16, 22), widths=(1, 2), max_templates=4),
    "paper": SearchSpace(depths=(16, 22, 28), widths=(4, 8, 10), max_templates=6),
}


def define_space(trial: TrialLike, space: SearchSpace) -> None:
    """Ask ``trial`` for every dimension of ``space``; pure (the trial records the values)."""
    depth = trial.suggest_categorical("depth", list(space.depths))
    trial.suggest_categorical("width", list(space.widths))
    if space.allow_plain and not trial.suggest_categorical("shared", [True, False]):
        return
    layers = 2 * ((depth - 4) // 6 - 1)
    sizes = list(range(space.min_templates, space.max_templates + 1))
    for stage in range(1, 4):
        group = 0
        for layer in range(layers):
            cut = layer > 0 and space.allow_cuts and trial.suggest_categorical(f"s{stage}_cut{layer}", [False, True])
            if layer == 0 or cut:
                group += 1
                name = f"s{stage}_g{group}_templates"
                if space.allow_unshared_groups:  # 0 = this group keeps plain convs
                    trial.suggest_categorical(name, [0, *sizes])
                else:
                    trial.suggest_int(name, space.min_templates, space.max_templates)


def plan_from_params(params: dict[str, Any]) -> SharingPlan:
    """The plan the values of :func:`define_space` describe (also valid for Ray Tune configs)."""
    depth, width = int(params["depth"]), int(params["width"])
    layers = 2 * ((depth - 4) // 6 - 1)
    if not params.get("shared", True):
        stage = ((layers, None),) if layers else ()
        return SharingPlan(depth, width, (stage, stage, stage))
    stages = []
    for stage in range(1, 4):
        groups: list[list] = []
        for layer in range(layers):
            if layer == 0 or params.get(f"s{stage}_cut{layer}", False):
                templates = int(params[f"s{stage}_g{len(groups) + 1}_templates"])
                groups.append([0, templates or None])
            groups[-1][0] += 1
        stages.append(tuple((n, t) for n, t in groups))
    return SharingPlan(depth, width, tuple(stages))


def load_space(path: str | pathlib.Path, base: SearchSpace | None = None) -> SearchSpace:
    """Ranges from a small JSON or TOML file; keys not given keep ``base`` (a preset)'s values."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no search space file at {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read search space file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"search space file {path} must hold a table/object of ranges.")
    merged = (base or SearchSpace()).to_dict() | data
    return SearchSpace.from_dict(merged)
