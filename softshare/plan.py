"""Sharing plans: which 3x3 convs of a Wide ResNet share a template bank, and how big it is.

:func:`parse_plan` reads a plan's text (``28-10:6x2/6x2/6x2``) or name (``SWRN-28-10-2``,
``WRN-28-10``); :attr:`SharingPlan.text` writes it back.

Design: docs/design.md#softshareplan
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .validate import is_int, require_int

__all__ = ["SharingPlan", "merge_unshared", "parse_plan", "stage_widths"]

_NAMED_SWRN = re.compile(r"^SWRN-(\d+)-(\d+)-(\d+)$", re.IGNORECASE)
_NAMED_WRN = re.compile(r"^WRN-(\d+)-(\d+)$", re.IGNORECASE)
_EXPLICIT = re.compile(r"^(\d+)-(\d+):(.*)$")
_GROUP = re.compile(r"^(\d+)(?:x(\d+))?$")
ACCEPTED_FORMS = "'SWRN-d-k-s', 'WRN-d-k' or an explicit plan such as '28-10:2x3,4/6x2/6'"

Group = tuple[int, "int | None"]  # (consecutive layers, templates; None = unshared)


def stage_widths(width: int) -> tuple[int, int, int]:
    """Output channels of the three stages of a WRN of widening factor ``width``."""
    return (16 * width, 32 * width, 64 * width)


def blocks_per_stage(depth: int) -> int:
    """N = (depth - 4) / 6; raises ValueError unless depth = 6N + 4 with N >= 1."""
    if not is_int(depth) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"depth must be 6N+4 with N >= 1 (10, 16, 22, 28, 40, ...), but got {depth=}."
        )
    return (depth - 4) // 6


@dataclass(frozen=True)
class SharingPlan:
    """Depth, width and the grouping of every stage's shareable convs.

    ``stages`` holds, per stage, a tuple of groups ``(layers, templates)`` in layer order;
    ``templates`` is None for an unshared group. Groups must cover the stage's 2(N - 1)
    shareable convs exactly.

    The form is canonical: adjacent unshared groups are merged on construction (``1,1`` and
    ``2`` build the same plain convs), so two plans that build the same model compare equal
    and have the same :attr:`text`, which the search uses as the architecture's identity.
    """

    depth: int
    width: int
    stages: tuple[tuple[Group, ...], ...]

    def __post_init__(self) -> None:
        n = blocks_per_stage(self.depth)
        object.__setattr__(self, "width", require_int("width", self.width, 1))
        object.__setattr__(self, "depth", int(self.depth))
        stages = tuple(
            merge_unshared(tuple(_normalise_group(g) for g in stage)) for stage in self.stages
        )
        object.__setattr__(self, "stages", stages)
        if len(stages) != 3:
            raise ValueError(f"a plan needs 3 stages, but got {len(stages)} in {self.stages!r}.")
        for index, stage in enumerate(stages, 1):
            covered = sum(layers for layers, _ in stage)
            if covered != 2 * (n - 1):
                raise ValueError(
                    f"stage {index} groups cover {covered} layers, but depth {self.depth} has "
                    f"{2 * (n - 1)} shareable convs per stage; the group sizes must add up to that."
                )

    @property
    def blocks_per_stage(self) -> int:
        return blocks_per_stage(self.depth)

    @property
    def shareable_per_stage(self) -> int:
        return 2 * (self.blocks_per_stage - 1)

    @property
    def text(self) -> str:
        """The explicit text form, e.g. ``28-10:2x3,4/6x2/6``."""
        stages = [
            "-"
            if not stage
            else ",".join(f"{layers}" if t is None else f"{layers}x{t}" for layers, t in stage)
            for stage in self.stages
        ]
        return f"{self.depth}-{self.width}:" + "/".join(stages)

    @property
    def name(self) -> str:
        """``SWRN-d-k-s`` or ``WRN-d-k`` where the plan is a named one, else :attr:`text`."""
        if self.shareable_per_stage == 0 or all(t is None for s in self.stages for _, t in s):
            return f"WRN-{self.depth}-{self.width}"
        sizes = {t for stage in self.stages for _, t in stage}
        if all(len(stage) == 1 for stage in self.stages) and len(sizes) == 1 and None not in sizes:
            return f"SWRN-{self.depth}-{self.width}-{sizes.pop()}"
        return self.text

    @property
    def is_shared(self) -> bool:
        return any(t is not None for stage in self.stages for _, t in stage)

    def templates_per_group(self) -> list[list[int | None]]:
        return [[t for _, t in stage] for stage in self.stages]

    def num_parameters(self, num_classes: int = 10, in_channels: int = 3) -> int:
        """Exact trainable parameter count of the model this plan builds (shared counted once)."""
        widths = stage_widths(self.width)
        total = in_channels * 16 * 9  # stem
        c_in = 16
        for c, stage in zip(widths, self.stages):
            total += (
                2 * c_in + c_in * c * 9 + 2 * c + c * c * 9
            )  # first block: bn1, conv1, bn2, conv2
            total += c_in * c if c_in != c else 0  # 1x1 shortcut
            total += 4 * c * (self.blocks_per_stage - 1)  # two BNs per other block
            for layers, t in stage:
                total += layers * c * c * 9 if t is None else t * c * c * 9 + layers * t
            c_in = c
        return total + 2 * c_in + c_in * num_classes + num_classes  # final BN and linear head

    def multiply_adds(
        self, image_size: int = 32, num_classes: int = 10, in_channels: int = 3
    ) -> int:
        """Multiply-adds of one forward pass on one ``image_size`` square image (convs + head).

        Sharing changes parameters, not compute: a shared conv costs what a plain one does
        (mixing the kernel is once per batch, not per image, and is left out).
        """
        size = image_size
        macs = size * size * 16 * in_channels * 9
        c_in = 16
        for c, stride in zip(stage_widths(self.width), (1, 2, 2)):
            size = (size - 1) // stride + 1
            macs += size * size * c * c_in * 9  # first conv (the stride applies here)
            macs += size * size * c * c_in if c_in != c else 0  # shortcut
            macs += size * size * c * c * 9 * (2 * self.blocks_per_stage - 1)
            c_in = c
        return macs + c_in * num_classes

    def to_dict(self) -> dict:
        return {
            "depth": self.depth,
            "width": self.width,
            "stages": [[[layers, t] for layers, t in stage] for stage in self.stages],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SharingPlan":
        unknown = set(data) - {"depth", "width", "stages"}
        if unknown:
            raise ValueError(
                f"unknown plan keys {sorted(unknown)}; accepted: depth, width, stages."
            )
        return cls(
            data["depth"], data["width"], tuple(tuple(tuple(g) for g in s) for s in data["stages"])
        )


def merge_unshared(stage: tuple[Group, ...]) -> tuple[Group, ...]:
    """``stage`` with each run of adjacent unshared groups joined into one."""
    merged: list[Group] = []
    for layers, templates in stage:
        if templates is None and merged and merged[-1][1] is None:
            merged[-1] = (merged[-1][0] + layers, None)
        else:
            merged.append((layers, templates))
    return tuple(merged)


def _normalise_group(group) -> Group:
    try:
        layers, templates = group
    except (TypeError, ValueError):
        raise ValueError(f"a group is (layers, templates or None), but got {group!r}.") from None
    if not is_int(layers) or layers < 1:
        raise ValueError(f"a group's layers must be an integer >= 1, but got layers={layers!r}.")
    if templates is not None and (not is_int(templates) or templates < 1):
        raise ValueError(
            f"a shared group needs templates >= 1 (write '{layers}' for an unshared group), "
            f"but got templates={templates!r}."
        )
    return (int(layers), None if templates is None else int(templates))


def parse_plan(text: str) -> SharingPlan:
    """Parse ``SWRN-d-k-s``, ``WRN-d-k`` or the explicit text form into a plan."""
    if not isinstance(text, str):
        raise ValueError(f"a plan is text ({ACCEPTED_FORMS}), but got {text!r}.")
    text = text.strip()
    if match := _NAMED_SWRN.match(text):
        depth, width, s = map(int, match.groups())
        if blocks_per_stage(depth) == 1:
            raise ValueError(
                f"{text!r}: depth {depth} has one block per stage and so no shareable conv "
                f"(the first block of a stage stays plain); use WRN-{depth}-{width}, or a depth "
                f"of 16, 22, 28, ..."
            )
        return _uniform(depth, width, s)
    if match := _NAMED_WRN.match(text):
        depth, width = map(int, match.groups())
        return _uniform(depth, width, None)
    if match := _EXPLICIT.match(text):
        depth, width = int(match[1]), int(match[2])
        stages = match[3].split("/")
        if len(stages) != 3:
            raise ValueError(
                f"plan {text!r} has {len(stages)} stages separated by '/'; it needs 3."
            )
        return SharingPlan(depth, width, tuple(_parse_stage(s, text) for s in stages))
    raise ValueError(f"cannot read plan {text!r}; accepted: {ACCEPTED_FORMS}.")


def _uniform(depth: int, width: int, templates: int | None) -> SharingPlan:
    layers = 2 * (blocks_per_stage(depth) - 1)
    stage = ((layers, templates),) if layers else ()
    return SharingPlan(depth, width, (stage, stage, stage))


def _parse_stage(stage: str, text: str) -> tuple[Group, ...]:
    if stage.strip() in ("-", ""):
        return ()
    groups = []
    for token in stage.split(","):
        match = _GROUP.match(token.strip())
        if not match:
            raise ValueError(
                f"cannot read group {token!r} in plan {text!r}; a group is 'LxT' "
                f"(L layers sharing T templates) or 'L' (L unshared layers)."
            )
        groups.append((int(match[1]), None if match[2] is None else int(match[2])))
    return tuple(groups)
