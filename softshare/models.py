"""Shared Wide ResNets (SWRN) built from a sharing plan.

:class:`SWRN` is a pre-activation Wide ResNet whose shareable 3x3 convs take their kernels
from template banks; :class:`ModelConfig`, stored with every checkpoint, rebuilds it.

Design: docs/design.md#softsharemodels
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SConv2d, TemplateBank, init_coefficients_orthogonal
from .plan import SharingPlan, parse_plan, stage_widths
from .strict import strict_from_dict
from .validate import require_int

__all__ = [
    "ModelConfig",
    "SWRN",
    "build_model",
    "count_parameters",
    "shared_groups",
    "to_channels_last",
]


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model: plan text (any accepted form), classes, input channels."""

    plan: str
    num_classes: int = 10
    in_channels: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", parse_plan(self.plan).text)  # validates, canonical form
        for name in ("num_classes", "in_channels"):
            object.__setattr__(self, name, require_int(name, getattr(self, name), 1))

    @property
    def sharing_plan(self) -> SharingPlan:
        return parse_plan(self.plan)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return strict_from_dict(cls, data, "model config")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv1-BN-ReLU-conv2 plus identity or 1x1 shortcut."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        conv1: nn.Module | None = None,
        conv2: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv1 if conv1 is not None else _conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = conv2 if conv2 is not None else _conv3x3(c_out, c_out)
        needs_projection = c_in != c_out or stride != 1
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if needs_projection else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # As in the reference WRN, a projection shortcut reads the pre-activated input.
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


def _stage_convs(c: int, stage_plan: tuple) -> tuple[list[nn.Module], nn.ModuleList]:
    """The shareable convs of one stage, in layer order, and the stage's banks."""
    convs: list[nn.Module] = []
    banks = nn.ModuleList()
    for layers, templates in stage_plan:
        if templates is None:
            convs.extend(_conv3x3(c, c) for _ in range(layers))
            continue
        bank = TemplateBank(templates, c, c, 3)
        group = [SConv2d(bank, stride=1, padding=1) for _ in range(layers)]
        init_coefficients_orthogonal(group)
        banks.append(bank)
        convs.extend(group)
    return convs, banks


class SWRN(nn.Module):
    """A Wide ResNet whose shareable 3x3 convs follow a :class:`SharingPlan`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        plan = config.sharing_plan
        self.stem = nn.Conv2d(config.in_channels, 16, 3, padding=1, bias=False)
        stages, c_in = [], 16
        for c, stride, stage_plan in zip(stage_widths(plan.width), (1, 2, 2), plan.stages):
            convs, _ = _stage_convs(c, stage_plan)
            blocks = [BasicBlock(c_in, c, stride)]
            blocks += [
                BasicBlock(c, c, 1, convs[2 * i], convs[2 * i + 1])
                for i in range(plan.blocks_per_stage - 1)
            ]
            stages.append(nn.Sequential(*blocks))
            c_in = c
        self.stage1, self.stage2, self.stage3 = stages
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, config.num_classes)
        self._init_plain_weights()

    def _init_plain_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = F.relu(self.bn(x))
        # a mean, not adaptive_avg_pool2d: the same average, and its CUDA backward is not on
        # torch's list of nondeterministic kernels, so a GPU run can be reproduced bit for bit
        x = x.mean((2, 3))
        return self.fc(x)


def shared_groups(model: nn.Module) -> list[tuple[TemplateBank, list[SConv2d]]]:
    """Every bank of ``model`` with the SConv2d layers that mix it, in module order."""
    groups: dict[int, tuple[TemplateBank, list[SConv2d]]] = {}
    for module in model.modules():
        if isinstance(module, SConv2d):
            groups.setdefault(id(module.bank), (module.bank, []))[1].append(module)
    return list(groups.values())


def build_model(
    plan: str | SharingPlan | ModelConfig, num_classes: int = 10, in_channels: int = 3
) -> SWRN:
    """Build an SWRN from ``"SWRN-28-10-6"``, ``"WRN-28-10"``, explicit plan text, a plan or a config."""
    if isinstance(plan, ModelConfig):
        return SWRN(plan)
    text = plan.text if isinstance(plan, SharingPlan) else plan
    return SWRN(ModelConfig(text, num_classes=num_classes, in_channels=in_channels))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameter values; a bank shared by many layers counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Put the 4-D conv weights in channels_last layout, in place.

    ``model.to(memory_format=torch.channels_last)`` refuses a model with template banks: their
    5-D (T, out, in, k, k) tensor has no channels_last form. SConv2d lays out its mixed kernel
    to match its input instead.
    """
    for param in model.parameters():
        if param.dim() == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)
    return model
