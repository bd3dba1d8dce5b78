"""Retrain a frontier member at full budget, then measure it once on the test set.

The search selected on validation accuracy only; the test set is read here, once per seed,
after training ends. Results land in ``<study>/retrain/<trial>/``: one folder per seed with
checkpoints, metrics and ``test.json``, and ``summary.json`` with mean and spread.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import statistics
from dataclasses import replace

import torch

from softshare import ModelConfig, inherit, parse_plan
from softshare.checkpoint import atomic_write_text, dumps
from softshare.data import DataConfig, load_dataset
from softshare.evaluate import evaluate, load
from softshare.models import to_channels_last
from softshare.runtime import resolve_device
from softshare.train import TrainConfig, train

from .fidelity import load_parent, parent_name
from .replicates import plan_rows
from .report.results import front_rows, knee_row, trial_rows
from .schema import RETRAIN_DIR, retrain_dir
from .study import open_existing

__all__ = ["pick", "parse_count", "retrain", "retrain_dir", "PICK_FORMS"]

PICK_FORMS = "knee, best, trial:N or max-params:SIZE (e.g. max-params:5M, max-params:250k)"
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_count(text: str) -> int:
    """``5M`` -> 5,000,000; ``250k`` -> 250,000; ``1.5e6`` -> 1,500,000."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmg]?)\s*", text.lower())
    if not match:
        raise ValueError(
            f"cannot read a parameter count from {text!r}; write e.g. 5M, 250k or 1500000."
        )
    return int(float(match[1]) * _SUFFIX[match[2]])


def _describe(row: dict) -> str:
    return f"trial {row['trial']} ({row['params']:,} params, val {row['val_acc']:.2%})"


def pick(rows: list[dict], rule: str) -> dict:
    """The trial a pick rule names; ValueError (with the nearest options) if none fits."""
    front = front_rows(rows)
    if not front:
        raise ValueError("the study has no completed trial to pick from; let it run longer.")
    if rule == "knee":
        return knee_row(rows)
    if rule == "best":
        return max(front, key=lambda r: (r["val_acc"], -r["params"]))
    if rule.startswith("trial:"):
        return _pick_trial(rows, front, rule[len("trial:") :])
    if rule.startswith("max-params:"):
        budget = parse_count(rule[len("max-params:") :])
        fitting = [r for r in front if r["params"] <= budget]
        if not fitting:
            nearest = ", ".join(_describe(r) for r in sorted(front, key=lambda r: r["params"])[:3])
            raise ValueError(
                f"no frontier member has <= {budget:,} parameters; the smallest are: {nearest}."
            )
        return max(fitting, key=lambda r: (r["val_acc"], -r["params"]))
    raise ValueError(f"unknown pick {rule!r}; accepted: {PICK_FORMS}.")


def _pick_trial(rows: list[dict], front: list[dict], text: str) -> dict:
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"trial:N needs a trial number, but got trial:{text}.") from None
    row = next((r for r in rows if r["trial"] == number), None)
    if row is None:  # a replicate run: its plan's row (rows hold one per architecture)
        row = next(
            (r for r in rows if any(s["trial"] == number for s in r.get("seeds") or ())), None
        )
    if row is None or not row["plan"]:
        options = ", ".join(_describe(r) for r in front[:5])
        raise ValueError(f"the study has no trial {number}; frontier members: {options}.")
    if row["state"] != "complete":
        raise ValueError(
            f"trial {number} is {row['status']} ({row['reason'] or 'no result'}); pick a completed one, "
            f"e.g. {_describe(front[0])}."
        )
    if row["status"] == "duplicate":
        return next(r for r in rows if r["trial"] == row["duplicate_of"])
    return row


def _data_config(study_data: DataConfig, full_train: bool, train_subset: int | None) -> DataConfig:
    # Full budget: the whole training split (the search may have used a subset), the same
    # validation split for monitoring, or none with --full-train (train + validation).
    return replace(
        study_data,
        train_subset=train_subset,
        val_fraction=0.0 if full_train else study_data.val_fraction,
    )


def retrain(
    folder: str | pathlib.Path,
    rule: str,
    recipe: TrainConfig,
    *,
    seeds: int = 1,
    full_train: bool = False,
    train_subset: int | None = None,
    data_root: str | None = None,
    progress_factory=None,
    from_parent: bool = False,
) -> dict:
    """Train the picked trial ``seeds`` times with ``recipe`` and test each once; returns the summary.

    ``from_parent``: start each seed from :func:`softshare.inherit` of the study's trained parent
    of the plan's depth and width (an inherit study's ``parents/WRN-d-k``; FileNotFoundError in
    one line when it has none) instead of a random initialisation; its seeds get their own
    folders (``from-parent-seed-K``). Re-running resumes: finished seeds are kept, an
    interrupted one continues from its checkpoint.
    """
    folder = pathlib.Path(folder)
    cfg, study = open_existing(folder)
    row = pick(plan_rows(trial_rows(study)), rule)  # the front of the plans' means
    parent = _parent_of(folder, row["plan"]) if from_parent else None  # before any data is read
    dcfg = _data_config(cfg.data_config(), full_train, train_subset)
    if data_root:
        dcfg = replace(dcfg, root=data_root)
    data = load_dataset(dcfg)
    model_config = ModelConfig(
        row["plan"], num_classes=data.num_classes, in_channels=data.train.images.shape[1]
    )
    out = retrain_dir(folder, row["trial"])
    runs = []
    for k in range(seeds):
        seed_cfg = replace(recipe, seed=recipe.seed + k)
        seed_dir = out / f"{'from-parent-' if parent else ''}seed-{seed_cfg.seed}"
        progress = progress_factory(f"[seed {seed_cfg.seed}]") if progress_factory else None
        result = train(
            model_config,
            seed_cfg,
            data,
            data_config=dcfg,
            out_dir=seed_dir,
            resume=True,
            progress=progress,
            initial=_inherited(parent, model_config, seed_cfg.seed),
        )
        runs.append(_test_once(seed_dir, result, data, seed_cfg))
    summary = _summary(row, rule, runs, dcfg, recipe, full_train)
    summary["from_parent"] = parent.config.sharing_plan.name if parent is not None else None
    atomic_write_text(out / "summary.json", dumps(summary))
    return summary


def retrained_baselines(folder: str | pathlib.Path, but: int | None = None) -> list[dict]:
    """The summaries (``retrain/NNNN/summary.json``) of the study's retrained baselines, trial
    ``but`` left out, fewest parameters first; unreadable ones are skipped."""
    out = []
    for path in sorted((pathlib.Path(folder) / RETRAIN_DIR).glob("[0-9]*/summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("baseline") and summary.get("trial") != but:
            out.append(summary)
    return sorted(out, key=lambda s: s["params"])


def mean_se_text(summary: dict) -> str:
    """'91.20% ± 0.15 (SE, 3 seeds)' for a retrain summary; the bare mean with one seed."""
    n = sum(r["test_acc"] is not None for r in summary["seeds"])
    se = summary.get("test_acc_se")
    if se is None and n > 1 and summary.get("test_acc_std") is not None:
        se = summary["test_acc_std"] / math.sqrt(n)  # a summary written before test_acc_se
    spread = f" ± {100 * se:.2f} (SE, {n} seeds)" if se is not None else f" ({n} seed)"
    return f"{summary['test_acc_mean']:.2%}{spread}"


def _parent_of(folder: pathlib.Path, plan_text: str):
    """The study's trained parent of the plan's depth and width (nas.fidelity)."""
    plan = parse_plan(plan_text)
    return load_parent(folder, parent_name(plan.depth, plan.width))


def _inherited(parent, model_config: ModelConfig, seed: int):
    """The plan started from ``parent`` (None: a random initialisation), spare templates seeded."""
    if parent is None:
        return None
    return inherit(
        parent, model_config.sharing_plan, generator=torch.Generator().manual_seed(seed)
    )


def _test_once(seed_dir: pathlib.Path, result, data, recipe: TrainConfig) -> dict:
    """Test accuracy of the final model, computed once and then read back from test.json.

    Measured as the run validated: on the recipe's device, in the precision it trained in
    (``result.precision``, ``auto`` resolved), with its memory format and evaluation batch."""
    path = seed_dir / "test.json"
    if (
        path.exists()
        and (saved := __import__("json").loads(path.read_text())).get("epochs_run")
        == result.epochs_run
    ):
        return saved
    device = resolve_device(recipe.device)
    model = load(seed_dir / "checkpoint.pt", device=str(device))
    if recipe.channels_last:
        to_channels_last(model)
    loss, acc = evaluate(
        model,
        data.test.to(device),
        data.mean,
        data.std,
        batch_size=recipe.eval_batch_size,
        precision=result.precision or "fp32",
        channels_last=recipe.channels_last,
    )
    record = {
        "seed_dir": str(seed_dir),
        "status": result.status,
        "epochs_run": result.epochs_run,
        "test_acc": acc,
        "test_loss": loss,
        "final_val_acc": result.final_val_acc,
        "best_val_acc": result.best_val_acc,
        "train_seconds": result.train_seconds,
        "device": result.device,
        "precision": result.precision,
    }
    atomic_write_text(path, dumps(record))
    return record


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _summary(
    row: dict, rule: str, runs: list[dict], dcfg: DataConfig, recipe: TrainConfig, full_train: bool
) -> dict:
    test_mean, test_std = _spread([r["test_acc"] for r in runs])
    val_mean, val_std = _spread([r["final_val_acc"] for r in runs])
    tested = sum(r["test_acc"] is not None for r in runs)
    return {
        "trial": row["trial"],
        "pick": rule,
        "plan": row["plan"],
        "plan_name": row["plan_name"],
        "params": row["params"],
        "search_val_acc": row["val_acc"],
        "seeds": runs,
        "test_acc_mean": test_mean,
        "test_acc_std": test_std,
        # the standard error of the mean over the seeds (None with one seed)
        "test_acc_se": test_std / math.sqrt(tested) if tested > 1 else None,
        "baseline": bool(row.get("baseline")),
        "val_acc_mean": val_mean,
        "val_acc_std": val_std,
        "full_train": full_train,
        "data_config": dcfg.to_dict(),
        "recipe": recipe.to_dict(),
    }
