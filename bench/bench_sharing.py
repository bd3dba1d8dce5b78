"""Overhead of soft sharing: one training step of an SWRN against the plain WRN of the same shape.

Both models are built by ``softshare.build_model`` and run the trainer's way: conv weights and
inputs in channels_last, the loss as train.py computes it (autocast, cross entropy on fp32
logits), SGD with the trainer's parameter groups. The only difference between the contenders
is what the plans share, so the ratio is the cost of mixing kernels from template banks (one
tensordot per shared conv per step, and its backward). Goal: at most 3% on the CPU.

On CUDA the inputs live on the device, cudnn.benchmark is on (as in the trainer) and every
sample is timed between torch.cuda.synchronize calls; a step has no host sync of its own.

    python bench/bench_sharing.py                       # SWRN-16-4-2 against WRN-16-4, fp32
    python bench/bench_sharing.py --precision bf16
    python bench/bench_sharing.py --plans SWRN-28-10-6 WRN-28-10 --batch-size 64
    python bench/bench_sharing.py --device cuda --precision auto --steps 20 --json sharing.json
    python bench/bench_sharing.py --quick               # checks the script runs (< 30 s)

``--json PATH`` writes the figures as one flat dict: device, plans [A, B], precision,
shared_images_per_s (A), plain_images_per_s (B), overhead (A/B - 1 as a fraction, the median
of back-to-back pairs, which the goal is judged on) and goal (0.03 on the CPU, 0.10 on a GPU).
"""

from __future__ import annotations

import argparse
from typing import Callable

import _common
import torch
import torch.nn.functional as F

from softshare import build_model, count_parameters, parameter_groups
from softshare.layers import SConv2d
from softshare.models import to_channels_last
from softshare.runtime import autocast_context, resolve_precision

GOAL = "soft-sharing overhead (A/B - 1) at most 3% on the CPU, 10% on a GPU"
GOAL_FRACTION = 0.03  # on the CPU
# On a GPU a step of these small nets takes a few ms, so the mixing's small kernels (one
# tensordot per shared conv, and its backward) weigh more than on a CPU: a stated goal, not yet
# measured on a card (bench/gpu_check.py judges it, in the trainer's precision).
GOAL_FRACTION_GPU = 0.10
DEFAULT_PLANS = ("SWRN-16-4-2", "WRN-16-4")
QUICK_PLANS = ("SWRN-16-1-2", "WRN-16-1")


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--plans",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help=f"the two plans; overhead is A/B - 1 (default {' '.join(DEFAULT_PLANS)})",
    )
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default 128)")
    p.add_argument("--image-size", type=int, default=32, help="input side in pixels (default 32)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="fp32, bf16 autocast as the trainer's precision=bf16, or auto as the trainer "
        "resolves it (default fp32)",
    )
    p.add_argument(
        "--steps", type=int, default=1, help="training steps per timed sample (default 1)"
    )
    p.add_argument(
        "--no-channels-last",
        action="store_true",
        help="NCHW instead of the trainer's channels_last",
    )
    p.add_argument(
        "--no-step", action="store_true", help="forward + backward only, no optimizer step"
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    _common.add_common_arguments(p)
    args = p.parse_args()
    quick = args.quick
    args.plans = args.plans or list(QUICK_PLANS if quick else DEFAULT_PLANS)
    args.batch_size = args.batch_size or (8 if quick else 128)
    args.repeats = args.repeats or (3 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    for name in ("batch_size", "image_size", "classes", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}.")
    return args


def _conv_shapes(model: torch.nn.Module) -> list[tuple[int, ...]]:
    """Kernel shape of every conv in module order, shared or not: what 'same shape' means here."""
    return [
        tuple(m.weight.shape) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, SConv2d))
    ]


def _make_step(
    plan: str, args, device: torch.device, x: torch.Tensor, y: torch.Tensor
) -> tuple[Callable[[], None], torch.nn.Module]:
    """A closure running ``args.steps`` training steps exactly as train.py's _train_epoch does."""
    torch.manual_seed(0)
    model = build_model(plan, num_classes=args.classes).to(device)
    if not args.no_channels_last:
        to_channels_last(model)
    model.train()
    optimizer = torch.optim.SGD(
        parameter_groups(model, 5e-4), lr=0.01, momentum=0.9, nesterov=True
    )

    def step() -> None:
        for _ in range(args.steps):
            with autocast_context(device, args.precision):
                loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not args.no_step:
                optimizer.step()

    return step, model


def main() -> None:
    args = _parse_args()
    device = _common.setup(args)
    args.precision = resolve_precision(args.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer: every step has one shape
    _common.print_header(
        "bench_sharing: training-step time, shared (A) against plain (B)", GOAL, device
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=g)
    x = x.to(device)
    if not args.no_channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch_size,), generator=g).to(device)
    a, b = args.plans  # --plans X X builds two copies: the overhead then shows the noise floor
    try:
        (step_a, model_a), (step_b, model_b) = (_make_step(p, args, device, x, y) for p in (a, b))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    same = _conv_shapes(model_a) == _conv_shapes(model_b)
    layout = "NCHW" if args.no_channels_last else "channels_last"
    work = "forward+backward" + ("" if args.no_step else "+SGD step")
    print(
        f"setup:         batch {args.batch_size}, {args.image_size}x{args.image_size}, {args.precision}, "
        f"{layout}, {work}, {args.steps} step(s) per sample, {args.warmup} warm-up, {args.repeats} repeats"
    )
    print(
        f"conv shapes:   {'identical' if same else 'DIFFERENT (the ratio is not an overhead of sharing)'}"
    )
    for _ in range(args.warmup):
        step_a()
        step_b()
    _common.synchronize(device)
    seconds = _common.interleaved({"A": step_a, "B": step_b}, args.repeats, device)
    ms = {k: [1000 * s / args.steps for s in v] for k, v in seconds.items()}
    rows = [
        [
            f"{k} {plan}",
            f"{count_parameters(model):,}",
            f"{_common.median(ms[k]):.1f}",
            f"{min(ms[k]):.1f}",
            f"{max(ms[k]):.1f}",
        ]
        for k, plan, model in (("A", a, model_a), ("B", b, model_b))
    ]
    print()
    _common.print_table(["plan", "params", "ms/step median", "min", "max"], rows)
    overhead = _common.median(ms["A"]) / _common.median(ms["B"]) - 1
    paired = _common.paired_ratio(ms["A"], ms["B"]) - 1
    print()
    print(
        f"overhead A/B - 1:  {100 * paired:+.1f}% (median of back-to-back pairs), "
        f"{100 * overhead:+.1f}% (ratio of medians)"
    )
    print(f"noise:             {_common.noise_line(ms)}")
    goal = GOAL_FRACTION if device.type == "cpu" else GOAL_FRACTION_GPU
    where = "the CPU" if device.type == "cpu" else "a GPU"
    if args.quick:
        print("goal check:        n/a (--quick sizes say nothing about the goal)")
    else:  # the paired figure: a load change between samples hits both halves of a pair alike
        print(
            f"goal check:        {'met' if paired <= goal else 'NOT met'} (paired overhead "
            f"<= +{100 * goal:.1f}% on {where}, {args.precision})"
        )
    if args.json:
        images = args.batch_size * 1000  # per ms/step figure: images per second
        _common.write_json(
            args.json,
            {
                "device": _common.device_name(device),
                "plans": [a, b],
                "precision": args.precision,
                "shared_images_per_s": images / _common.median(ms["A"]),
                "plain_images_per_s": images / _common.median(ms["B"]),
                "overhead": paired,
                "goal": goal,
            },
        )


if __name__ == "__main__":
    main()
