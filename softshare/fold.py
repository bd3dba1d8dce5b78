"""Fold near-recurrent layers: layers of a bank whose coefficient vectors are almost parallel
share one vector, and the bank shrinks to one template per distinct layer.

Entry points: :func:`fold_model` and :func:`fold_checkpoint`.

Design: docs/design.md#softsharefold
"""

from __future__ import annotations

import copy

import torch

from .analysis import layer_similarity
from .models import SWRN, ModelConfig, count_parameters, shared_groups
from .plan import SharingPlan

__all__ = ["cluster_layers", "fold_model", "fold_checkpoint"]


def cluster_layers(similarity: torch.Tensor, threshold: float) -> list[list[int]]:
    """Greedy clusters of layer indices: each joins the first cluster whose first member is
    at least ``threshold`` similar to it, in layer order."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], but got {threshold=}.")
    clusters: list[list[int]] = []
    for i in range(similarity.shape[0]):
        home = next((c for c in clusters if similarity[c[0], i] >= threshold), None)
        if home is None:
            clusters.append([i])
        else:
            home.append(i)
    return clusters


def _fold_bank(bank, layers, clusters: list[list[int]]) -> None:
    """Rewrite ``bank`` with one template per cluster and the layers' coefficients to match."""
    matrix = torch.stack([layer.coefficients.detach().double() for layer in layers])
    directions, scales = [], torch.zeros(len(layers), dtype=torch.float64)
    for members in clusters:
        rows = matrix[members]
        u = torch.linalg.svd(rows, full_matrices=False).Vh[0]  # the cluster's common direction
        if (rows @ u).sum() < 0:
            u = -u
        directions.append(u)
        scales[members] = rows @ u
    templates = torch.tensordot(torch.stack(directions), bank.templates.detach().double(), dims=1)
    with torch.no_grad():
        bank.templates = torch.nn.Parameter(templates.to(bank.templates.dtype))
        bank.num_templates = len(clusters)
        for index, members in enumerate(clusters):
            for i in members:
                vector = torch.zeros(len(clusters), dtype=torch.float64)
                vector[index] = scales[i]
                layers[i].coefficients = torch.nn.Parameter(
                    vector.to(layers[i].coefficients.dtype)
                )


def _folded_plan(plan: SharingPlan, sizes: list[int]) -> SharingPlan:
    """The same grouping with the new bank sizes, in bank order."""
    sizes = iter(sizes)
    stages = tuple(
        tuple((n, None if t is None else next(sizes)) for n, t in stage) for stage in plan.stages
    )
    return SharingPlan(plan.depth, plan.width, stages)


def fold_model(model: SWRN, threshold: float = 0.98) -> tuple[SWRN, list[dict]]:
    """A folded copy of ``model`` and, per bank, what changed (clusters, templates, params)."""
    folded = copy.deepcopy(model).cpu()
    report, sizes = [], []
    for bank, layers in shared_groups(folded):
        matrix = torch.stack([layer.coefficients.detach().float() for layer in layers])
        clusters = cluster_layers(layer_similarity(matrix), threshold)
        before = bank.num_templates
        if len(clusters) < before:
            _fold_bank(bank, layers, clusters)
        sizes.append(bank.num_templates)
        report.append(
            {
                "layers": len(layers),
                "clusters": clusters,
                "templates_before": before,
                "templates_after": bank.num_templates,
            }
        )
    plan = _folded_plan(model.config.sharing_plan, sizes)
    config = ModelConfig(
        plan.text, num_classes=model.config.num_classes, in_channels=model.config.in_channels
    )
    rebuilt = SWRN(config)
    rebuilt.load_state_dict(folded.state_dict())
    assert count_parameters(rebuilt) == plan.num_parameters(config.num_classes, config.in_channels)
    return rebuilt.eval(), report


def fold_checkpoint(path, out, threshold: float = 0.98) -> list[dict]:
    """Fold the model in checkpoint ``path`` and save it as a checkpoint at ``out``."""
    from .checkpoint import load_checkpoint, save_checkpoint
    from .evaluate import load

    ckpt = load_checkpoint(path)
    folded, report = fold_model(load(path), threshold)
    keep = {
        k: v
        for k, v in ckpt.items()
        if k not in ("format", "version", "optimizer_state", "scheduler_state")
    }
    save_checkpoint(
        out,
        keep
        | {
            "model_config": folded.config.to_dict(),
            "model_state": folded.state_dict(),
            "folded_from": str(path),
            "fold_threshold": threshold,
            "status": "folded",
        },
    )
    return report
