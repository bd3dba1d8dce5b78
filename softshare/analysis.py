"""What the coefficients say: per-bank layer similarity, the paper's evidence of recurrence.

For a bank shared by L layers, the L x L matrix of absolute cosine similarities between the
layers' coefficient vectors shows which layers compute (almost) the same function: near-1
blocks could be folded into a loop (Savarese & Maire 2019, Sec. 4.2, Fig. 3).
"""

from __future__ import annotations

import torch
from torch import nn

from .models import shared_groups

__all__ = ["coefficient_matrices", "layer_similarity"]


def layer_similarity(coefficients: torch.Tensor) -> torch.Tensor:
    """|cos| between the rows of a (layers x templates) matrix; 1 on the diagonal."""
    if coefficients.dim() != 2:
        raise ValueError(
            f"coefficients must be a (layers x templates) matrix, but got shape {tuple(coefficients.shape)}."
        )
    unit = coefficients.double() / coefficients.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (unit @ unit.T).abs().clamp(max=1.0).float()


def coefficient_matrices(model: nn.Module) -> list[dict]:
    """One entry per bank, in model order: its layers' names and (layers x templates) coefficients."""
    names = {id(m): name for name, m in model.named_modules()}
    out = []
    for bank, layers in shared_groups(model):
        matrix = torch.stack([layer.coefficients.detach().float().cpu() for layer in layers])
        out.append(
            {
                "bank": names.get(id(bank), ""),
                "layers": [names[id(layer)] for layer in layers],
                "templates": bank.num_templates,
                "coefficients": matrix.tolist(),
                "similarity": layer_similarity(matrix).tolist(),
            }
        )
    return out
