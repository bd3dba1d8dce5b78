"""What both benchmarks share: the machine header, interleaved timing, medians and a table.

Not a library module: the scripts in bench/ import it by file name (Python puts the script's
folder first on sys.path), so it is never installed and softshare never imports it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from typing import Callable

import torch

from softshare.runtime import cpu_has_fast_bf16, resolve_device


def add_common_arguments(parser) -> None:
    """--device, --repeats, --warmup, --threads and --quick, the same in every benchmark."""
    parser.add_argument(
        "--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed samples per contender, interleaved A B A B ...; the median is reported",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps per contender before timing"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) before anything runs (default: torch's choice)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, a few seconds: checks that the script runs, figures mean nothing",
    )


def setup(args) -> torch.device:
    """Threads first (they must be set before the first parallel op), then the device."""
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, but got {args.threads}.")
        torch.set_num_threads(args.threads)
    for name in ("repeats", "warmup"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "repeats" else 0):
            raise SystemExit(
                f"--{name} must be >= {1 if name == 'repeats' else 0}, but got {value}."
            )
    try:
        return resolve_device(args.device)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_header(title: str, goal: str, device: torch.device) -> None:
    """The machine, the software and the moment, so a figure can be put in context later."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    print(f"== {title}")
    print(f"goal:          {goal}")
    print(f"date:          {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu:           {_cpu_model()}, {cores} cores ({usable} usable by this process)")
    print(
        f"cpu bf16:      {'native (avx512_bf16/amx_bf16)' if cpu_has_fast_bf16() else 'not native (emulated)'}"
    )
    print(f"torch:         {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    print(f"device:        {device}" + (f" ({gpu})" if device.type == "cuda" else ""))
    print(f"load average:  {load} (1/5/15 min; timings are only comparable within this run)")


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: what the --json figures say they ran on."""
    if device.type != "cuda":
        return str(device)
    return f"{device} ({torch.cuda.get_device_name(device)})"


def write_json(path: str, figures: dict) -> None:
    """The figures as one flat JSON dict, for scripts that collect them (bench/gpu_check.py)."""
    with open(path, "w") as f:
        json.dump(figures, f, indent=2, sort_keys=True)
        f.write("\n")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    contenders: dict[str, Callable[[], None]], repeats: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of each contender, called in turn A B C A B C ... ``repeats`` times.

    Interleaving spreads background load and clock changes over every contender alike; timing
    one contender fully and then the next would charge a load spike to whichever ran then.
    """
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of a[i] / b[i]: each pair ran back to back, so slow drift in the load cancels."""
    return statistics.median(x / y for x, y in zip(a, b))


def noise_line(samples: dict[str, list[float]]) -> str:
    """Worst (max - min) / median over the contenders, and whether it swamps a few-% effect."""
    spread = max((max(v) - min(v)) / median(v) for v in samples.values())
    verdict = (
        "quiet enough for a few-% effect"
        if spread < 0.1
        else "noisy: rerun on an idle machine before quoting a few-% figure"
    )
    return f"samples spread up to {100 * spread:.0f}% of their median; {verdict}"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:  # first column left-aligned, numbers right-aligned
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        )

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
