"""Do learned plans pay? Studies with --learned-plans against TPE alone and random alone, at
equal compute, parents included (issue 23).

Three kinds of study through the project's public API (nas.config.StudyConfig +
nas.optuna_backend.run_study), identical (space, data, recipe, stopping rule, baselines and
their seeds, confirmation) but for how architectures are proposed:

* ``learned``: TPE, after ``--learned N`` learned plans per parent queued behind the baselines;
  its parents (one plain WRN per depth and width, the recipe's full budget each) are charged to
  its compute, so it gets that many fewer trials;
* ``tpe``: TPE alone; ``random``: the random sampler alone.

Each kind runs with every ``--seeds`` study seed. Compute is epochs trained, in the order the
runs finished: every trial, replicate (baseline seeds, the confirmation) and parent (first). A
study's hypervolume after each run is that of its architectures' means so far (nas.replicates.
plan_rows: one point per architecture, the mean over its seeds), in (validation accuracy, log10
params) with one reference for every study (accuracy 0, 10x the largest model the space holds).

Printed: hypervolume at a quarter, half, three quarters and all of TPE-alone's compute (same
seed); each confirmed front; the uniform baselines each study's searched plans beat beyond the
noise (nas.report.verdict: one-sided z-tests on plan means, Holm-corrected over all its comparisons);
and Kendall tau between a plan's projection error (from the parent of its depth) and its
confirmed accuracy, among plans of similar parameter counts (within each parameter tercile).

The goal (issue 23): with learned plans the confirmed front dominates at least one uniform
baseline beyond the noise, and reaches TPE-alone's final hypervolume within 50% of its compute.

    python bench/bench_learned.py --data /work/data --out /work/bench_learned   # hours on 2 cores
    python bench/bench_learned.py --quick                                        # synthetic
    python bench/bench_learned.py --out /work/bench_learned --read               # tables only
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
import bench_search as search_bench  # noqa: E402
from bench_inherit import kendall_tau  # noqa: E402

from nas.baselines import baseline_budget  # noqa: E402
from nas.config import StudyConfig  # noqa: E402
from nas.fidelity import load_parent, parent_name, parent_names, parent_runs  # noqa: E402
from nas.optuna_backend import run_study  # noqa: E402
from nas.replicates import plan_rows  # noqa: E402
from nas.report.results import (  # noqa: E402
    HV_REFERENCE_FACTOR,
    front_rows,
    hypervolume,
    trial_rows,
)
from nas.report.verdict import claim_distance_text, verdict  # noqa: E402
from nas.study import open_existing  # noqa: E402
from softshare import parse_plan  # noqa: E402
from softshare.learned import group_errors, group_keys  # noqa: E402

KINDS = ("learned", "tpe", "random")
LEVELS = (0.25, 0.5, 0.75, 1.0)


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/data", help="folder holding cifar-10-batches-py")
    p.add_argument("--out", default=None, help="keep the studies in DIR; re-run to resume")
    p.add_argument("--trials", type=int, default=None, help="trials of TPE alone (default 20)")
    p.add_argument("--learned", type=int, default=3, help="learned plans per parent (default 3)")
    p.add_argument(
        "--confirm-max",
        type=int,
        default=0,
        help="at most N plans confirmed on fresh seeds per study (default 0: every plan within "
        "2 SE of the front)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="study seeds (0 1)")
    p.add_argument("--device", default="cpu", help="cpu | auto | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    p.add_argument("--quick", action="store_true", help="generated 8x8 data: checks it runs")
    p.add_argument(
        "--read",
        action="store_true",
        help="train nothing: print the tables of the studies already in --out as they stand "
        "(a benchmark still running, or one made by an older version of the code)",
    )
    p.add_argument(
        "--score",
        nargs="+",
        metavar="STUDY",
        default=None,
        help="train nothing: score these finished study folders' plans (their means over seeds) "
        "against the projection errors of the parents in --parents, with both error metrics",
    )
    p.add_argument(
        "--parents",
        default=None,
        metavar="DIR",
        help="--score: the folder whose parents/WRN-d-k/ hold the trained plain nets",
    )
    args = p.parse_args()
    if args.trials is None:
        args.trials = 6 if args.quick else 20
    if args.read and not args.out:
        p.error("--read needs --out DIR (the folder whose studies it reads).")
    if args.confirm_max < 0:
        p.error(f"--confirm-max must be >= 0, but got {args.confirm_max}.")
    for name in ("trials", "learned"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    return args


def _configs(args) -> dict[tuple[str, int], StudyConfig]:
    """Every study: the cpu preset (the smoke one with --quick), the same baselines, two
    baseline seeds and two confirmation seeds; per seed the three kinds."""
    flags = {
        "n_trials": args.trials,
        "device": args.device,
        "baselines": f"paper:{baseline_budget(args.trials)}",
        "baseline_seeds": 2,
        "confirm_seeds": 2,
        "confirm_max": args.confirm_max,
    }
    if args.quick:
        flags |= {
            "preset": "smoke",
            "space.depths": [16],
            "space.widths": [1],
            "space.max_templates": 2,
            "data.synthetic_train": 300,
            "data.synthetic_test": 50,
            "data.val_fraction": 0.2,
            "data.image_size": 8,
            "recipe.epochs": 2,
        }
    else:
        flags |= {"preset": "cpu", "data.root": args.data}
    base = StudyConfig.from_flags("base", flags)
    parents = len(parent_names(base.search_space()))
    out = {}
    for seed in args.seeds:
        for kind in KINDS:
            extra = {"name": f"learned-{kind}-s{seed}", "seed": seed}
            if kind == "learned":  # a parent costs a full trial's epochs
                extra |= {"learned_plans": args.learned, "n_trials": max(1, args.trials - parents)}
            extra["sampler"] = "random" if kind == "random" else "tpe"
            out[kind, seed] = base.with_flags(extra)
    return out


def _runs_in_order(folder: pathlib.Path) -> list[dict]:
    """Every run of a study (trials and replicates), in the order they finished."""
    _, study = open_existing(folder)
    rows = [r for r in trial_rows(study) if r["finished"] and r["epochs"]]
    return sorted(rows, key=lambda r: (r["finished"], r["trial"]))


def _curve(folder: pathlib.Path, ref: float) -> dict:
    """Cumulative epochs (parents first) and the hypervolume of the plan means after each run."""
    runs = _runs_in_order(folder)
    paid = float(sum(p["epochs_run"] for p in parent_runs(folder)))
    epochs, hv, total = [], [], paid
    for k, r in enumerate(runs, 1):
        total += search_bench._epochs_spent(r)
        epochs.append(total)
        hv.append(hypervolume(plan_rows(runs[:k]), max_params=ref))
    return {"epochs": epochs, "hv": hv, "parents": paid, "runs": runs}


def _terciles_tau(points: list[tuple[int, float, float]]) -> tuple[float | None, int]:
    """Kendall tau of (projection error, accuracy) within each parameter tercile, weighted by
    the pairs each holds; (tau, plans)."""
    points = sorted(points)
    if len(points) < 3:
        return None, len(points)
    k = len(points)
    bins = [points[: k // 3], points[k // 3 : 2 * k // 3], points[2 * k // 3 :]]
    num = den = 0.0
    for b in bins:
        if len(b) >= 2:
            tau = kendall_tau([e for _, e, _ in b], [a for _, _, a in b])
            pairs = len(b) * (len(b) - 1) / 2
            num, den = num + tau * pairs, den + pairs
    return (num / den if den else None), len(points)


def _points(
    folder: pathlib.Path, cfg: StudyConfig, rows: list[dict], metric: str = "relative"
) -> list[tuple[int, float, float]]:
    """(params, projection error, mean accuracy) of each complete shared plan of ``rows``, the
    error from the kernels of the parents in ``folder`` (``metric``: relative or squared)."""
    tables = {}
    for name in parent_names(cfg.search_space()):
        try:
            parent = load_parent(folder, name)
        except FileNotFoundError:
            continue
        tables[name] = {
            (g.stage, g.start, g.stop, g.templates): getattr(g, metric)
            for g in group_errors(parent, cfg.search_space().template_choices)
        }
    points = []
    for r in rows:
        if r["state"] != "complete" or not r["shared"] or r["val_acc"] is None:
            continue
        plan = parse_plan(r["plan"])
        table = tables.get(parent_name(plan.depth, plan.width))
        if table is None:
            continue
        error = sum(table[k] for k in group_keys(plan))
        points.append((r["params"], error, r["val_acc"]))
    return points


def _projection_tau(
    folder: pathlib.Path, cfg: StudyConfig, rows: list[dict], metric: str = "relative"
) -> tuple:
    """tau between each shared plan's projection error (the parents in ``folder``, the learned
    study's of the same seed) and its mean accuracy within parameter terciles; lower error
    should mean higher accuracy, so a good ranking gives tau < 0. (tau or None, plans)."""
    return _terciles_tau(_points(folder, cfg, rows, metric))


def _score(args) -> None:
    """tau(projection error, mean accuracy) of finished studies' plans, both metrics."""
    if not args.parents:
        raise SystemExit("--score needs --parents DIR (a folder with parents/WRN-d-k/)")
    print(
        "Kendall tau between a plan's projection error (sum over its shared groups, from the "
        "trained plain parent of its depth) and its mean validation accuracy over its seeds; "
        "negative = lower error, higher accuracy. Within parameter terciles (pairs-weighted) "
        "and over all plans."
    )
    pooled: dict[str, list] = {m: [] for m in ("relative", "squared")}
    for folder in map(pathlib.Path, args.score):
        cfg, study = open_existing(folder)
        rows = plan_rows(trial_rows(study))
        for metric in ("relative", "squared"):
            tau, n = _projection_tau(pathlib.Path(args.parents), cfg, rows, metric)
            points = _points(pathlib.Path(args.parents), cfg, rows, metric)
            pooled[metric] += points
            overall = kendall_tau([e for _, e, _ in points], [a for _, _, a in points])
            print(
                f"{folder.name:<16} {metric:<9} within terciles "
                f"{'-' if tau is None else f'{tau:+.3f}'}  all {overall:+.3f}  ({n} plans)"
            )
    for metric, points in pooled.items():
        tau, n = _terciles_tau(points)
        overall = kendall_tau([e for _, e, _ in points], [a for _, _, a in points])
        print(
            f"{'pooled':<16} {metric:<9} within terciles "
            f"{'-' if tau is None else f'{tau:+.3f}'}  all {overall:+.3f}  ({n} plans)"
        )


def main() -> None:
    args = _parse_args()
    if args.score:
        _score(args)
        return
    device = search_bench.study_bench_setup(args)
    try:
        configs = _configs(args)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if not args.quick and not (pathlib.Path(args.data) / "cifar-10-batches-py").is_dir():
        raise SystemExit(f"no CIFAR-10 in {args.data} (or run --quick)")
    _common.print_header(
        "learned plans: hypervolume against compute, learned + TPE vs TPE alone vs random",
        "the learned study's confirmed front beats a uniform baseline beyond the noise and "
        "reaches TPE-alone's final hypervolume within 50% of its compute",
        device,
    )
    any_cfg = next(iter(configs.values()))
    ref = HV_REFERENCE_FACTOR * search_bench._space_max_params(any_cfg.search_space())
    names = [c.name for c in configs.values()]
    start = time.perf_counter()
    with search_bench.fresh_folder(args.out, names, "bench_learned_", resume=True) as root:
        if args.read:
            if missing := [n for n in names if not (root / n / "study.json").is_file()]:
                raise SystemExit(
                    f"--read: {root} holds no study {', '.join(missing)}; run without --read "
                    f"to train them, or name the seeds it holds with --seeds."
                )
        else:
            for (kind, _seed), cfg in configs.items():
                print(f"\n{cfg.name}: {cfg.n_trials} trials, sampler {cfg.sampler}", flush=True)
                run_study(cfg, root / cfg.name, reporter=search_bench._TrialLines(kind))
        ok_beat, ok_fast = [], []
        for seed in args.seeds:
            curves = {k: _curve(root / configs[k, seed].name, ref) for k in KINDS}
            total = curves["tpe"]["epochs"][-1]
            target = curves["tpe"]["hv"][-1]
            print(
                f"\nseed {seed}: hypervolume at a share of TPE-alone's compute ({total:.0f} epochs)"
            )
            table = []
            for f in LEVELS:
                row = [f"{100 * f:.0f}%", f"{f * total:.0f}"]
                for k in KINDS:
                    hv, n = search_bench._hv_within(
                        curves[k]["epochs"], curves[k]["hv"], f * total
                    )
                    row.append(f"{hv:.4f} ({n} runs)")
                table.append(row)
            _common.print_table(["share", "epochs"] + [f"{k} HV" for k in KINDS], table)
            reach = next(
                (
                    e
                    for e, h in zip(curves["learned"]["epochs"], curves["learned"]["hv"])
                    if h >= target
                ),
                None,
            )
            share = None if reach is None else reach / total
            ok_fast.append(share is not None and share <= 0.5)
            print(
                f"learned reaches TPE-alone's final HV {target:.4f} at "
                + (
                    "never"
                    if share is None
                    else f"{reach:.0f} epochs = {100 * share:.0f}% of its compute"
                )
                + f" (parents {curves['learned']['parents']:.0f} epochs included)"
            )
            for k in KINDS:
                rows = plan_rows(curves[k]["runs"])
                front = front_rows(rows)
                v = verdict(curves[k]["runs"])
                beaten = [
                    e.baseline["plan_name"]
                    for e in v.table
                    if e.baseline["shared"] and e.dominated_by
                ]
                if k == "learned":
                    ok_beat.append(bool(beaten))
                parents = root / configs["learned", seed].name
                tau, n = _projection_tau(parents, configs[k, seed], rows)
                print(
                    f"  {k:<8} confirmed front: "
                    + ", ".join(
                        f"{r['plan_name']} {r['val_acc']:.4f}±{r['val_se']:.4f} ({r['n_runs']} seeds)"
                        for r in front
                    )
                )
                print(
                    f"  {k:<8} uniform baselines beaten beyond the noise (Holm): "
                    f"{', '.join(beaten) or 'none'}; tau(projection error, accuracy) within "
                    f"parameter terciles: {'-' if tau is None else f'{tau:+.2f}'} over {n} plans"
                )
                if near := claim_distance_text(v.closest, v.comparisons):
                    print(f"  {k:<8} nearest to a claim: {near}")
        print(
            f"\ngoal: learned front beats a uniform baseline: {'PASS' if all(ok_beat) else 'FAIL'}; "
            f"reaches TPE-alone's final HV within 50% of its compute: "
            f"{'PASS' if all(ok_fast) else 'FAIL'} (every seed)"
        )
        print(f"total wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
