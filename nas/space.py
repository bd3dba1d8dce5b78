"""The search space over sharing patterns: ranges, presets, and one define-by-run function.

``define_space(trial, space)`` asks the trial for values; ``plan_from_params`` turns them into a
:class:`softshare.SharingPlan` and ``params_from_plan`` goes back.

Design: docs/design.md#nasspace
"""

from __future__ import annotations

import itertools
import json
import pathlib
import random
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from softshare import SharingPlan
from softshare.plan import merge_unshared
from softshare.strict import strict_from_dict
from softshare.validate import is_int

from .schema import has_fixed_plan

__all__ = [
    "SearchSpace",
    "define_space",
    "plan_from_params",
    "params_from_plan",
    "load_space",
    "stage_options",
    "space_size",
    "all_plans",
    "random_plan",
    "smallest_plan",
    "check_budget",
]

ENUMERATE_LIMIT = (
    50_000  # spaces up to this many architectures are listed outright (exact exhaustion)
)

Group = tuple[int, "int | None"]


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: list) -> Any: ...


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the search. depths must be 6N+4 with N >= 2 (16, 22, 28, 40, ...: depth 10 has no
    shareable conv); widths >= 1; bank sizes min_templates..max_templates, capped per group at
    the group's layer count unless allow_large_banks."""

    depths: tuple[int, ...] = (16, 22)
    widths: tuple[int, ...] = (1, 2)
    min_templates: int = 1
    max_templates: int = 4
    allow_unshared_groups: bool = True  # a group may keep plain convs inside a shared net
    allow_cuts: bool = True  # False: one bank per stage, as the paper's SWRN
    allow_large_banks: bool = (
        False  # True: a bank may hold more templates than its group has layers
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "widths", tuple(self.widths))
        if not self.depths or any(not is_int(d) or d < 16 or (d - 4) % 6 for d in self.depths):
            raise ValueError(
                f"depths must be a non-empty list of 6N+4 values >= 16 (16, 22, 28, ...; depth 10 has "
                f"nothing to share), but got depths={list(self.depths)}."
            )
        if not self.widths or any(not is_int(w) or w < 1 for w in self.widths):
            raise ValueError(
                f"widths must be a non-empty list of integers >= 1, but got widths={list(self.widths)}."
            )
        if not is_int(self.min_templates) or self.min_templates < 1:
            raise ValueError(
                f"min_templates must be an integer >= 1, but got min_templates={self.min_templates!r}."
            )
        if not is_int(self.max_templates) or self.max_templates < self.min_templates:
            raise ValueError(
                f"max_templates must be an integer >= min_templates ({self.min_templates}), "
                f"but got max_templates={self.max_templates!r}."
            )
        for name in ("allow_unshared_groups", "allow_cuts", "allow_large_banks"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"{name} must be true or false, but got {name}={getattr(self, name)!r}."
                )
        if len(set(self.depths)) != len(self.depths) or len(set(self.widths)) != len(self.widths):
            raise ValueError(
                f"depths and widths must not repeat values, but got {list(self.depths)} and {list(self.widths)}."
            )

    def template_choices(self, layers: int) -> list[int]:
        """Bank sizes a group of ``layers`` layers may take; 0 = unshared (when allowed)."""
        top = self.max_templates if self.allow_large_banks else min(self.max_templates, layers)
        sizes = list(range(self.min_templates, top + 1))
        if (
            not sizes and not self.allow_unshared_groups
        ):  # min_templates > layers and nothing else allowed
            sizes = [self.min_templates]
        return ([0] if self.allow_unshared_groups else []) + sizes

    def to_dict(self) -> dict:
        data = asdict(self)
        data["depths"], data["widths"] = list(self.depths), list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        return strict_from_dict(cls, data, "search space")


def _shareable(depth: int) -> int:
    return 2 * ((depth - 4) // 6 - 1)


def _has_fixed_plan(trial: Any) -> bool:
    attrs = getattr(trial, "user_attrs", None)
    return bool(attrs and has_fixed_plan(attrs))


def define_space(trial: TrialLike, space: SearchSpace) -> None:
    """Ask ``trial`` for every dimension of ``space``; pure (the trial records the values).

    A baseline trial (user attribute ``baseline``) asks nothing: its plan is fixed."""
    if _has_fixed_plan(trial):
        return
    depth = trial.suggest_categorical("depth", list(space.depths))
    trial.suggest_categorical("width", list(space.widths))
    layers = _shareable(depth)
    for stage in range(1, 4):
        starts = [0] + [
            layer
            for layer in range(1, layers)
            if space.allow_cuts
            and trial.suggest_categorical(f"s{stage}_cut{layer}", [False, True])
        ]
        for group, (start, end) in enumerate(zip(starts, starts[1:] + [layers]), 1):
            trial.suggest_categorical(
                _templates_name(stage, group, end - start), space.template_choices(end - start)
            )


def _templates_name(stage: int, group: int, layers: int) -> str:
    return f"s{stage}_g{group}_L{layers}_templates"


def plan_from_params(params: dict[str, Any]) -> SharingPlan:
    """The plan the values of :func:`define_space` describe (also valid for Ray Tune configs)."""
    depth, width = int(params["depth"]), int(params["width"])
    layers = _shareable(depth)
    stages = []
    for stage in range(1, 4):
        starts = [0] + [
            layer for layer in range(1, layers) if params.get(f"s{stage}_cut{layer}", False)
        ]
        groups = []
        for group, (start, end) in enumerate(zip(starts, starts[1:] + [layers]), 1):
            templates = int(params[_templates_name(stage, group, end - start)])
            groups.append((end - start, templates or None))
        stages.append(tuple(groups))
    return SharingPlan(depth, width, tuple(stages))


def params_from_plan(plan: SharingPlan) -> dict[str, Any]:
    """Values of :func:`define_space` that describe ``plan`` (its canonical groups, one cut before
    each group but the first): ``plan_from_params(params_from_plan(p)) == p``."""
    params: dict[str, Any] = {"depth": plan.depth, "width": plan.width}
    for stage, groups in enumerate(plan.stages, 1):
        start = 0
        for group, (layers, templates) in enumerate(groups, 1):
            if start:
                params[f"s{stage}_cut{start}"] = True
            params[_templates_name(stage, group, layers)] = templates or 0
            start += layers
        for layer in range(1, plan.shareable_per_stage):
            params.setdefault(f"s{stage}_cut{layer}", False)
    return params


# --- the space as a set of architectures -------------------------------------------------------


def stage_options(space: SearchSpace, layers: int) -> list[tuple[Group, ...]]:
    """Every distinct canonical grouping of one stage of ``layers`` shareable convs, in a fixed order."""
    seen: dict[tuple[Group, ...], None] = {}
    for sizes in _compositions(layers) if space.allow_cuts else [(layers,)]:
        for banks in itertools.product(*(space.template_choices(n) for n in sizes)):
            seen.setdefault(
                merge_unshared(tuple((n, t or None) for n, t in zip(sizes, banks))), None
            )
    return list(seen)


def _compositions(n: int) -> list[tuple[int, ...]]:
    """Ordered ways of writing n as a sum of positive parts (2^(n-1) of them)."""
    if n == 0:
        return [()]
    return [(first, *rest) for first in range(1, n + 1) for rest in _compositions(n - first)]


def _shapes(space: SearchSpace) -> list[tuple[int, int, int]]:
    """(depth, width, shared architectures of that shape) for every shape of the space."""
    out = []
    for depth in space.depths:
        options = stage_options(space, _shareable(depth))
        plain = 1 if ((_shareable(depth), None),) in options else 0
        out += [(depth, width, len(options) ** 3 - plain) for width in space.widths]
    return out


def space_size(space: SearchSpace) -> int:
    """How many distinct shared architectures the space holds (plain WRNs are baselines, not counted)."""
    return sum(n for _, _, n in _shapes(space))


def all_plans(space: SearchSpace) -> list[SharingPlan] | None:
    """Every shared architecture of the space, or None when there are more than ENUMERATE_LIMIT."""
    if space_size(space) > ENUMERATE_LIMIT:
        return None
    plans = []
    for depth, width, _ in _shapes(space):
        options = stage_options(space, _shareable(depth))
        for stages in itertools.product(options, repeat=3):
            plan = SharingPlan(depth, width, stages)
            if plan.is_shared:
                plans.append(plan)
    return plans


def random_plan(space: SearchSpace, rng: random.Random) -> SharingPlan:
    """A shared architecture drawn uniformly from the space (each distinct one equally likely)."""
    shapes = _shapes(space)
    depth, width, _ = rng.choices(shapes, weights=[n for _, _, n in shapes])[0]
    options = stage_options(space, _shareable(depth))
    while True:  # rejects only the one plain plan among len(options)**3
        plan = SharingPlan(depth, width, tuple(rng.choice(options) for _ in range(3)))
        if plan.is_shared:
            return plan


def smallest_plan(space: SearchSpace, classes: int = 10, channels: int = 3) -> SharingPlan | None:
    """The shared architecture of ``space`` with the fewest parameters, or None if it has none.

    A plan's parameters are a sum over its stages (each stage's channels are fixed by the
    width), so the cheapest plan of a shape takes each stage's cheapest grouping; when that is
    the plain net, the stage whose cheapest shared grouping costs least extra takes it."""
    best = None
    for depth, width, count in _shapes(space):
        if not count:
            continue
        options = stage_options(space, _shareable(depth))
        choice = [
            min(
                options,
                key=lambda o, s=s: _cost(depth, width, s, o, options[0], classes, channels),
            )
            for s in range(3)
        ]
        plan = SharingPlan(depth, width, tuple(choice))
        if not plan.is_shared:
            shared = [o for o in options if any(t is not None for _, t in o)]
            plan = min(
                (
                    SharingPlan(depth, width, tuple(o if k == s else choice[k] for k in range(3)))
                    for s in range(3)
                    for o in shared
                ),
                key=lambda p: p.num_parameters(classes, channels),
            )
        if best is None or plan.num_parameters(classes, channels) < best.num_parameters(
            classes, channels
        ):
            best = plan
    return best


def _cost(depth: int, width: int, stage: int, option, other, classes: int, channels: int) -> int:
    """Parameters of a plan with ``option`` at ``stage`` and ``other`` at the other stages."""
    stages = tuple(option if k == stage else other for k in range(3))
    return SharingPlan(depth, width, stages).num_parameters(classes, channels)


def check_budget(
    space: SearchSpace, max_params: int | None, shape: tuple[int, ...] = (10, 3)
) -> None:
    """Refuse a parameter budget below every architecture of ``space`` (the study would train
    nothing); ``shape`` is (classes, input channels, ...) of the data. ValueError in one line
    naming the smallest plan and its parameter count."""
    if max_params is None:
        return
    plan = smallest_plan(space, *shape[:2])
    if plan is None:
        return
    smallest = plan.num_parameters(*shape[:2])
    if max_params < smallest:
        raise ValueError(
            f"max_params {max_params:,} is below every architecture of the search space: the "
            f"smallest, {plan.name} ({plan.text}), has {smallest:,} parameters; accepted: "
            f"--max-params {smallest:,} or more, or a space with smaller depths or widths."
        )


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
