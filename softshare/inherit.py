"""Start a sharing plan from a trained parent: each bank the best low-rank fit of the parent's kernels.

    child = inherit(parent, "SWRN-28-10-2")
    child.projection_errors   # [{"stage", "layers", "templates", "relative_error"}, ...]

Design: docs/design.md#softshareinherit
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import SConv2d
from .models import SWRN, ModelConfig
from .plan import SharingPlan, parse_plan

__all__ = ["inherit"]


def _shareable(model: SWRN) -> list[list[nn.Module]]:
    """Per stage, the shareable 3x3 convs in layer order (conv1, conv2 of blocks 2..N)."""
    out = []
    for stage in (model.stage1, model.stage2, model.stage3):
        convs = []
        for block in list(stage)[1:]:
            convs += [block.conv1, block.conv2]
        out.append(convs)
    return out


def _kernel(conv: nn.Module) -> torch.Tensor:
    """The kernel a conv applies: a plain conv's weight, or a shared conv's mixed kernel."""
    return conv.weight.detach().double()


def _copy_fixed_parts(parent: SWRN, child: SWRN) -> None:
    """Everything but the shareable convs, as it is: stem, first blocks, BNs, shortcuts, head."""
    for name in ("stem", "bn", "fc"):
        getattr(child, name).load_state_dict(getattr(parent, name).state_dict())
    for p_stage, c_stage in zip(
        (parent.stage1, parent.stage2, parent.stage3), (child.stage1, child.stage2, child.stage3)
    ):
        for index, (p_block, c_block) in enumerate(zip(p_stage, c_stage)):
            names = ["bn1", "bn2"] + (["conv1", "conv2"] if index == 0 else [])
            names += ["shortcut"] if p_block.shortcut is not None else []
            for name in names:
                getattr(c_block, name).load_state_dict(getattr(p_block, name).state_dict())


@torch.no_grad()
def _fit_group(
    kernels: list[torch.Tensor], convs: list[nn.Module], generator: torch.Generator | None
) -> float | None:
    """Set ``convs`` (one child group) from the parent's ``kernels``; the relative error of the
    fit for a shared group, None for an unshared one."""
    if not isinstance(convs[0], SConv2d):  # unshared: the kernels as they are
        for conv, kernel in zip(convs, kernels):
            conv.weight.copy_(kernel.to(conv.weight.dtype))
        return None
    bank = convs[0].bank
    layers, templates = len(convs), bank.num_templates
    matrix = torch.stack(kernels).reshape(layers, -1)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    rank = min(templates, layers)
    fitted = torch.zeros((templates, matrix.shape[1]), dtype=torch.float64)
    fitted[:rank] = s[:rank, None] * vh[:rank]
    if templates > rank:  # beyond the rank: random kernels that no layer uses yet
        spare = torch.empty((templates - rank, *bank.templates.shape[1:]), dtype=torch.float64)
        for kernel in spare:
            nn.init.kaiming_normal_(
                kernel, mode="fan_in", nonlinearity="relu", generator=generator
            )
        fitted[rank:] = spare.reshape(templates - rank, -1)
    bank.templates.copy_(fitted.reshape(bank.templates.shape).to(bank.templates.dtype))
    for i, conv in enumerate(convs):
        row = torch.zeros(templates, dtype=torch.float64)
        row[:rank] = u[i, :rank]
        conv.coefficients.copy_(row.to(conv.coefficients.dtype))
    total = float((s**2).sum())
    return math.sqrt(float((s[rank:] ** 2).sum()) / total) if total > 0 else 0.0


def inherit(
    parent: nn.Module, plan: str | SharingPlan, *, generator: torch.Generator | None = None
) -> SWRN:
    """A model of ``plan`` whose weights come from ``parent``, a trained SWRN (plain or shared)
    of the same depth and width; its class count and input channels are the parent's.

    Each shared group's bank is the best rank-T fit of the parent's kernels of that group
    (exact when T >= the group's layers); the rest is copied. The child's
    ``projection_errors`` lists, per shared group, ``stage`` (1-3), ``layers`` (first, last + 1
    in the stage's shareable convs), ``templates`` and ``relative_error`` (||M - fit|| / ||M||).
    ``generator`` seeds the spare templates of a bank larger than its group. ValueError (one
    line) for a parent that is not an SWRN or has another depth or width.
    """
    if not isinstance(parent, SWRN):
        raise ValueError(f"parent must be a softshare SWRN, but got {type(parent).__name__}.")
    plan = parse_plan(plan) if isinstance(plan, str) else plan
    mine = parent.config.sharing_plan
    if (plan.depth, plan.width) != (mine.depth, mine.width):
        raise ValueError(
            f"parent {mine.name} has depth {mine.depth} and width {mine.width}, but plan "
            f"{plan.name} has depth {plan.depth} and width {plan.width}; inherit needs a parent "
            f"of the plan's depth and width."
        )
    config = ModelConfig(
        plan.text,
        num_classes=parent.config.num_classes,
        in_channels=parent.config.in_channels,
    )
    child = SWRN(config).to(next(parent.parameters()).device)
    _copy_fixed_parts(parent, child)
    errors = []
    for stage, (p_convs, c_convs, groups) in enumerate(
        zip(_shareable(parent), _shareable(child), plan.stages), 1
    ):
        start = 0
        for layers, templates in groups:
            kernels = [_kernel(conv) for conv in p_convs[start : start + layers]]
            error = _fit_group(kernels, c_convs[start : start + layers], generator)
            if error is not None:
                errors.append(
                    {
                        "stage": stage,
                        "layers": (start, start + layers),
                        "templates": templates,
                        "relative_error": error,
                    }
                )
            start += layers
    child.projection_errors = errors
    return child.train(parent.training)
