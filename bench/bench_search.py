"""Search efficiency: Pareto hypervolume reached against compute spent, with and without early stopping.

Two studies through the project's public API (nas.config.StudyConfig + nas.optuna_backend.run_study),
identical except that one has the Pareto-aware early-stopping rule on and the other has it off
(``early_stopping={"enabled": False}``): same space, data, recipe, sampler and seed. The study
with ES is given more trials (``--es-trials``, default 2x): the compute it saves is spent on
more architectures, and it is judged at the point where it has spent half the compute of the
study without. The sampler defaults to "random": its proposals do not depend on the results,
so both studies see the same architecture sequence (the script checks) and the only
difference is what early stopping does to it. TPE (--sampler tpe) reacts to results, so its two
sequences part ways and the comparison then measures "search with ES" against "search
without" as a whole.

Compute is counted per trial in proposal order: epochs trained (primary: it does not depend on
the machine's load) and training seconds (secondary). A duplicate (an architecture already
trained, its result reused) costs nothing. Hypervolume is nas.report.results.hypervolume over the
trials so far, in (validation accuracy, log10 params), with one reference for both studies:
accuracy 0 and 10x the largest parameter count the space can produce. Only completed trials
count toward it; a trial stopped early keeps its partial curve but is not on the front.

Goal: within half the epochs the study without ES spent in all, the ES study reaches >= 95% of
the final hypervolume of the study without.

Also printed, per study: the share of trained trials that were new architectures (the sampler
wrapper's draws and what it turned down), the share of trained shared plans that save no
parameters against their plain WRN, and, on the study without ES (every trial trained in full),
the searched front against the baselines' front (both queue the same paper baselines, a
quarter of the no-ES trials) at equal compute and overall, with the dominance table and the
report's one-sentence verdict.

    python bench/bench_search.py --data /work/data                   # the 5,000-image task
    python bench/bench_search.py --data /work/data --train-subset 1000   # the 1,000-image task
    python bench/bench_search.py --data /work/data --out /tmp/search  # keep studies and a CSV
    python bench/bench_search.py --data /work/data --sampler tpe --trials 16
    python bench/bench_search.py --quick                              # checks the script runs (< 60 s)

The studies run one after the other, each in one run_study call. They are not interleaved trial
by trial as the timing scripts in bench/ interleave their contenders: each call would make a
new sampler. Epochs, the primary measure, do not depend on the load; seconds do, so read them
next to the load average in the header.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import pathlib
import tempfile
import time

import _common
import optuna
import torch

from nas.baselines import baseline_budget
from nas.config import StudyConfig
from nas.optuna_backend import run_study
from nas.report.results import HV_REFERENCE_FACTOR, hypervolume, trial_rows
from nas.report.verdict import verdict
from nas.schema import OVER_BUDGET, PROPOSAL_ATTR
from nas.space import SearchSpace
from softshare import SharingPlan, parse_plan
from softshare.runtime import resolve_device

HV_GOAL, COMPUTE_GOAL = 0.95, 0.50
RUNS = ("no ES", "ES")  # display names; study names below
STUDY_NAMES = {"no ES": "search-no-es", "ES": "search-es"}
CSV_FILE = "search_trials.csv"


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        default="/work/data",
        help="folder holding cifar-10-batches-py (default /work/data)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="keep both studies and the per-trial CSV in DIR (default: a temp dir)",
    )
    p.add_argument(
        "--sampler",
        default="random",
        choices=("random", "tpe", "nsga2"),
        help="both studies' sampler (default random: same architecture sequence in both)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trials of the study without ES (default 12; quick 6)",
    )
    p.add_argument(
        "--es-trials",
        type=int,
        default=None,
        help="trials of the study with ES (default 2x --trials: stopped trials are cheap, so the "
        "ES study evaluates more architectures for its compute)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="full budget of a trial in epochs (default 6; quick 3)",
    )
    p.add_argument(
        "--min-epochs",
        type=int,
        default=None,
        help="first rung of the ES study (default: the rule's, a quarter of the budget, at least 2)",
    )
    p.add_argument(
        "--baseline-seeds",
        type=int,
        default=1,
        help="seeds per baseline (the study's noise yardstick; default 1: none, as before)",
    )
    p.add_argument(
        "--confirm-seeds",
        type=int,
        default=0,
        help="fresh seeds the final front is confirmed with (default 0: no confirmation)",
    )
    p.add_argument(
        "--eta",
        type=int,
        default=3,
        help="ES reduction factor (default 3: one rung, epoch 2 of 6)",
    )
    p.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="stratified CIFAR-10 training images (default 5000; quick: 300 synthetic)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.02,
        help="share of CIFAR-10's 50,000 training images held out for validation (default 0.02: 1,000)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="both studies' seed (sampler and training; default 0)"
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu | auto | cuda | cuda:N (default cpu: the task is a CPU one)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) (default: torch's choice)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="synthetic 8x8 data, 6 trials of 3 epochs: checks the script runs, figures mean nothing",
    )
    args = p.parse_args()
    # (quick, full). 5,000 images: with 1,000 the accuracy after one epoch is near chance (0.10-0.16)
    # and says nothing of the final ranking (measured 2026-11-25, docs/benchmarks.md).
    defaults = {"trials": (6, 12), "epochs": (3, 6), "train_subset": (300, 5000)}
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.es_trials is None:
        args.es_trials = 2 * args.trials
    for name in ("trials", "es_trials", "epochs", "min_epochs", "train_subset"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}.")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, but got {args.threads}.")
    return args


# ----------------------------------------------------------------------------- the two studies


def _base_config(args) -> StudyConfig:
    """The study both runs share, made as the ``study`` command makes one (flags merged into a
    preset by StudyConfig.from_flags); ValueError (from StudyConfig) names any bad value."""
    flags = {
        "n_trials": args.trials,
        "sampler": args.sampler,
        "seed": args.seed,
        "device": args.device,
        "recipe.epochs": args.epochs,
        "early_stopping.eta": args.eta,
        # one run per architecture unless asked (the figures recorded before issue 22 were so);
        # --baseline-seeds 2 gives the rule its seed-noise margin
        "baseline_seeds": getattr(args, "baseline_seeds", 1),
        "confirm_seeds": getattr(args, "confirm_seeds", 0),
    }
    if args.min_epochs is not None:
        flags["early_stopping.min_epochs"] = args.min_epochs
    if args.quick:  # the smoke preset's generated images, at 8x8: no download, a second a trial
        return StudyConfig.from_flags(
            "base",
            flags
            | {
                "preset": "smoke",
                "space.depths": [16],
                "space.widths": [1],
                "space.max_templates": 2,
                "data.synthetic_train": args.train_subset,
                "data.synthetic_test": 50,
                "data.val_fraction": 0.2,
                "data.image_size": 8,
                "recipe.batch_size": 64,
            },
        )
    return StudyConfig.from_flags(
        "base",
        flags
        | {
            "preset": "cpu",
            "space.depths": getattr(args, "depths", None) or [22],
            "space.widths": [1],
            "space.max_templates": getattr(args, "max_templates", None) or 3,
            "data.dataset": "cifar10",
            "data.root": args.data,
            "data.train_subset": args.train_subset,
            "data.val_fraction": args.val_fraction,
            "recipe.batch_size": 128,
            "recipe.lr": 0.1,
            "recipe.schedule": "cosine",
        },
    )


def _configs(base: StudyConfig, es_trials: int) -> dict[str, StudyConfig]:
    """The two studies: the same config but for the name, early_stopping.enabled and the ES
    study's number of trials; both queue the same baselines (a quarter of the no-ES trials)."""
    base = base.with_flags({"baselines": f"paper:{baseline_budget(base.n_trials)}"})
    return {
        "no ES": base.with_flags({"name": STUDY_NAMES["no ES"], "early_stopping.enabled": False}),
        "ES": base.with_flags(
            {"name": STUDY_NAMES["ES"], "n_trials": es_trials, "early_stopping.enabled": True}
        ),
    }


class _TrialLines:
    """A run_study reporter that prints one line per finished trial (the nas reporter prints epochs too)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def trial_start(self, number: int, attrs: dict) -> None:
        pass

    def epoch(self, number: int, m) -> None:
        pass

    def trial_end(self, number: int, status: str, study: optuna.Study) -> None:
        r = next(r for r in trial_rows(study) if r["trial"] == number)
        acc = f"{r['val_acc']:.3f}" if r["val_acc"] is not None else "  -  "
        print(
            f"{self.label:<6} trial {number:>3}  {r['plan_name']:<24} {r['params'] or 0:>9,} params  "
            f"{status:<9} val acc {acc}  {_epochs_spent(r):>2} epochs  {_seconds_spent(r):6.1f} s",
            flush=True,
        )


def _run_both(
    configs: dict[str, StudyConfig], root: pathlib.Path
) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Each study in one run_study call (per-trial calls would re-seed the sampler and repeat its
    first proposal); rows (with each trial's ``proposal`` record) and wall seconds per study.
    Over-budget records (proposals never trained) are left out of the rows."""
    rows, wall = {}, {}
    for name, cfg in configs.items():
        start = time.perf_counter()
        study = run_study(cfg, root / cfg.name, reporter=_TrialLines(name))
        wall[name] = time.perf_counter() - start
        proposals = {
            t.number: t.user_attrs.get(PROPOSAL_ATTR) for t in study.get_trials(deepcopy=False)
        }
        rows[name] = [
            r | {"proposal": proposals[r["trial"]]}
            for r in trial_rows(study)
            if r["status"] != OVER_BUDGET
        ]
    return rows, wall


# ----------------------------------------------------------------------------- measures


def _epochs_spent(row: dict) -> int:
    """Epochs this trial trained; a duplicate reuses another trial's result and trains none."""
    return 0 if row["status"] in ("duplicate", OVER_BUDGET) else int(row["epochs"] or 0)


def _seconds_spent(row: dict) -> float:
    return 0.0 if row["status"] == "duplicate" else float(row["train_seconds"] or 0.0)


def _cumulative(values: list[float]) -> list[float]:
    out, total = [], 0.0
    for v in values:
        total += v
        out.append(total)
    return out


def _space_max_params(space: SearchSpace, num_classes: int = 10, in_channels: int = 3) -> int:
    """Largest parameter count the space can produce: deepest, widest, and either plain or every
    conv its own group with the largest bank it may hold (t templates per conv cost t kernels)."""
    depth, width = max(space.depths), max(space.widths)
    layers = 2 * ((depth - 4) // 6 - 1)
    bank = (
        max(space.template_choices(1)) or None
        if space.allow_cuts
        else max(space.template_choices(layers)) or None
    )
    groups = ((1, bank),) * layers if space.allow_cuts else ((layers, bank),)
    return max(
        SharingPlan(depth, width, (groups,) * 3).num_parameters(num_classes, in_channels),
        parse_plan(f"WRN-{depth}-{width}").num_parameters(num_classes, in_channels),
    )


def _hv_curve(rows: list[dict], ref: float) -> list[float]:
    """Hypervolume after each trial, in trial order."""
    return [hypervolume(rows[:k], max_params=ref) for k in range(1, len(rows) + 1)]


def _hv_within(epochs_cum: list[float], hv: list[float], budget: float) -> tuple[float, int]:
    """(hypervolume, trials) of the longest prefix whose cumulative epochs fit in ``budget``."""
    k = sum(1 for e in epochs_cum if e <= budget + 1e-9)
    return (hv[k - 1] if k else 0.0), k


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


# ----------------------------------------------------------------------------- output


def _summaries(rows: dict[str, list[dict]], ref: float) -> dict[str, dict]:
    out = {}
    for name, rs in rows.items():
        out[name] = {
            "epochs": _cumulative([_epochs_spent(r) for r in rs]),
            "seconds": _cumulative([_seconds_spent(r) for r in rs]),
            "macs": _cumulative([_epochs_spent(r) * (r["macs"] or 0) for r in rs]),
            "hv": _hv_curve(rs, ref),
        }
    return out


def _checkpoints(n: int) -> list[int]:
    return sorted({max(1, round(n * f)) for f in (0.25, 0.5, 0.75, 1.0)})


def _print_by_proposals(s: dict[str, dict], n: int) -> None:
    print(
        "\nhypervolume after each quarter of the no-ES study's proposals (the ES study's first proposals are "
        "the same ones with the random sampler; cumulative compute; epochs are load-independent)"
    )
    rows = []
    for k in _checkpoints(n):
        a, b = s["no ES"], s["ES"]
        rows.append(
            [
                str(k),
                f"{a['epochs'][k - 1]:.0f}",
                f"{a['seconds'][k - 1]:.0f}",
                f"{a['hv'][k - 1]:.4f}",
                f"{b['epochs'][k - 1]:.0f}",
                f"{b['seconds'][k - 1]:.0f}",
                f"{b['hv'][k - 1]:.4f}",
                _pct(_ratio(b["hv"][k - 1], a["hv"][k - 1])),
                _pct(_ratio(b["epochs"][k - 1], a["epochs"][k - 1])),
            ]
        )
    _common.print_table(
        [
            "proposals",
            "no-ES epochs",
            "no-ES s",
            "no-ES HV",
            "ES epochs",
            "ES s",
            "ES HV",
            "HV ES/no-ES",
            "epochs ES/no-ES",
        ],
        rows,
    )


def _print_by_compute(s: dict[str, dict]) -> None:
    total = s["no ES"]["epochs"][-1]
    print(
        "\nhypervolume at equal compute (budget in epochs, as a share of the no-ES study's total)"
    )
    rows = []
    for f in (0.25, 0.5, 0.75, 1.0):
        budget = f * total
        hv_a, k_a = _hv_within(s["no ES"]["epochs"], s["no ES"]["hv"], budget)
        hv_b, k_b = _hv_within(s["ES"]["epochs"], s["ES"]["hv"], budget)
        rows.append(
            [
                f"{100 * f:.0f}%",
                f"{budget:.0f}",
                f"{hv_a:.4f} ({k_a} pr)",
                f"{hv_b:.4f} ({k_b} pr)",
                _pct(_ratio(hv_b, hv_a)),
                _pct(_ratio(hv_b, s["no ES"]["hv"][-1])),
            ]
        )
    _common.print_table(
        ["budget", "epochs", "no-ES HV", "ES HV", "ES/no-ES then", "ES/no-ES final"], rows
    )
    print("(pr: proposals, duplicates included)")


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _print_final(s: dict[str, dict], rows: dict[str, list[dict]], wall: dict[str, float]) -> None:
    a, b = s["no ES"], s["ES"]
    half = COMPUTE_GOAL * a["epochs"][-1]
    hv_half, k_half = _hv_within(b["epochs"], b["hv"], half)
    hv = _ratio(hv_half, a["hv"][-1])
    print("\nfinal")
    print(
        f"no ES:         HV {a['hv'][-1]:.4f} for {a['epochs'][-1]:.0f} epochs ({len(a['epochs'])} proposals)"
    )
    print(
        f"ES:            HV {b['hv'][-1]:.4f} for {b['epochs'][-1]:.0f} epochs ({len(b['epochs'])} proposals, all "
        f"its trials)"
    )
    done = " (every trial of the ES study)" if k_half == len(b["epochs"]) else ""
    if k_half == 0:
        print(
            f"goal:          not defined: the ES study's first trial alone costs more than {half:.0f} epochs"
        )
    else:
        print(
            f"goal:          within {COMPUTE_GOAL:.0%} of the no-ES compute ({half:.0f} epochs: "
            f"{b['epochs'][k_half - 1]:.0f} used, {k_half} proposals{done}) the ES study reached HV "
            f"{hv_half:.4f} = {_pct(hv)} of the no-ES final HV (goal >= {HV_GOAL:.0%}): "
            f"{_verdict(None if hv is None else hv >= HV_GOAL)}"
        )
    print(
        f"  secondary:   training seconds {a['seconds'][-1]:.0f} (no ES) vs {b['seconds'][k_half - 1] if k_half else 0:.0f} "
        f"(ES, within the budget; load-dependent); epochs x mult-adds = "
        f"{_pct(_ratio(b['macs'][k_half - 1] if k_half else 0, a['macs'][-1]))} (load-independent, weighs big "
        f"models more); wall {wall['no ES']:.0f} s vs {wall['ES']:.0f} s for whole studies (with evaluation, "
        f"checkpoints, data loading)"
    )
    for name in RUNS:
        counts: dict[str, int] = {}
        for r in rows[name]:
            key = r["status"] if r["status"] != "pruned" else f"stopped at epoch {r['epochs']}"
            counts[key] = counts.get(key, 0) + 1
        print(f"trials {name:<6} " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


def _print_quality(rows: dict[str, list[dict]]) -> None:
    """How new and how lean the trained architectures were, per study."""
    print(
        "\nproposals (goal: >= 90% new architectures; most trained shared plans smaller than their plain WRN)"
    )
    table = []
    for name in RUNS:
        trained = [r for r in rows[name] if r["status"] in ("complete", "pruned")]
        new = len({r["plan"] for r in trained})
        searched = [r for r in trained if not r["baseline"] and r["shared"]]
        no_saving = sum(
            r["params"] >= parse_plan(f"WRN-{r['depth']}-{r['width']}").num_parameters()
            for r in searched
        )
        draws = [r["proposal"] for r in rows[name] if r["proposal"]]
        rejected: dict[str, int] = {}
        for d in draws:
            for why, k in d["rejected"].items():
                rejected[why] = rejected.get(why, 0) + k
        table.append(
            [
                name,
                str(len(trained)),
                f"{new} ({_pct(_ratio(new, len(trained)))})",
                f"{no_saving} of {len(searched)} ({_pct(_ratio(no_saving, len(searched)))})",
                str(sum(d["draws"] for d in draws)),
                ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none",
                str(sum(d["source"] == "random" for d in draws)),
            ]
        )
    _common.print_table(
        [
            "study",
            "trained",
            "new architectures",
            "shared plans saving nothing",
            "sampler draws",
            "draws turned down",
            "random fallback",
        ],
        table,
    )


def _print_baselines(rows: list[dict], s: dict, ref: float) -> None:
    """The searched front against the baselines' front, the searched side cut at the baselines' compute."""
    base = [r for r in rows if r["baseline"]]
    spent = sum(_epochs_spent(r) for r in base)
    searched, used = [], 0
    for r in rows:
        if not r["baseline"] and used + _epochs_spent(r) <= spent:
            used += _epochs_spent(r)
            searched.append(r)
    v_all, v_equal = verdict(rows), verdict(base + searched)
    print(
        f"\nsearch against the baselines (no-ES study: every trial trained to its budget; {len(base)} baselines, "
        f"{spent} epochs)"
    )
    every = [r for r in rows if not r["baseline"]]
    _common.print_table(
        ["front", "trials", "epochs", "hypervolume"],
        [
            ["baselines", str(len(base)), str(spent), f"{hypervolume(base, ref):.4f}"],
            [
                "searched, equal compute",
                str(len(searched)),
                str(used),
                f"{hypervolume(searched, ref):.4f}",
            ],
            [
                "searched, all",
                str(len(every)),
                f"{s['epochs'][-1] - spent:.0f}",
                f"{hypervolume(every, ref):.4f}",
            ],
        ],
    )
    print(
        "(hypervolume with the reference above; the verdict lines use the report's, 10x the largest model "
        "among the trials they compare)"
    )
    for label, v in (("equal compute", v_equal), ("all trials", v_all)):
        print(f"dominance ({label}):")
        for entry in v.table:
            b = entry.baseline
            who = (
                entry.note
                if entry.dominated_by is None
                else (
                    ", ".join(
                        f"trial {r['trial']} {r['plan_name']} {r['val_acc']:.3f} ({r['params']:,})"
                        for r in entry.dominated_by
                    )
                    or "none"
                )
            )
            print(
                f"  {b['plan_name']:<14} {b['params']:>9,} params  val acc {b['val_acc'] or 0:.3f}: {who}"
            )
        print(f"verdict ({label}): {v.sentence}")


def _write_csv(path: pathlib.Path, rows: dict[str, list[dict]], s: dict[str, dict]) -> None:
    keys = [
        "trial",
        "state",
        "status",
        "plan_name",
        "plan",
        "shared",
        "depth",
        "width",
        "params",
        "macs",
        "val_acc",
        "final_val_acc",
        "epochs",
        "train_seconds",
        "reason",
        "duplicate_of",
        "started",
        "finished",
    ]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run",
                *keys,
                "epochs_spent",
                "seconds_spent",
                "cum_epochs",
                "cum_seconds",
                "hv_after",
                "curve",
            ]
        )
        for name in RUNS:
            for i, r in enumerate(rows[name]):
                w.writerow(
                    [
                        STUDY_NAMES[name],
                        *[r[k] for k in keys],
                        _epochs_spent(r),
                        f"{_seconds_spent(r):.3f}",
                        f"{s[name]['epochs'][i]:.0f}",
                        f"{s[name]['seconds'][i]:.3f}",
                        f"{s[name]['hv'][i]:.6f}",
                        json.dumps(r["curve"]),
                    ]
                )


# ----------------------------------------------------------------------------- main


def _describe(base: StudyConfig, args, ref_params: int, device: torch.device) -> None:
    rule = base.stop_rule()
    _describe_task(base, ref_params, device)
    print(
        f"studies:       no ES: {args.trials} trials, early_stopping enabled=False; ES: {args.es_trials} trials, "
        f"rungs {list(rule.rungs)} (eta {rule.eta}, Pareto-aware); sampler {base.sampler}; otherwise identical"
    )
    why = (
        "random: its proposals ignore results, so both studies train the same architecture sequence and "
        "the difference is early stopping alone"
        if base.sampler == "random"
        else f"{base.sampler}: it reacts to results, so the two sequences differ; this compares whole searches"
    )
    print(f"sampler:       {why}")
    print(
        f"hypervolume:   nas.report.results.hypervolume over completed trials in (val acc, log10 params), reference "
        f"(0, log10 {HV_REFERENCE_FACTOR * ref_params:,}) = 10x the largest model, the same for both"
    )


def _describe_task(base: StudyConfig, ref_params: int, device: torch.device) -> None:
    """The data, space and recipe both studies share (bench_fidelity.py prints them too)."""
    d, space = base.data_config(), base.search_space()
    what = (
        f"synthetic {d.image_size}x{d.image_size}, {d.synthetic_train} images"
        if d.dataset == "synthetic"
        else f"CIFAR-10 from {os.path.abspath(d.root)}: {d.train_subset} training images (stratified), "
        f"{d.val_fraction:.0%} of the 50,000 held out for validation"
    )
    print(f"data:          {what}")
    print(
        f"space:         depths {list(space.depths)}, widths {list(space.widths)}, templates "
        f"{space.min_templates}-{space.max_templates}; largest model {ref_params:,} params"
    )
    print(
        f"recipe:        {base.train_config().epochs} epochs a trial, batch {base.train_config().batch_size}, "
        f"{base.train_config().schedule} lr {base.train_config().lr}; seed {base.seed}; device {device}"
    )


@contextlib.contextmanager
def fresh_folder(out: str | None, names: list[str], prefix: str, resume: bool = False):
    """The folder the studies are made in: ``--out`` (kept), else a temporary one (removed).
    ``--out`` holding a study of one of ``names`` already ends the script in one line, unless
    ``resume`` (a benchmark whose studies are resumed, each with its own fixed settings)."""
    keep = contextlib.nullcontext(out) if out else tempfile.TemporaryDirectory(prefix=prefix)
    with keep as folder:
        root = pathlib.Path(folder)
        if not resume and (taken := [name for name in names if (root / name).exists()]):
            raise SystemExit(
                f"{root} already holds {', '.join(taken)}; "
                f"choose an empty --out so the studies start fresh."
            )
        yield root


def study_bench_setup(args) -> torch.device:
    """What every benchmark that runs studies does first: warnings only (Optuna logs a line per
    study reopening otherwise), ``--threads``, then ``--device`` resolved (a bad one exits with
    its one-line reason)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return resolve_device(args.device)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def main() -> None:
    args = _parse_args()
    device = study_bench_setup(args)
    try:
        base = _base_config(args)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if (
        not args.quick
        and not (pathlib.Path(args.data) / "cifar-10-batches-py" / "data_batch_1").is_file()
    ):
        raise SystemExit(
            f"no CIFAR-10 in {args.data}; make it with: "
            f"python /work/shared/data/prepare_cifar10.py {args.data} (or run --quick)"
        )
    configs = _configs(base, args.es_trials)
    _common.print_header(
        "search efficiency: Pareto hypervolume against compute, with and without early stopping",
        f"ES study >= {HV_GOAL:.0%} of the no-ES hypervolume for <= {COMPUTE_GOAL:.0%} of its "
        f"compute (epochs)",
        device,
    )
    space_max = _space_max_params(base.search_space())
    _describe(base, args, space_max, device)
    if args.quick:
        print("quick:         tiny sizes; checks that the script runs, its figures mean nothing")
    with fresh_folder(args.out, [c.name for c in configs.values()], "bench_search_") as root:
        print()
        rows, wall = _run_both(configs, root)
    ref = HV_REFERENCE_FACTOR * max(
        [space_max] + [r["params"] or 0 for rs in rows.values() for r in rs]
    )
    shared = min(len(rows["no ES"]), len(rows["ES"]))
    same = sum(x["plan"] == y["plan"] for x, y in zip(rows["no ES"], rows["ES"]))
    print(
        f"\narchitecture sequence: {same} of the first {shared} proposals were the same plan in both studies"
    )
    s = _summaries(rows, ref)
    _print_by_proposals(s, shared)
    _print_by_compute(s)
    _print_final(s, rows, wall)
    _print_quality(rows)
    _print_baselines(rows["no ES"], s["no ES"], ref)
    if args.out:
        _write_csv(pathlib.Path(args.out) / CSV_FILE, rows, s)
        print(
            f"\nper-trial rows of both studies: {pathlib.Path(args.out) / CSV_FILE}; studies in {args.out}"
        )


if __name__ == "__main__":
    main()
