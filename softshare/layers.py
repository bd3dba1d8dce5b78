"""Soft parameter-sharing layers: a bank of conv templates and convolutions that mix them.

    bank = TemplateBank(4, 64, 64, 3)
    model.conv2 = SConv2d(bank, stride=1, padding=1)

Design: docs/design.md#softsharelayers
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .validate import require_int

__all__ = ["TemplateBank", "SConv2d", "parameter_groups", "init_coefficients_orthogonal"]


class TemplateBank(nn.Module):
    """A bank of ``num_templates`` conv kernels of shape (out_channels, in_channels, k, k).

    The single parameter ``templates`` has shape (T, out, in, k, k). Each template is
    initialised independently like an ordinary conv kernel (Kaiming normal, fan-in).
    """

    def __init__(
        self,
        num_templates: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_templates", num_templates),
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
        ):
            setattr(self, name, require_int(name, value, 1))  # numpy ints stored as ints
        shape = (self.num_templates, self.out_channels, self.in_channels) + (self.kernel_size,) * 2
        self.templates = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Each template on its own, as if it were the kernel of a plain conv: a unit-norm
        # coefficient vector then gives the mixed kernel the same variance (paper, Sec. 3).
        for template in self.templates.data:
            nn.init.kaiming_normal_(template, mode="fan_in", nonlinearity="relu")

    def mix(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Kernel ``sum_j coefficients[j] * templates[j]``, one tensordot (no loop over T)."""
        return torch.tensordot(coefficients, self.templates, dims=1)

    def extra_repr(self) -> str:
        k = self.kernel_size
        return (
            f"templates={self.num_templates}x({self.out_channels}, {self.in_channels}, {k}, {k}), "
            f"params={self.templates.numel():,}"
        )


class SConv2d(nn.Module):
    """A convolution whose kernel is a learned mix of the templates of a shared ``bank``.

    Argument names follow ``nn.Conv2d``; in/out channels and kernel size come from the bank.
    The layer owns only its coefficient vector (length T); the bank is registered as a
    submodule, so it counts once in ``model.parameters()`` however many layers share it.
    """

    def __init__(
        self,
        bank: TemplateBank,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(bank, TemplateBank):
            raise ValueError(f"bank must be a TemplateBank, but got {type(bank).__name__}.")
        if groups != 1:
            raise ValueError(f"groups must be 1 for a shared conv, but got {groups=}.")
        self.bank = bank
        self.in_channels = bank.in_channels
        self.out_channels = bank.out_channels
        self.kernel_size = (bank.kernel_size, bank.kernel_size)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        device = device if device is not None else bank.templates.device
        dtype = dtype if dtype is not None else bank.templates.dtype
        self.coefficients = nn.Parameter(
            torch.empty(bank.num_templates, device=device, dtype=dtype)
        )
        self.bias = (
            nn.Parameter(torch.empty(self.out_channels, device=device, dtype=dtype))
            if bias
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Alone, a layer gets a random unit-norm vector; models that share a bank among
        # several layers re-initialise them jointly with init_coefficients_orthogonal.
        nn.init.normal_(self.coefficients)
        with torch.no_grad():
            self.coefficients.div_(self.coefficients.norm().clamp_min(1e-12))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def weight(self) -> torch.Tensor:
        """The mixed kernel this layer convolves with, shape (out, in, k, k)."""
        return self.bank.mix(self.coefficients)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Match the input's layout so the conv kernel does not reorder activations.
            weight = weight.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        k = self.kernel_size[0]
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size=({k}, {k}), stride={self.stride}, "
            f"padding={self.padding}, coefficients={self.bank.num_templates} (mixes a shared bank)"
        )


def init_coefficients_orthogonal(layers: list[SConv2d]) -> None:
    """Jointly initialise the coefficients of the layers sharing one bank, as the paper's code.

    The (layers x templates) matrix is drawn orthogonal: with at least as many templates as
    layers each layer's vector has unit norm and the vectors are mutually orthogonal, so the
    layers start as different as the bank allows.
    """
    if not layers:
        return
    num_templates = layers[0].coefficients.numel()
    if any(layer.coefficients.numel() != num_templates for layer in layers):
        raise ValueError("layers given to init_coefficients_orthogonal must share one bank size.")
    matrix = torch.empty(len(layers), num_templates)
    nn.init.orthogonal_(matrix)
    with torch.no_grad():
        for layer, row in zip(layers, matrix):
            layer.coefficients.copy_(row)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer groups: weight decay everywhere except on sharing coefficients.

    The paper applies no weight decay to the coefficients: decay would pull every layer's mix
    towards zero and fight the template norms instead of regularising the templates.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, but got {weight_decay=}.")
    coefficient_ids = {id(m.coefficients) for m in model.modules() if isinstance(m, SConv2d)}
    decay, no_decay = [], []
    for param in model.parameters():  # parameters() already yields each shared tensor once
        (no_decay if id(param) in coefficient_ids else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
