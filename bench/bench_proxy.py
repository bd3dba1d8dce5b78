"""Which cheap training run ranks sharing plans as a long one does? (issue 22)

Twelve plans spanning the cpu preset's space (depths 22 and 28, width 1, banks of 1-4
templates; each depth's uniform plans first, the plain WRN among them, then plans drawn at
random with a fixed seed) are trained under several *candidate* proxies: a number of training
images, a number of epochs and a recipe (how the learning rate moves, a weight average, label
smoothing, the validation split). Each plan is trained with two or more seeds under each
candidate, and with one or two seeds under the *ground truth*: all 45,000 training images for 8
epochs. Every run keeps its whole validation curve, so three readings of it are scored: the
last epoch's accuracy, the mean of the last two, and the best epoch's (what a study records).

For each candidate and reading the table gives Kendall's tau and Spearman's rho of the plans'
mean accuracy against the ground truth's mean, the seed-to-seed tau (one seed's ranking against
another's), the pooled seed SD, and the spread between plans (the SD of the plans' means) over
that seed SD. The goal: tau >= 0.7 against the ground truth and a spread at least 3 seed SDs.

Every run is appended to a JSON-lines store as it finishes (default
bench/results/proxy_runs.jsonl, kept in git), and a run already there is never trained again, so
the script can be stopped and started again, across sessions, and the table printed at any time
from what is there:

    python bench/bench_proxy.py --data /work/data                  # every candidate, in order
    python bench/bench_proxy.py --data /work/data --only truth 45k-2-step
    python bench/bench_proxy.py --report                           # the table, nothing trained
    python bench/bench_proxy.py --quick                            # synthetic, seconds: it runs

Same plans, seeds, data split and batch size for every candidate; only the images, epochs and
recipe differ. Runs of one candidate go seed by seed (every plan with seed 0, then seed 1), so
a half-finished candidate already ranks all plans once.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import math
import pathlib
import sys
import time
from statistics import mean, pstdev

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from _common import _cpu_model, add_common_arguments, print_header, print_table, setup  # noqa: E402
from bench_inherit import _plans, kendall_tau, spearman_rho  # noqa: E402

from nas.space import SearchSpace  # noqa: E402
from softshare.data import DataConfig, load_dataset  # noqa: E402
from softshare.models import ModelConfig  # noqa: E402
from softshare.train import TrainConfig, train  # noqa: E402

STORE = pathlib.Path(__file__).resolve().parent / "results" / "proxy_runs.jsonl"
TRUTH = "truth"
ALL = None  # train_images: every training image (45,000 of CIFAR-10 with 5,000 held out)
STEP = {"lr_update": "step"}  # cosine moved every step: a short run ends at lr 0
# name: (training images, epochs, recipe changes, validation share). Priority order: the first
# ones are run first. Today's proxy (5k-8) keeps today's recipe: cosine moved once an epoch.
CANDIDATES: dict[str, tuple[int | None, int, dict, float]] = {
    TRUTH: (ALL, 8, STEP, 0.1),
    "5k-8": (5000, 8, {}, 0.1),
    "45k-1-step": (ALL, 1, STEP, 0.1),
    "45k-2-step": (ALL, 2, STEP, 0.1),
    "45k-2-step-ema": (ALL, 2, STEP | {"ema": 0.99}, 0.1),
    "22k-4-step": (22500, 4, STEP, 0.1),
    "10k-8-step": (10000, 8, STEP, 0.1),
    "45k-1-step-ema": (ALL, 1, STEP | {"ema": 0.99}, 0.1),
    "45k-2-step-ls": (ALL, 2, STEP | {"label_smoothing": 0.1}, 0.1),
    "40k-2-step-val10k": (ALL, 2, STEP, 0.2),
    "45k-1": (ALL, 1, {}, 0.1),
    "45k-2": (ALL, 2, {}, 0.1),
    "22k-2-step": (22500, 2, STEP, 0.1),
    "10k-4-step": (10000, 4, STEP, 0.1),
    "5k-8-step": (5000, 8, STEP, 0.1),
    "45k-4-step": (ALL, 4, STEP, 0.1),
}
READINGS = {
    "last": lambda curve: curve[-1],
    "last2": lambda curve: mean(curve[-2:]),
    "best": max,
}


def spec(name: str) -> dict:
    images, epochs, recipe, val = CANDIDATES[name]
    return {"train_images": images, "epochs": epochs, "recipe": recipe, "val_fraction": val}


def images_seen(s: dict, n_train: int) -> int:
    """Training images x epochs: a candidate's compute (the ground truth's 45,000 when None)."""
    return (s["train_images"] or n_train) * s["epochs"]


def read_store(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut off by a kill mid-write: skipped, said
                print(f"{path}:{number}: a cut-off line, ignored", file=sys.stderr)
    return rows


def append_store(path: pathlib.Path, row: dict) -> None:
    """One line, under a lock, flushed: two processes may fill one store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(row) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/data", help="folder holding cifar-10-batches-py")
    p.add_argument("--plans", type=int, default=12, help="plans to rank (default 12)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per plan and candidate (default 2)")
    p.add_argument(
        "--truth-seeds", type=int, default=2, help="seeds per plan of the ground truth (default 2)"
    )
    p.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"train these candidates only, in this order (default: all, in order: {', '.join(CANDIDATES)})",
    )
    p.add_argument("--report", action="store_true", help="print the table from the store only")
    p.add_argument(
        "--shard",
        default="0/1",
        metavar="K/N",
        help="train only the K-th of every N runs still to do (0-based), so that N processes "
        "(one thread each, say) share one list without training a run twice (default 0/1)",
    )
    p.add_argument(
        "--store", default=str(STORE), help=f"the runs' JSON-lines file (default {STORE})"
    )
    p.add_argument("--plan-seed", type=int, default=0, help="seed of the random plans (default 0)")
    p.add_argument("--json", default=None, help="also write the table to this JSON file")
    add_common_arguments(p)
    args = p.parse_args()
    for name in ("plans", "seeds", "truth_seeds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}.")
    try:
        args.shard_k, args.shard_n = (int(x) for x in args.shard.split("/"))
        assert 0 <= args.shard_k < args.shard_n
    except (ValueError, AssertionError):
        p.error(f"--shard must be K/N with 0 <= K < N, such as 1/2, but got {args.shard!r}.")
    unknown = [c for c in args.only or [] if c not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {', '.join(unknown)}; accepted: {', '.join(CANDIDATES)}.")
    if args.quick:
        args.plans, args.seeds, args.truth_seeds = 4, 2, 1
        if args.store == str(STORE):
            p.error("--quick needs --store (a scratch file): the default store holds real runs.")
    return args


def _plan_list(args, shape) -> list:
    depths = (16,) if args.quick else (22, 28)
    space = SearchSpace(depths=depths, widths=(1,), max_templates=2 if args.quick else 4)
    return _plans(space, args.plans, args.plan_seed, shape)


def _data_config(args, s: dict) -> DataConfig:
    if args.quick:
        return DataConfig(
            "synthetic",
            synthetic_train=400 if s["train_images"] is None else 200,
            synthetic_test=50,
            image_size=8,
            val_fraction=s["val_fraction"],
        )
    return DataConfig(
        "cifar10", root=args.data, train_subset=s["train_images"], val_fraction=s["val_fraction"]
    )


def _todo(args, plans, done: set) -> list[tuple[str, int, object]]:
    """(candidate, seed, plan) still to train, candidate by candidate, seed by seed."""
    names = args.only or list(CANDIDATES)
    todo = []
    for name in names:
        seeds = args.truth_seeds if name == TRUTH else args.seeds
        for seed in range(seeds):
            todo += [(name, seed, p) for p in plans if (name, p.text, seed) not in done]
    return todo


def train_all(args, device, rows: list[dict], store: pathlib.Path) -> None:
    shape = (10, 3)
    plans = _plan_list(args, shape)
    for row in rows:  # a name kept in the store means the same run it meant then
        if row["candidate"] in CANDIDATES and row["spec"] != spec(row["candidate"]):
            raise SystemExit(
                f"{store} holds {row['candidate']!r} runs of another spec ({row['spec']}); "
                f"rename the candidate or use another --store."
            )
    todo = _todo(args, plans, {(r["candidate"], r["plan"], r["seed"]) for r in rows})
    todo = todo[args.shard_k :: args.shard_n]
    print(f"{len(todo)} run(s) to train; the store {store} holds {len(rows)}.\n", flush=True)
    datasets: dict[tuple, object] = {}
    start = time.perf_counter()
    for i, (name, seed, plan) in enumerate(todo, 1):
        s = spec(name)
        dcfg = _data_config(args, s)
        key = (s["train_images"], s["val_fraction"])
        if key not in datasets:
            datasets.clear()  # one split in memory at a time
            datasets[key] = load_dataset(dcfg)
        data = datasets[key]
        cfg = TrainConfig.from_dict(
            {
                "epochs": s["epochs"],
                "batch_size": 64 if args.quick else 128,
                "lr": 0.1,
                "schedule": "cosine",
                "seed": seed,
                "device": str(device),
            }
            | s["recipe"]
        )
        mc = ModelConfig(plan.text, num_classes=data.num_classes, in_channels=shape[1])
        t0 = time.perf_counter()
        result = train(mc, cfg, data)
        seconds = time.perf_counter() - t0
        curve = [h["val_acc"] for h in result.history]
        append_store(
            store,
            {
                "candidate": name,
                "spec": s,
                "plan": plan.text,
                "name": plan.name,
                "params": plan.num_parameters(*shape),
                "seed": seed,
                "curve": curve,
                "val_images": len(data.val.labels),
                "train_images": len(data.train.labels),
                "seconds": round(seconds, 1),
                "images_per_s": round(result.images_per_s, 1),
                "precision": result.precision,
                "machine": _cpu_model(),
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "quick": bool(args.quick),
            },
        )
        elapsed = time.perf_counter() - start
        eta = elapsed / i * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] {name:<18} seed {seed} {plan.name:<36} "
            f"val {' '.join(f'{a:.3f}' for a in curve)}  {seconds:.0f} s "
            f"({result.images_per_s:.0f} img/s)  ETA {eta / 60:.0f} min",
            flush=True,
        )


# ----------------------------------------------------------------------------- the table


def _by_plan(rows: list[dict], name: str, reading) -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["candidate"] == name:
            table.setdefault(r["plan"], {})[r["seed"]] = reading(r["curve"])
    return table


def pooled_sd(table: dict[str, dict[int, float]]) -> float:
    """The seed SD pooled over plans: the root of the mean within-plan sample variance."""
    variances, dof = 0.0, 0
    for accs in table.values():
        values = list(accs.values())
        if len(values) > 1:
            m = mean(values)
            variances += sum((v - m) ** 2 for v in values)
            dof += len(values) - 1
    return math.sqrt(variances / dof) if dof else float("nan")


def seed_tau(table: dict[str, dict[int, float]]) -> float:
    """Mean Kendall tau between every two seeds' rankings, over the plans both have."""
    seeds = sorted({s for accs in table.values() for s in accs})
    taus = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1 :]:
            both = [p for p in table if a in table[p] and b in table[p]]
            if len(both) >= 3:
                taus.append(kendall_tau([table[p][a] for p in both], [table[p][b] for p in both]))
    return mean(taus) if taus else float("nan")


def summarise(rows: list[dict], truth_reading: str = "last") -> list[dict]:
    truth = {
        p: mean(a.values()) for p, a in _by_plan(rows, TRUTH, READINGS[truth_reading]).items()
    }
    n_train = max((r["train_images"] for r in rows if r["candidate"] == TRUTH), default=45000)
    out = []
    names = [c for c in CANDIDATES if any(r["candidate"] == c for r in rows)]
    for name in names:
        runs = [r for r in rows if r["candidate"] == name]
        for label, reading in READINGS.items():
            table = _by_plan(rows, name, reading)
            means = {p: mean(a.values()) for p, a in table.items()}
            common = [p for p in means if p in truth]
            sd = pooled_sd(table)
            spread = pstdev(means.values()) if len(means) > 1 else float("nan")
            out.append(
                {
                    "candidate": name,
                    "reading": label,
                    "plans": len(table),
                    "seeds": max(len(a) for a in table.values()),
                    "runs": len(runs),
                    "compute": images_seen(runs[0]["spec"], n_train) / 40000,
                    "seconds": mean(r["seconds"] for r in runs),
                    "tau": kendall_tau([truth[p] for p in common], [means[p] for p in common])
                    if len(common) >= 3
                    else float("nan"),
                    "rho": spearman_rho([truth[p] for p in common], [means[p] for p in common])
                    if len(common) >= 3
                    else float("nan"),
                    "truth_plans": len(common),
                    "seed_tau": seed_tau(table),
                    "seed_sd": sd,
                    "spread": spread,
                    "spread_over_sd": spread / sd if sd and sd == sd else float("nan"),
                    "mean_acc": mean(means.values()),
                }
            )
    return out


def print_summary(rows: list[dict], json_path: str | None) -> None:
    rows = [r for r in rows if r["candidate"] in CANDIDATES]
    if not rows:
        print("the store holds no runs yet.")
        return
    summary = summarise(rows)
    truth_rows = [r for r in rows if r["candidate"] == TRUTH]
    truth_seeds = sorted({r["seed"] for r in truth_rows})
    print(
        f"ground truth: all training images x 8 epochs, cosine moved every step, last epoch's "
        f"accuracy, mean over seed(s) {truth_seeds} ({len(truth_rows)} run(s)); compute in "
        f"units of today's 5,000 x 8 = 40,000 images\n"
    )
    fmt = lambda x, f: "-" if x != x else format(x, f)  # noqa: E731 (nan: not measurable yet)
    print_table(
        [
            "candidate",
            "reading",
            "plans",
            "seeds",
            "compute",
            "s/run",
            "tau",
            "rho",
            "seed tau",
            "seed SD",
            "spread",
            "spread/SD",
            "mean acc",
        ],
        [
            [
                s["candidate"],
                s["reading"],
                str(s["plans"])
                + ("" if s["truth_plans"] == s["plans"] else f" ({s['truth_plans']})"),
                str(s["seeds"]),
                f"{s['compute']:.2f}x",
                f"{s['seconds']:.0f}",
                fmt(s["tau"], ".3f"),
                fmt(s["rho"], ".3f"),
                fmt(s["seed_tau"], ".3f"),
                fmt(100 * s["seed_sd"], ".2f"),
                fmt(100 * s["spread"], ".2f"),
                fmt(s["spread_over_sd"], ".2f"),
                f"{100 * s['mean_acc']:.2f}",
            ]
            for s in summary
        ],
    )
    print(
        "\nplans (n): plans with runs (in brackets, those the ground truth has too: tau and rho "
        "use these). seed SD, spread: points of accuracy. spread: SD of the plans' means."
    )
    machines = sorted({(r["machine"], r["precision"]) for r in rows})
    dates = sorted(r["date"] for r in rows)
    print(f"runs from {dates[0]} to {dates[-1]} on {'; '.join(f'{m} ({p})' for m, p in machines)}")
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(summary, indent=2))


def main() -> None:
    args = _parse_args()
    store = pathlib.Path(args.store)
    rows = [r for r in read_store(store) if r.get("quick", False) == args.quick]
    if args.report:
        print_summary(rows, args.json)
        return
    device = setup(args)
    print_header(
        "proxy choice: which cheap run ranks plans as 45,000 images x 8 epochs does",
        "Kendall tau >= 0.7 against the ground truth; spread between plans >= 3 seed SDs",
        device,
    )
    train_all(args, device, rows, store)
    print()
    print_summary([r for r in read_store(store) if r.get("quick", False) == args.quick], args.json)


if __name__ == "__main__":
    main()
