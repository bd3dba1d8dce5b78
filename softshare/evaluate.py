"""Rebuild a trained model from its checkpoint alone, and measure it on the test set."""

from __future__ import annotations

import os
import pathlib

from .checkpoint import CheckpointError, load_checkpoint
from .data import DataConfig, load_dataset
from .models import SWRN, ModelConfig
from .runtime import resolve_device, resolve_precision
from .train import evaluate

__all__ = ["load", "evaluate_checkpoint"]


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
