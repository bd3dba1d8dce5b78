"""Training images/s of the project's trainer against the usual CIFAR training loop, same model.

Reference, written the way most CIFAR code is: a Dataset that turns each uint8 image into a PIL
image in __getitem__ (as torchvision.datasets.CIFAR10 does), torchvision transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a DataLoader with
worker processes, an NCHW fp32 model, SGD with Nesterov momentum and a loss.item() per step.

Ours: softshare.train's own epoch function (_train_epoch) on a softshare.train run: the data sit
on the device as uint8 and are augmented by batched tensor ops (softshare.data), channels_last,
precision "auto" (bf16 on CUDA cards with bf16 tensor cores and on CPUs with native bf16, else
fp32), no host sync in the step loop. Both train the same SWRN for the same number of steps of
the same batch size; contenders are interleaved. On CUDA both run with cudnn.benchmark on (the
trainer sets it; most CIFAR code does too), so the ratio is not about autotuning.

``--compile`` adds ours with TrainConfig.compile (torch.compile; on by default on CUDA, where
its figure is what a compiled run would get; compilation falls in the warm-up). The model-FLOPs
utilisation (MFU) of ours at its defaults: 3 x 2 x the forward's mult-adds
(softshare.plan.SharingPlan.multiply_adds) per image, times images/s, over the card's dense
bf16 peak (``PEAK_BF16_TFLOPS``, matched by the device name; ``--peak-tflops`` overrides, and
is the only source on the CPU).

Goal: ours at its defaults >= 1.5x the reference's images/s on the CPU, >= 3x on a GPU.

    python bench/bench_trainer.py --data /work/data     # real CIFAR-10 if DIR has it
    python bench/bench_trainer.py                       # synthetic data
    python bench/bench_trainer.py --device cuda --steps 50 --workers 4 --json trainer.json
    python bench/bench_trainer.py --quick               # checks the script runs (< 30 s)
    python bench/bench_trainer.py --quick --compile     # also the compiled contender

``--json PATH`` writes the figures as one flat dict: device, plan, precision (of ours at its
defaults), images_per_s (ours), baseline_images_per_s (the reference, fp32), speedup (the median
of back-to-back ratios, the figure the goal is judged on), goal, mfu (a fraction, or null),
peak_tflops (or null), compile_images_per_s (or null).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re

import _common
import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from softshare.data import DataConfig, Dataset, load_dataset
from softshare.models import SWRN, ModelConfig
from softshare.plan import parse_plan
from softshare.runtime import cpu_has_fast_bf16, cuda_has_fast_bf16, resolve_precision

# Private on purpose: _train_epoch is the exact step loop every trial runs (autocast, loss,
# zero_grad, backward, step, the device-side tallies and progress snapshots). The public
# train() would also rebuild the model and move the data at every call, not per-step cost.
from softshare.train import TrainConfig, _Run, _train_epoch

GOALS = {"cpu": 1.5, "cuda": 3.0}
# Dense bf16 tensor-core peaks in TFLOP/s (no sparsity), from NVIDIA's data sheets; the first
# pattern found in torch.cuda.get_device_name wins, so the specific names come first.
PEAK_BF16_TFLOPS = (
    (r"B200", 2250.0),
    (r"H200", 989.0),  # GH200 too: the same Hopper chip
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100|H800", 989.0),  # SXM
    (r"A100|A800", 312.0),
    (r"L40S", 362.0),
    (r"L40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
)


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        default="data",
        help="folder holding cifar-10-batches-py; synthetic data if it has none (default data)",
    )
    p.add_argument("--plan", default=None, help="model plan (default SWRN-16-4-2, WRN-16-4 size)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default 128)")
    p.add_argument(
        "--steps", type=int, default=None, help="training steps per timed sample (default 20)"
    )
    p.add_argument(
        "--workers", type=int, default=2, help="reference DataLoader num_workers (default 2)"
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time ours with torch.compile (default: on CUDA yes, on the CPU no)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's dense bf16 peak for the MFU (default: known GPUs by name; none on CPU)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    _common.add_common_arguments(p)
    args = p.parse_args()
    quick = args.quick
    args.plan = args.plan or ("SWRN-16-1-2" if quick else "SWRN-16-4-2")
    args.batch_size = args.batch_size or (16 if quick else 128)
    args.steps = args.steps or (2 if quick else 20)
    args.repeats = args.repeats or (2 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    for name in ("batch_size", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, but got {getattr(args, name)}.")
    if args.workers < 0:
        p.error(f"--workers must be >= 0, but got {args.workers}.")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        p.error(f"--peak-tflops must be > 0, but got {args.peak_tflops}.")
    return args


def _load(args) -> tuple[Dataset, str]:
    """Real CIFAR-10 where --data holds it, else synthetic; all of it as training data."""
    needed = (args.steps + args.warmup) * args.batch_size
    has_cifar = any(
        os.path.isfile(os.path.join(d, "data_batch_1"))
        for d in (os.path.join(args.data, "cifar-10-batches-py"), args.data)
    )
    if has_cifar:
        cfg = DataConfig(dataset="cifar10", root=args.data, val_fraction=0.0)
        what = f"CIFAR-10 from {os.path.abspath(args.data)}"
    else:
        cfg = DataConfig(
            dataset="synthetic",
            val_fraction=0.0,
            synthetic_train=max(2000, needed),
            synthetic_test=10,
            image_size=32,
        )
        what = f"synthetic (no cifar-10-batches-py in {os.path.abspath(args.data)})"
    data = load_dataset(cfg)
    if len(data.train) < needed:
        raise SystemExit(
            f"--steps + --warmup need {needed} images, but {what} has {len(data.train)}."
        )
    return data, f"{what}, {len(data.train):,} training images"


# ----------------------------------------------------------------------------- the reference


class _PILDataset(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's data path: HWC uint8 array -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.data = np.ascontiguousarray(
            images.permute(0, 2, 3, 1).numpy()
        )  # (N, H, W, C) as torchvision
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        img, target = Image.fromarray(self.data[index]), self.targets[index]
        return self.transform(img), target


class _Stream:
    """Batches of a DataLoader epoch after epoch, as the usual loop meets them."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader, self.iterator = loader, iter(loader)

    def next(self):
        try:
            return next(self.iterator)
        except StopIteration:  # a new epoch: workers restart, as without persistent_workers
            self.iterator = iter(self.loader)
            return next(self.iterator)


def _reference_stream(data: Dataset, args, device: torch.device) -> _Stream:
    size = data.train.images.shape[-1]
    transform = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )
    dataset = _PILDataset(data.train.images, data.train.labels, transform)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    return _Stream(loader)


def _reference(config: ModelConfig, stream: _Stream, device: torch.device, precision: str):
    """The usual loop: NCHW model, SGD Nesterov, criterion, loss.item() and accuracy per step."""
    torch.manual_seed(0)
    model = SWRN(config).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    criterion = nn.CrossEntropyLoss()

    def run(steps: int) -> None:
        model.train()
        train_loss, correct = 0.0, 0
        for _ in range(steps):
            inputs, targets = stream.next()
            inputs, targets = (
                inputs.to(device, non_blocking=True),
                targets.to(device, non_blocking=True),
            )
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                outputs = model(inputs)
                loss = criterion(outputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_loss += loss.item()
            correct += outputs.argmax(1).eq(targets).sum().item()

    return run


# ----------------------------------------------------------------------------- ours


def _ours(
    config: ModelConfig,
    data: Dataset,
    args,
    device: torch.device,
    precision: str,
    compile: bool = False,
):
    """A softshare.train run whose training split is swapped for one of exactly steps x batch images."""
    n = (args.steps + args.warmup) * args.batch_size
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))[:n]
    pool = data.train.subset(idx).to(device)
    timed = pool.subset(torch.arange(args.warmup * args.batch_size, n, device=device))
    cfg = TrainConfig(
        batch_size=args.batch_size,
        device=str(device),
        precision=precision,
        channels_last=True,
        compile=compile,
        seed=0,
    )
    run = _Run(
        config,
        cfg,
        dataclasses.replace(data, train=timed, val=None, test=timed),
        None,
    )

    def go(steps: int) -> None:
        # The timed steps' split is made once; a warm-up of any length (one step at least with
        # --compile, whatever --warmup says) takes the pool's first images, wrapping around.
        if steps == args.steps:
            train = timed
        else:
            train = pool.subset(torch.arange(steps * args.batch_size, device=device) % n)
        run.data = dataclasses.replace(run.data, train=train)
        _, _, seen, _ = _train_epoch(run, None)  # one epoch of exactly `steps` batches (drop_last)
        assert seen == steps * args.batch_size, (seen, steps)

    return go


# ----------------------------------------------------------------------------- main


def _contenders(config, data, args, device) -> tuple[dict, str, bool]:
    """Runners by name; ours at its default precision, then fp32 and bf16 where they differ."""
    auto = resolve_precision("auto", device)
    bf16 = cuda_has_fast_bf16(device) if device.type == "cuda" else cpu_has_fast_bf16()
    stream = _reference_stream(data, args, device)
    runners = {
        "reference fp32": _reference(config, stream, device, "fp32"),
        f"ours auto ({auto})": _ours(config, data, args, device, auto),
    }
    if auto != "fp32":
        runners["ours fp32"] = _ours(config, data, args, device, "fp32")
    if bf16:
        runners["reference bf16"] = _reference(config, stream, device, "bf16")
        if auto != "bf16":
            runners["ours bf16"] = _ours(config, data, args, device, "bf16")
    if args.compile:
        runners[COMPILED.format(auto)] = _ours(config, data, args, device, auto, compile=True)
    return runners, auto, bf16


COMPILED = "ours auto ({}), compiled"


def _peak_tflops(args, device: torch.device) -> float | None:
    if args.peak_tflops is not None or device.type != "cuda":
        return args.peak_tflops
    name = torch.cuda.get_device_name(device)
    return next((peak for pattern, peak in PEAK_BF16_TFLOPS if re.search(pattern, name)), None)


def _warm_up(runners: dict, steps: int) -> None:
    """Untimed steps (compilation and autotuning fall here); a compiled contender that fails
    to compile is dropped with one line, so the other figures still come out."""
    for name, run in list(runners.items()):
        try:
            run(steps)
        except Exception as exc:  # noqa: BLE001 - torch.compile raises many kinds
            if name.startswith("ours") and name.endswith("compiled"):
                print(
                    f"compile:       failed, left out ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                )
                del runners[name]
            else:
                raise


def _comparisons(
    seconds: dict, images: int, auto: str, bf16: bool, device: torch.device, quick: bool
) -> list[list[str]]:
    """Rows of the comparison table; the ratio of medians, then the median of back-to-back pairs."""
    ips = {name: images / _common.median(s) for name, s in seconds.items()}

    def row(label: str, ref: str, ours: str, goal: str = "") -> list[str]:
        paired = _common.paired_ratio(seconds[ref], seconds[ours])
        return [
            label,
            f"{ips[ref]:,.0f}",
            f"{ips[ours]:,.0f}",
            f"{ips[ours] / ips[ref]:.2f}x ({paired:.2f}x)",
            goal,
        ]

    target = GOALS.get(device.type, GOALS["cuda"])
    # the paired figure decides: a load change between rounds hits both halves of a pair alike
    ratio = _common.paired_ratio(seconds["reference fp32"], seconds[f"ours auto ({auto})"])
    goal = f">= {target}x: " + (
        "n/a (--quick)" if quick else "met" if ratio >= target else "NOT met"
    )
    rows = [
        row(
            f"defaults (ours {auto}, reference fp32)",
            "reference fp32",
            f"ours auto ({auto})",
            goal,
        )
    ]
    ours_fp32 = "ours fp32" if auto != "fp32" else f"ours auto ({auto})"
    rows.append(
        row(
            "equal precision fp32" + (" (= defaults)" if auto == "fp32" else ""),
            "reference fp32",
            ours_fp32,
        )
    )
    if bf16:
        rows.append(
            row(
                "equal precision bf16",
                "reference bf16",
                "ours bf16" if auto != "bf16" else "ours auto (bf16)",
            )
        )
    else:
        where = "this CPU" if device.type == "cpu" else "this GPU"
        rows.append(["equal precision bf16", "n/a", "n/a", "n/a", f"no native bf16 on {where}"])
    return rows


def main() -> None:
    args = _parse_args()
    device = _common.setup(args)
    goal = f"ours >= {GOALS['cpu']}x the reference's images/s on the CPU, >= {GOALS['cuda']}x on a GPU"
    _common.print_header(
        "bench_trainer: training images/s, softshare.train against the usual loop", goal, device
    )
    data, what = _load(args)
    config = ModelConfig(args.plan, num_classes=data.num_classes)
    print(f"data:          {what}")
    print(
        f"setup:         {args.plan}, batch {args.batch_size}, {args.steps} steps per sample, "
        f"warm-up {args.warmup} steps, {args.repeats} repeats; reference DataLoader num_workers={args.workers}"
    )
    if args.compile is None:
        args.compile = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # for both contenders (ours sets it anyway)
    runners, auto, bf16 = _contenders(config, data, args, device)
    _warm_up(runners, max(args.warmup, 1 if args.compile else 0))
    _common.synchronize(device)
    seconds = _common.interleaved(
        {name: (lambda r=run: r(args.steps)) for name, run in runners.items()},
        args.repeats,
        device,
    )
    images = args.steps * args.batch_size
    print()
    _common.print_table(
        ["contender", "images/s median", "min", "max"],
        [
            [
                name,
                f"{images / _common.median(s):,.0f}",
                f"{images / max(s):,.0f}",
                f"{images / min(s):,.0f}",
            ]
            for name, s in seconds.items()
        ],
    )
    print()
    _common.print_table(
        ["comparison", "reference img/s", "ours img/s", "ours/ref (paired)", "goal"],
        _comparisons(seconds, images, auto, bf16, device, args.quick),
    )
    print()
    figures = _figures(args, data, device, seconds, images, auto)
    print(f"model FLOPs:   {_flops_line(figures, args, data)}")
    print(f"noise:         {_common.noise_line(seconds)}")
    if args.quick:
        print("note:          --quick sizes: the figures say nothing about the goal")
    if args.json:
        _common.write_json(args.json, figures)


def _flops_per_image(args, data: Dataset) -> int:
    """3 x 2 x the forward's mult-adds: a multiply-add is 2 FLOPs, backward costs 2 forwards."""
    size = data.train.images.shape[-1]
    return 6 * parse_plan(args.plan).multiply_adds(size, data.num_classes)


def _figures(args, data: Dataset, device, seconds: dict, images: int, auto: str) -> dict:
    """The flat dict --json writes (the keys bench/gpu_check.py reads)."""
    ips = {name: images / _common.median(s) for name, s in seconds.items()}
    ours = f"ours auto ({auto})"
    peak = _peak_tflops(args, device)
    mfu = _flops_per_image(args, data) * ips[ours] / (peak * 1e12) if peak else None
    return {
        "device": _common.device_name(device),
        "plan": args.plan,
        "precision": auto,
        "images_per_s": ips[ours],
        "baseline_images_per_s": ips["reference fp32"],
        "speedup": _common.paired_ratio(seconds["reference fp32"], seconds[ours]),
        "goal": GOALS.get(device.type, GOALS["cuda"]),
        "mfu": mfu,
        "peak_tflops": peak,
        "compile_images_per_s": ips.get(COMPILED.format(auto)),
    }


def _flops_line(figures: dict, args, data: Dataset) -> str:
    per_image = _flops_per_image(args, data)
    line = f"{per_image / 1e9:.3f} GFLOP per training image (3 x 2 x {per_image / 6e6:,.1f}M mult-adds)"
    if figures["mfu"] is None:
        return line + "; MFU n/a (no known bf16 peak: --peak-tflops X)"
    return (
        line + f"; MFU {100 * figures['mfu']:.2f}% of {figures['peak_tflops']:g} TFLOP/s "
        f"dense bf16 (ours at its defaults, {figures['precision']})"
    )


if __name__ == "__main__":
    main()
