"""Packing small trials on one card: trials per hour at 1, 2 and 4 trials per card.

A study of small models leaves most of a large GPU idle (WRN-16-1: 0.18M parameters, a few
milliseconds a step, most of it kernel launches), so several trials side by side on one card
should finish more trials per hour. This script measures that through the project's own path,
``nas.optuna_backend.run_study`` with ``workers=N`` on one card (the packing mode of
``search.py study --workers N``: every worker pinned to the card by ``CUDA_VISIBLE_DEVICES``,
each capped at a share of its memory), for a WRN-16-1-sized and a WRN-16-4-sized study.

Same work for every N: the same list of shared plans of the size (drawn once with ``--seed``,
queued in the same order as fixed parameters), the same epochs, data, recipe and seed, early
stopping off, no baselines. Plans of one depth and width have the same conv shapes, so they
cost about the same per epoch.

Trials per hour = trials / span, the span from the first trial's start to the last one's end
(Optuna's timestamps): the steady state a long study sees. The wall time of the whole
``run_study`` call, which also holds starting the worker processes (a few seconds each: Python,
torch, CUDA, the data), is printed beside it. The ratio is against 1 trial per card.

Goal: 4 WRN-16-1-sized trials per card reach >= 2x the trials per hour of 1 per card.

    python bench/bench_packing.py --data DIR --device cuda           # the measurement, one card
    python bench/bench_packing.py --data DIR --device cuda --trials 16 --epochs 5
    python bench/bench_packing.py --quick                           # CPU, tiny: checks it runs (< 60 s idle)
    python bench/bench_packing.py --quick --json /tmp/packing.json

It writes no report (the report needs plotly, which a GPU machine may lack) and imports no Ray.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import random
import tempfile
import time

import _common
import optuna
import torch

from nas.config import StudyConfig
from nas.optuna_backend import run_study
from nas.space import all_plans, params_from_plan
from nas.storage import open_storage, open_study
from nas.study import prepare_study
from softshare.checkpoint import atomic_write_text, dumps
from softshare.data import load_dataset

GOAL = 2.0  # trials/hour of 4 WRN-16-1-sized trials per card over 1 per card
SIZES = {"WRN-16-1": 1, "WRN-16-4": 4}  # width of each study's plans (depth 16)


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/data", help="folder holding cifar-10-batches-py")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--trials", type=int, default=None, help="trials per study (default 8)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 3)")
    p.add_argument(
        "--per-card",
        default=None,
        help="comma-separated trials per card to measure (default 1,2,4)",
    )
    p.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="CIFAR-10 training images (default: all in --data)",
    )
    p.add_argument("--seed", type=int, default=0, help="draws the plan list; the studies' seed")
    p.add_argument("--out", default=None, help="keep the studies here (default: a temp folder)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")
    p.add_argument(
        "--quick",
        action="store_true",
        help="synthetic 8x8 data on the CPU, 2 trials of 1 epoch at 1 and 2 per card: checks it "
        "runs, figures mean nothing",
    )
    args = p.parse_args()
    quick = args.quick
    args.trials = args.trials or (2 if quick else 8)
    args.epochs = args.epochs or (1 if quick else 3)
    args.per_card = [int(n) for n in (args.per_card or ("1,2" if quick else "1,2,4")).split(",")]
    if args.trials < 1 or args.epochs < 1 or min(args.per_card) < 1:
        raise SystemExit("--trials, --epochs and each --per-card must be >= 1.")
    if quick and args.device == "auto":
        args.device = "cpu"
    return args


def _data(args) -> dict:
    if args.quick:
        return {
            "dataset": "synthetic",
            "synthetic_train": 80,
            "synthetic_test": 20,
            "image_size": 8,
            "val_fraction": 0.25,
        }
    return {"root": args.data, "train_subset": args.train_subset, "val_fraction": 0.1}


def _config(args, size: str, per_card: int) -> StudyConfig:
    width = SIZES[size]
    return StudyConfig(
        name=f"pack-{size.lower()}-x{per_card}",
        preset="smoke",
        n_trials=args.trials,
        sampler="random",
        seed=args.seed,
        space={"depths": [16], "widths": [width], "max_templates": 2},
        data=_data(args),
        recipe={"epochs": args.epochs, "batch_size": 128, "schedule": "cosine", "lr": 0.1},
        early_stopping={"enabled": False},
        baselines="none",
        workers=per_card,
        device=args.device,
    )


def plan_list(cfg: StudyConfig, n: int, seed: int) -> list:
    """``n`` shared plans of the study's space, in an order drawn with ``seed``: every N runs these."""
    plans = [p for p in all_plans(cfg.search_space()) or [] if p.is_shared]
    if len(plans) < n:
        raise SystemExit(f"the space holds {len(plans)} shared plans, fewer than --trials {n}.")
    random.Random(seed).shuffle(plans)
    return plans[:n]


def measure(cfg: StudyConfig, folder: pathlib.Path, plans: list, shape) -> dict:
    """Run one study with ``plans`` queued; its span, wall time and trial counts."""
    prepare_study(cfg, folder, shape)
    study = open_study(cfg.name, open_storage(folder, cfg.storage))
    for plan in plans:
        study.enqueue_trial(params_from_plan(plan))
    start = time.perf_counter()
    study = run_study(cfg, folder)
    wall = time.perf_counter() - start
    done = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    span = (
        max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    ).total_seconds()
    states = [t.state for t in done]
    return {
        "trials": len(done),
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        "plans": sorted(t.user_attrs.get("plan", "") for t in done),
        "span_s": round(span, 2),
        "wall_s": round(wall, 2),
        "trials_per_hour": round(len(done) / span * 3600, 1) if span > 0 else None,
    }


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = _common.setup(
        argparse.Namespace(threads=None, repeats=None, warmup=None, device=args.device)
    )
    _common.print_header(
        "trials per hour with 1, 2 and 4 trials per card (run_study --workers N, one card)",
        f"4 WRN-16-1-sized trials per card >= {GOAL:g}x the trials/hour of 1 per card",
        device,
    )
    if device.type == "cuda":
        if device.index:
            raise SystemExit(
                f"--device {args.device}: choose the card with CUDA_VISIBLE_DEVICES={device.index} "
                f"and --device cuda (every worker of the study then packs on it)."
            )
        args.device = "cuda"
        if "CUDA_VISIBLE_DEVICES" not in os.environ and torch.cuda.device_count() > 1:
            # one card: every worker of every N on the first (the in-process N=1 study's card)
            os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    else:
        args.device = "cpu"
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="bench-packing-"))
    shape = None
    rows = []
    for size in SIZES:
        plans = plan_list(_config(args, size, 1), args.trials, args.seed)
        for per_card in args.per_card:
            cfg = _config(args, size, per_card)
            if shape is None:
                data = load_dataset(cfg.data_config())
                shape = (data.num_classes, data.train.images.shape[1])
            row = {"size": size, "per_card": per_card}
            row |= measure(cfg, out / cfg.name, plans, shape)
            rows.append(row)
            print(
                f"  {size} x{per_card}: {row['trials']} trials ({row['failed']} failed) "
                f"in {row['span_s']:.1f} s span, {row['wall_s']:.1f} s wall",
                flush=True,
            )
    _ratios(rows)
    _print(rows, args)
    figure = next(
        (r["ratio"] for r in rows if r["size"] == "WRN-16-1" and r["per_card"] == 4), None
    )
    verdict = "n/a" if figure is None else ("PASS" if figure >= GOAL else "FAIL")
    if args.quick:
        verdict += " (quick: tiny sizes on the CPU, the figure means nothing)"
    print(f"goal: 4 WRN-16-1-sized per card >= {GOAL:g}x of 1 per card: {verdict}")
    if args.json:
        result = {
            "device": _common_device_name(device),
            "torch": torch.__version__,
            "quick": args.quick,
            "trials": args.trials,
            "epochs": args.epochs,
            "rows": rows,
            "goal": GOAL,
            "ratio_wrn_16_1_x4": figure,
            "pass": None if figure is None else figure >= GOAL,
        }
        atomic_write_text(pathlib.Path(args.json), dumps(result))
        print(f"figures written to {args.json}")


def _common_device_name(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def _ratios(rows: list[dict]) -> None:
    for row in rows:
        base = next((r for r in rows if r["size"] == row["size"] and r["per_card"] == 1), None)
        rate, base_rate = row["trials_per_hour"], base and base["trials_per_hour"]
        row["ratio"] = round(rate / base_rate, 2) if rate and base_rate else None


def _print(rows: list[dict], args) -> None:
    print(f"\n{args.trials} trials of {args.epochs} epoch(s) per study, same plans for every N")
    _common.print_table(
        ["study", "per card", "trials", "failed", "span s", "wall s", "trials/h", "vs 1/card"],
        [
            [
                r["size"],
                str(r["per_card"]),
                str(r["trials"]),
                str(r["failed"]),
                f"{r['span_s']:.1f}",
                f"{r['wall_s']:.1f}",
                f"{r['trials_per_hour']:,.0f}" if r["trials_per_hour"] else "n/a",
                f"{r['ratio']:.2f}x" if r["ratio"] else "n/a",
            ]
            for r in rows
        ],
    )


if __name__ == "__main__":
    main()
