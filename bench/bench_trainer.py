"""Training images/s of the project's trainer against the usual CIFAR training loop, same model.

Reference, written the way most CIFAR code is: a Dataset that turns each uint8 image into a PIL
image in __getitem__ (as torchvision.datasets.CIFAR10 does), torchvision transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a DataLoader with
worker processes, an NCHW fp32 model, SGD with Nesterov momentum and a loss.item() per step.

Ours: softshare.train's own epoch function (_train_epoch) on a softshare.train run: the data sit
on the device as uint8 and are augmented by batched tensor ops (softshare.data), channels_last,
precision "auto" (bf16 on CUDA and on CPUs with native bf16, else fp32). Both train the same
SWRN for the same number of steps of the same batch size; contenders are interleaved.

Goal: ours at its defaults >= 1.5x the reference's images/s on the CPU, >= 3x on a GPU.

    python bench/bench_trainer.py --data /work/data     # real CIFAR-10 if DIR has it
    python bench/bench_trainer.py                       # synthetic data
    python bench/bench_trainer.py --device cuda --steps 50 --workers 4
    python bench/bench_trainer.py --quick               # checks the script runs (< 30 s)
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import _common
import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from softshare.data import DataConfig, Dataset, load_dataset
from softshare.models import SWRN, ModelConfig
from softshare.runtime import cpu_has_fast_bf16, resolve_precision

# Private on purpose: _train_epoch is the exact step loop every trial runs (autocast, loss,
# zero_grad, backward, step, the every-20-steps host sync). The public train() would also
# rebuild the model and move the data at every call, which is not per-step cost.
from softshare.train import TrainConfig, _Run, _train_epoch

GOALS = {"cpu": 1.5, "cuda": 3.0}


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


def _ours(config: ModelConfig, data: Dataset, args, device: torch.device, precision: str):
    """A softshare.train run whose training split is swapped for one of exactly steps x batch images."""
    n = (args.steps + args.warmup) * args.batch_size
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))[:n]
    pool = data.train.subset(idx).to(device)
    splits = {
        args.warmup: pool.subset(torch.arange(args.warmup * args.batch_size, device=device)),
        args.steps: pool.subset(torch.arange(args.warmup * args.batch_size, n, device=device)),
    }
    cfg = TrainConfig(
        batch_size=args.batch_size,
        device=str(device),
        precision=precision,
        channels_last=True,
        seed=0,
    )
    run = _Run(
        config,
        cfg,
        dataclasses.replace(data, train=splits[args.steps], val=None, test=splits[args.steps]),
        None,
    )

    def go(steps: int) -> None:
        run.data = dataclasses.replace(run.data, train=splits[steps])
        _, _, seen, _ = _train_epoch(run, None)  # one epoch of exactly `steps` batches (drop_last)
        assert seen == steps * args.batch_size, (seen, steps)

    return go


# ----------------------------------------------------------------------------- main


def _contenders(config, data, args, device) -> tuple[dict, str, bool]:
    """Runners by name; ours at its default precision, then fp32 and bf16 where they differ."""
    auto = resolve_precision("auto", device)
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_fast_bf16()
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
    return runners, auto, bf16


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
    runners, auto, bf16 = _contenders(config, data, args, device)
    for run in runners.values():
        run(args.warmup)
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
    print(f"noise:         {_common.noise_line(seconds)}")
    if args.quick:
        print("note:          --quick sizes: the figures say nothing about the goal")


if __name__ == "__main__":
    main()
