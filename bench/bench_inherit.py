"""Does inheriting a parent's weights rank sharing plans as training from scratch does?

One parent (the plain WRN of the space's depth and width) is trained once at the full budget.
Each of N plans spanning the space (the paper's uniform plans, then plans drawn at random with a
fixed seed) is trained from scratch at the full budget, and is also started from the parent by
:func:`softshare.inherit` and fine-tuned for 1, 2 and 4 epochs. For each fine-tuning budget the
script prints Kendall's tau and Spearman's rho between the two rankings of the plans by
validation accuracy, and the compute of an inherited trial against a scratch one (in epochs of
training, the parent's budget amortised over the plans; seconds are shown too). The goal (issue
16): tau >= 0.7 at no more than 25% of the scratch compute per trial.

    python bench/bench_inherit.py --data /work/data          # the 5,000-image task (default)
    python bench/bench_inherit.py --quick                    # synthetic, seconds: checks it runs

Same data, seed and recipe for every run; only the starting weights and the budget differ. The
validation set has 1,000 images (standard error about 1.6 points at 50% accuracy), so plans
closer than that are in effect tied and cap the rank correlation one can expect.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from _common import add_common_arguments, print_header, setup  # noqa: E402

from nas.baselines import baseline_plans  # noqa: E402
from nas.space import SearchSpace, random_plan  # noqa: E402
from softshare import ModelConfig, inherit, load  # noqa: E402
from softshare.data import DataConfig, load_dataset  # noqa: E402
from softshare.train import TrainConfig, train  # noqa: E402

FINE_TUNE = (1, 2, 4)


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two score lists (ties in either count as neither agreement nor not)."""
    concordant = discordant = ties_a = ties_b = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denominator if denominator else 0.0


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their mean rank
        i = j + 1
    return ranks


def spearman_rho(a: list[float], b: list[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks."""
    ra, rb = _ranks(a), _ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else 0.0


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/data", help="folder holding cifar-10-batches-py")
    p.add_argument("--plans", type=int, default=12, help="plans to rank (default 12; quick 5)")
    p.add_argument("--epochs", type=int, default=6, help="full budget in epochs (default 6)")
    p.add_argument(
        "--fine-tune-lr",
        type=float,
        default=0.01,
        help="initial lr of the fine-tuning (cosine over its epochs; default 0.01)",
    )
    p.add_argument("--train-subset", type=int, default=5000, help="training images (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    add_common_arguments(p)
    args = p.parse_args()
    if args.quick:
        args.plans, args.epochs = 5, 2
    for name in ("plans", "epochs", "train_subset"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}.")
    return args


def _plans(space: SearchSpace, n: int, seed: int, shape) -> list:
    """The paper's uniform plans of the space first, then distinct random plans."""
    chosen = {p.text: p for p in baseline_plans(space, max(2, n // 3), shape, None)}
    rng = random.Random(seed)
    for _ in range(10_000):
        if len(chosen) >= n:
            break
        plan = random_plan(space, rng)
        chosen.setdefault(plan.text, plan)
    return list(chosen.values())[:n]


def main() -> None:
    args = _parse_args()
    device = setup(args)
    print_header(
        "rank agreement of inherited, fine-tuned plans with plans trained from scratch",
        "Kendall's tau >= 0.7 at <= 25% of the scratch compute per trial",
        device,
    )
    if args.quick:
        space = SearchSpace(depths=(16,), widths=(1,), max_templates=2)
        dcfg = DataConfig("synthetic", synthetic_train=300, synthetic_test=50, image_size=8)
        dcfg = DataConfig(**(dcfg.to_dict() | {"val_fraction": 0.2}))
    else:
        space = SearchSpace(depths=(22,), widths=(1,), max_templates=3)
        dcfg = DataConfig(
            "cifar10", root=args.data, train_subset=args.train_subset, val_fraction=0.02
        )
    data = load_dataset(dcfg)
    shape = (data.num_classes, data.train.images.shape[1])
    recipe = TrainConfig(
        epochs=args.epochs,
        batch_size=64 if args.quick else 128,
        lr=0.1,
        schedule="cosine",
        seed=args.seed,
        device=str(device),
    )
    tune = {
        e: TrainConfig(**(recipe.to_dict() | {"epochs": e, "lr": args.fine_tune_lr}))
        for e in FINE_TUNE
    }
    plans = _plans(space, args.plans, args.seed, shape)
    depth, width = space.depths[0], space.widths[0]
    print(
        f"data:          {dcfg.dataset}, {len(data.train.labels)} training / {len(data.val.labels)} validation images"
    )
    print(
        f"recipe:        {args.epochs} epochs, cosine lr 0.1; fine-tuning: cosine lr {args.fine_tune_lr} over {FINE_TUNE} epochs; seed {args.seed}"
    )
    print(
        f"plans:         {len(plans)} of depth {depth}, width {width} (the paper's uniform ones first)"
    )

    def run(plan_text: str, cfg: TrainConfig, initial=None, out_dir=None):
        start = time.perf_counter()
        mc = ModelConfig(plan_text, num_classes=data.num_classes, in_channels=shape[1])
        result = train(mc, cfg, data, initial=initial, out_dir=out_dir)
        return result.best_val_acc, time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:  # the parent's last checkpoint: its weights
        parent_acc, parent_s = run(f"WRN-{depth}-{width}", recipe, out_dir=tmp)
        parent_model = load(pathlib.Path(tmp) / "checkpoint.pt", device=str(device))
    print(f"parent:        WRN-{depth}-{width} val {parent_acc:.4f} ({parent_s:.0f} s)\n")
    header = (
        f"{'plan':<34} {'params':>8}  {'scratch':>7}  "
        + "  ".join(f"inh+{e}ep" for e in FINE_TUNE)
        + "  proj.err (max)"
    )
    print(header)
    print("-" * len(header))
    scratch, inherited = [], {e: [] for e in FINE_TUNE}
    seconds = {"scratch": 0.0} | {e: 0.0 for e in FINE_TUNE}
    for plan in plans:
        acc, s = run(plan.text, recipe)
        scratch.append(acc)
        seconds["scratch"] += s
        child = inherit(parent_model, plan)
        err = max((g["relative_error"] for g in child.projection_errors), default=0.0)
        row = []
        for e in FINE_TUNE:
            acc_e, s_e = run(plan.text, tune[e], initial=inherit(parent_model, plan))
            inherited[e].append(acc_e)
            seconds[e] += s_e
            row.append(f"{acc_e:8.4f}")
        params = plan.num_parameters(*shape)
        print(
            f"{plan.name:<34} {params:>8,}  {acc:7.4f}  " + "  ".join(row) + f"  {err:.3f}",
            flush=True,
        )
    n = len(plans)
    print()
    print(
        f"{'fine-tuning':<12} {'Kendall tau':>11} {'Spearman rho':>12} {'compute/trial (epochs)':>24} {'seconds/trial':>14}"
    )
    for e in FINE_TUNE:
        tau, rho = kendall_tau(scratch, inherited[e]), spearman_rho(scratch, inherited[e])
        share = (e + args.epochs / n) / args.epochs  # the parent's budget amortised over the plans
        per = (seconds[e] + parent_s) / n / (seconds["scratch"] / n)
        verdict = "PASS" if tau >= 0.7 and share <= 0.25 else "fail"
        print(f"{e:>2} epoch(s)   {tau:11.3f} {rho:12.3f} {share:23.1%} {per:13.1%}  {verdict}")
    print(
        f"\n(scratch: {args.epochs} epochs a trial; parent {args.epochs} epochs amortised over {n} plans)"
    )


if __name__ == "__main__":
    main()
