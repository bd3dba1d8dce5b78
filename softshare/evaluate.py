"""Measure a model on a split (:func:`evaluate`), and rebuild a trained model from its
checkpoint alone to measure it on the test set.

The evaluation batch is free to be large (no gradients are kept): on CUDA,
:func:`auto_batch_size` takes the whole split where the free memory allows it, so an epoch's
validation is one or a few launches of each layer instead of ten.
"""

from __future__ import annotations

import os
import pathlib

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint
from .data import DataConfig, Split, batches, load_dataset
from .models import SWRN, ModelConfig
from .runtime import autocast_context, resolve_device, resolve_precision

__all__ = ["auto_batch_size", "evaluate", "evaluate_checkpoint", "load"]

CPU_BATCH = 500  # the CPU gains nothing from larger batches, and they cost memory
# Share of the free CUDA memory an evaluation may plan for, and live activations per image in
# units of the largest conv output (block input, BN-ReLU output, conv output, shortcut, sum,
# cuDNN workspace: 8 is a generous bound for a pre-activation block).
FREE_SHARE, LIVE_ACTIVATIONS = 0.5, 8


def auto_batch_size(model: nn.Module, split: Split, precision: str = "fp32") -> int:
    """Images per evaluation batch: 500 on the CPU; on CUDA the whole split where
    ``FREE_SHARE`` of the free memory (the driver's plus the caching allocator's unused blocks,
    at most what the process's memory cap leaves) holds its activations, else the largest power of two that does (the same one every epoch,
    so cuDNN's autotuning is not repeated)."""
    device = next(model.parameters()).device
    n = max(len(split), 1)
    if device.type != "cuda":
        return min(CPU_BATCH, n)
    free, total = torch.cuda.mem_get_info(device)
    allocated = torch.cuda.memory_allocated(device)
    free += torch.cuda.memory_reserved(device) - allocated
    # A process capped at a share of the card (torch.cuda.set_per_process_memory_fraction:
    # packed trials) may use its share, not the card's free memory.
    cap = torch.cuda.get_per_process_memory_fraction(device) * total
    free = max(0, min(free, int(cap) - allocated))
    c, h, w = split.images.shape[1:]
    widest = max(
        (m.out_channels for m in model.modules() if hasattr(m, "out_channels")), default=c
    )
    element = 2 if precision == "bf16" else 4
    per_image = LIVE_ACTIVATIONS * widest * h * w * element + c * h * w * 5  # + uint8, fp32 input
    fits = int(FREE_SHARE * free) // per_image
    if fits >= n:
        return n
    return 1 << max(fits, 1).bit_length() - 1


def evaluate(
    model: nn.Module,
    split: Split,
    mean,
    std,
    *,
    batch_size: int = 0,
    precision: str = "fp32",
    channels_last: bool = True,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) of ``model`` on ``split``, no augmentation.

    ``batch_size``: images per batch; 0 (the default) picks it (:func:`auto_batch_size`).
    """
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0: auto), but got {batch_size=}.")
    device = next(model.parameters()).device
    batch_size = batch_size or auto_batch_size(model, split, precision)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    with torch.no_grad(), autocast_context(device, precision):
        for x, y in batches(
            split,
            batch_size,
            mean=mean,
            std=std,
            generator=None,
            augment=None,
            shuffle=False,
            drop_last=False,
            channels_last=channels_last,
        ):
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = len(split.labels)
    return loss_sum.item() / n, correct.item() / n


def load(path: str | os.PathLike, device: str = "cpu") -> SWRN:
    """A ready model (eval mode, config restored, weights loaded) from a checkpoint file.

    ``model.config`` is its :class:`ModelConfig`; ``model.normalization`` holds the (mean, std)
    that inputs in [0, 1] must be normalised with.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        model = SWRN(ModelConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model_state"])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the stored model config ({str(exc).splitlines()[0]})"
        ) from None
    model.normalization = (tuple(ckpt.get("mean") or ()), tuple(ckpt.get("std") or ()))
    return model.to(resolve_device(device)).eval()


def evaluate_checkpoint(
    path: str | os.PathLike,
    *,
    data_root: str | None = None,
    device: str = "auto",
    split: str = "test",
) -> dict:
    """Loss and accuracy of a checkpoint on its dataset's test (or val) split.

    ``data_root`` overrides where the dataset is read from (the recorded path by default).
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    if not ckpt.get("data_config"):
        raise CheckpointError(f"{path} records no dataset; it cannot be evaluated by the CLI.")
    dcfg = ckpt["data_config"] | ({"root": data_root} if data_root else {})
    data = load_dataset(DataConfig.from_dict(dcfg))
    target = data.test if split == "test" else data.val
    if target is None:
        raise ValueError(f"{path} was trained without a validation split; use --split test.")
    dev = resolve_device(device)
    model = load(path, device=str(dev))
    precision = resolve_precision(ckpt["train_config"].get("precision", "auto"), dev)
    loss, acc = evaluate(model, target.to(dev), data.mean, data.std, precision=precision)
    return {
        "checkpoint": str(pathlib.Path(path)),
        "plan": model.config.plan,
        "split": split,
        "loss": loss,
        "accuracy": acc,
        "images": len(target.labels),
        "epoch": ckpt["epoch"],
        "best_val_acc": ckpt.get("best_val_acc"),
        "precision": precision,
    }
