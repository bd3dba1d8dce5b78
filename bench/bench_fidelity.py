"""Search efficiency of the fidelities: Pareto hypervolume against compute, trials trained from
scratch against trials inherited from a trained parent (issue 16).

Two studies through the project's public API (nas.config.StudyConfig + nas.optuna_backend.run_study),
identical (space, data, recipe, stopping rule, sampler, seed, baselines) but for ``fidelity``:
``scratch`` trains every trial for the recipe's epochs; ``inherit`` first trains the parent
(the plain WRN of the space's depth and width) for the recipe's epochs, once, then starts each
trial from ``softshare.inherit(parent, plan)`` and fine-tunes it for ``--inherit-epochs`` from
``--inherit-lr``. The inherit study's trials are cheaper, so it is given more of them: by
default as many as the scratch study's compute buys once its parent is paid
(``--inherit-trials``). With the random sampler both studies propose the same architecture
sequence, so the difference is the fidelity alone.

Compute is bench/bench_search.py's: epochs trained per trial in proposal order (primary,
load-independent), training seconds (secondary); a duplicate costs nothing. The inherit study's
parents are charged from the start: at compute 0 of its curve the parent is already paid, and
its first trial comes after it. Hypervolume is nas.report.results.hypervolume over completed trials, in
(validation accuracy, log10 params), with one reference for both studies (accuracy 0, 10x the
largest model the space can produce). The script prints both studies' hypervolume at a quarter,
half, three quarters and all of the scratch study's compute, and whether the inherit study is
above the scratch one at every level.

Caveat, printed too: each study's hypervolume is of its own accuracies. An inherited accuracy is
that of a plan fine-tuned from a fully trained parent, not the accuracy the plan reaches from
scratch, so a higher inherit hypervolume alone does not say the search found better plans. The
rescoring section (``--no-rescore`` skips it) trains the inherit study's final front from
scratch at the full budget (reusing the scratch study's result for a plan it trained) and
compares that front's hypervolume, scored from scratch, with the scratch study's.

    python bench/bench_fidelity.py --data /work/data            # the 5,000-image task
    python bench/bench_fidelity.py --data /work/data --out DIR  # keep both studies
    python bench/bench_fidelity.py --quick                      # synthetic, checks it runs
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

# This checkout's packages first (as bench_inherit.py), not an installed copy of another one.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
import bench_search as search_bench  # noqa: E402

from nas.baselines import baseline_budget  # noqa: E402
from nas.config import StudyConfig  # noqa: E402
from nas.fidelity import parent_names, parent_runs  # noqa: E402
from nas.report.results import HV_REFERENCE_FACTOR, front_rows, hypervolume  # noqa: E402
from softshare import ModelConfig  # noqa: E402
from softshare.data import load_dataset  # noqa: E402
from softshare.train import train  # noqa: E402

RUNS = ("scratch", "inherit")
STUDY_NAMES = {"scratch": "fidelity-scratch", "inherit": "fidelity-inherit"}
LEVELS = (0.25, 0.5, 0.75, 1.0)


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/data", help="folder holding cifar-10-batches-py")
    p.add_argument("--out", default=None, help="keep both studies in DIR (default: a temp dir)")
    p.add_argument("--sampler", default="random", choices=("random", "tpe", "nsga2"))
    p.add_argument("--trials", type=int, default=None, help="scratch trials (default 12; quick 6)")
    p.add_argument(
        "--inherit-trials",
        type=int,
        default=None,
        help="inherit trials (default: as many as the scratch study's epochs buy, parent paid)",
    )
    p.add_argument("--epochs", type=int, default=None, help="recipe epochs (default 6; quick 3)")
    p.add_argument(
        "--inherit-epochs", type=int, default=None, help="fine-tuning epochs (default 2; quick 1)"
    )
    p.add_argument("--inherit-lr", type=float, default=0.01, help="fine-tuning lr (default 0.01)")
    p.add_argument("--min-epochs", type=int, default=None, help="first rung (default: the rule's)")
    p.add_argument("--eta", type=int, default=3, help="early-stopping reduction factor")
    p.add_argument(
        "--depths",
        type=int,
        nargs="+",
        default=None,
        help="depths of the space (default 22; the cpu preset's: 22 28)",
    )
    p.add_argument(
        "--max-templates",
        type=int,
        default=None,
        help="largest bank (default 3; the cpu preset's: 4)",
    )
    p.add_argument("--train-subset", type=int, default=None, help="CIFAR-10 images (default 5000)")
    p.add_argument("--val-fraction", type=float, default=0.02, help="validation share (0.02)")
    p.add_argument("--seed", type=int, default=0, help="both studies' seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu | auto | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    p.add_argument("--no-rescore", action="store_true", help="skip training the inherit front")
    p.add_argument("--quick", action="store_true", help="synthetic 8x8 data: checks it runs")
    args = p.parse_args()
    defaults = {"trials": (6, 12), "epochs": (3, 6), "inherit_epochs": (1, 2)}
    defaults["train_subset"] = (300, 5000)
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("trials", "inherit_trials", "epochs", "inherit_epochs", "train_subset"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}.")
    if not args.inherit_lr > 0:
        p.error(f"--inherit-lr must be > 0, but got {args.inherit_lr}.")
    return args


def _configs(base: StudyConfig, args) -> dict[str, StudyConfig]:
    """The two studies: the same but for the name, the fidelity and the number of trials; both
    queue the same baselines (a quarter of the scratch trials)."""
    base = base.with_flags({"baselines": f"paper:{baseline_budget(base.n_trials)}"})
    inherit = {"fidelity": "inherit", "inherit_epochs": args.inherit_epochs}
    inherit |= {"inherit_lr": args.inherit_lr, "n_trials": args.inherit_trials}
    return {
        "scratch": base.with_flags({"name": STUDY_NAMES["scratch"]}),
        "inherit": base.with_flags({"name": STUDY_NAMES["inherit"]} | inherit),
    }


def _parents_paid(folder: pathlib.Path) -> tuple[float, float, list[dict]]:
    """(epochs, seconds, runs) of the parents an inherit study trained: its compute before trial 0."""
    runs = parent_runs(folder)
    return (
        float(sum(r["epochs_run"] for r in runs)),
        float(sum(r["train_seconds"] or 0.0 for r in runs)),
        runs,
    )


def _charge(summary: dict, epochs: float, seconds: float) -> dict:
    """A study's curves with ``epochs`` and ``seconds`` spent before its first trial."""
    return summary | {
        "epochs": [e + epochs for e in summary["epochs"]],
        "seconds": [s + seconds for s in summary["seconds"]],
    }


def _print_levels(s: dict[str, dict], measure: str, unit: str) -> bool:
    """HV of both studies within each share of the scratch study's total ``measure``; returns
    whether the inherit study is above the scratch one at every level."""
    total, above = s["scratch"][measure][-1], []
    rows = []
    for f in LEVELS:
        budget = f * total
        hv = {n: search_bench._hv_within(s[n][measure], s[n]["hv"], budget) for n in RUNS}
        above.append(hv["inherit"][0] > hv["scratch"][0])
        rows.append(
            [f"{100 * f:.0f}%", f"{budget:.0f}"]
            + [f"{hv[n][0]:.4f} ({hv[n][1]} tr)" for n in RUNS]
            + [search_bench._pct(search_bench._ratio(hv["inherit"][0], hv["scratch"][0]))]
            + ["yes" if above[-1] else "no"]
        )
    print(f"\nhypervolume at equal compute ({unit}, as a share of the scratch study's total)")
    header = ["budget", unit, "scratch HV", "inherit HV", "inherit/scratch", "inherit above"]
    _common.print_table(header, rows)
    return all(above)


def _rescore(front: list[dict], scratch_rows: list[dict], cfg: StudyConfig) -> list[dict]:
    """The inherit front scored from scratch: each plan's scratch-study accuracy when it trained
    it to the end, else trained now from scratch at the full budget (no early stopping)."""
    known = {
        r["plan"]: r["val_acc"]
        for r in scratch_rows
        if r["state"] == "complete" and r["val_acc"] is not None
    }
    data = load_dataset(cfg.data_config())
    out = []
    for r in front:
        acc, how = known.get(r["plan"]), "scratch study"
        if acc is None:
            mc = ModelConfig(
                r["plan"], num_classes=data.num_classes, in_channels=data.train.images.shape[1]
            )
            acc, how = train(mc, cfg.train_config(), data).best_val_acc, "trained now"
        print(
            f"  trial {r['trial']:>3} {r['plan_name']:<28} {r['params']:>9,} params  inherit "
            f"{r['val_acc']:.4f}  scratch {acc:.4f} ({how})",
            flush=True,
        )
        out.append(r | {"val_acc": acc})
    return out


def main() -> None:
    args = _parse_args()
    device = search_bench.study_bench_setup(args)
    try:
        base = search_bench._base_config(args)
        n_parents = len(parent_names(base.search_space()))  # one per depth and width
        if args.inherit_trials is None:  # equal compute: the parents, at the recipe's epochs, paid
            spare = args.trials * args.epochs - n_parents * args.epochs
            args.inherit_trials = max(args.trials, spare // args.inherit_epochs)
        configs = _configs(base, args)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if not args.quick and not (pathlib.Path(args.data) / "cifar-10-batches-py").is_dir():
        raise SystemExit(f"no CIFAR-10 in {args.data} (or run --quick)")
    _common.print_header(
        "search efficiency of the fidelities: hypervolume against compute, scratch vs inherit",
        "the inherit study's hypervolume above the scratch study's at every compute level",
        device,
    )
    base = configs["scratch"]
    space_max = search_bench._space_max_params(base.search_space())
    search_bench._describe_task(base, space_max, device)
    rule = base.stop_rule()
    print(
        f"sampler:       {base.sampler}, seed {base.seed}; early stopping: rungs {list(rule.rungs)} "
        f"of a scratch trial's {rule.max_epochs} epochs, eta {rule.eta}, the same rule on each "
        f"trial's own budget; hypervolume reference (0, log10 {HV_REFERENCE_FACTOR * space_max:,}), the same for both"
    )
    print(
        f"fidelities:    scratch: {args.trials} trials of {args.epochs} epochs; inherit: "
        f"{n_parents} parent(s) trained {args.epochs} epochs once, then {args.inherit_trials} trials fine-tuned "
        f"{args.inherit_epochs} epoch(s) from cosine lr {args.inherit_lr}; same stopping rule "
        f"(rungs relative to each trial's budget)"
    )
    names = [c.name for c in configs.values()]
    with search_bench.fresh_folder(args.out, names, "bench_fidelity_") as root:
        print()
        start = time.perf_counter()
        rows, wall = search_bench._run_both(configs, root)
        p_epochs, p_seconds, parents = _parents_paid(root / configs["inherit"].name)
        ref = HV_REFERENCE_FACTOR * max(
            [space_max] + [r["params"] or 0 for rs in rows.values() for r in rs]
        )
        s = search_bench._summaries(rows, ref)
        s["inherit"] = _charge(s["inherit"], p_epochs, p_seconds)
        print(
            "\nparents:       "
            + ", ".join(
                f"{p['name']} val {p['best_val_acc']:.4f}, {p['epochs_run']} epochs, "
                f"{p['train_seconds']:.0f} s"
                for p in parents
            )
            + " (charged to the inherit study before its first trial)"
        )
        shared = min(len(rows["scratch"]), len(rows["inherit"]))
        same = sum(a["plan"] == b["plan"] for a, b in zip(rows["scratch"], rows["inherit"]))
        print(f"architectures: {same} of the first {shared} proposals were the same plan in both")
        by_epochs = _print_levels(s, "epochs", "epochs")
        _print_levels(s, "seconds", "seconds")
        print("\nfinal")
        for n in RUNS:
            print(
                f"{n:<14} HV {s[n]['hv'][-1]:.4f} for {s[n]['epochs'][-1]:.0f} epochs, "
                f"{s[n]['seconds'][-1]:.0f} s of training ({len(rows[n])} trials; wall {wall[n]:.0f} s)"
            )
        print(
            f"goal:          inherit above scratch at every compute level (epochs): "
            f"{'PASS' if by_epochs else 'FAIL'}"
        )
        print(
            "caveat:        each HV is of the study's own accuracies; inherited accuracies are not "
            "scratch accuracies (bench_inherit.py measured their rank agreement)"
        )
        if not args.no_rescore:
            front = front_rows(rows["inherit"])
            print(
                f"\nrescoring: the inherit study's final front ({len(front)} plans) from scratch"
            )
            rescored = _rescore(front, rows["scratch"], configs["scratch"])
            hv_r, hv_s = hypervolume(rescored, ref), s["scratch"]["hv"][-1]
            print(
                f"inherit front scored from scratch: HV {hv_r:.4f} vs the scratch study's "
                f"{hv_s:.4f} ({search_bench._pct(search_bench._ratio(hv_r, hv_s))})"
            )
        print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
