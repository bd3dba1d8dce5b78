"""The prepared GPU check: every GPU figure of the project in one run of at most 8 minutes on one card.

Steps, each a subprocess with its own time budget (a step that fails, times out or lacks a
flag becomes a row "failed: <one line>", and the check goes on):

1. ``python -m pytest -q -m gpu tests/``: the tests that need CUDA (a study and a retrain on
   the card, an out-of-memory trial given back its memory, ...).
2. ``bench/bench_trainer.py --device cuda --json F``: training images/s of the project's trainer
   against the usual CIFAR loop (goal >= 3x on a GPU), and its MFU.
3. ``bench/bench_sharing.py --device cuda --json F``: the cost of soft sharing per step.
4. ``bench/bench_packing.py --device cuda --json F``: trials per hour at 1, 2 and 4 trials per
   card (goal: 4 WRN-16-1-sized per card >= 2x of 1 per card).

Then it prints ONE markdown table: the card, torch version and date, and each figure with its
goal and pass/fail. ``--dry-run`` runs the same steps at tiny sizes on the CPU (the benches'
``--quick``): it proves the script works before it meets a GPU, its figures mean nothing.

    bash bench/gpu_check.sh                        # on the GPU machine (installs the carried wheels)
    python bench/gpu_check.py --data .gpu-data     # the same, where the packages are installed
    python bench/gpu_check.py --dry-run            # CPU rehearsal

It imports only the standard library and torch (for the card's name), and none of its steps
needs Ray or plotly.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
TOTAL_S = 8 * 60  # the whole check on one card
RESERVE_S = 15  # kept for the table, whatever the steps take


@dataclasses.dataclass
class Step:
    name: str
    command: list[str]
    budget_s: float
    json_path: pathlib.Path | None = None
    rows: list[list[str]] = dataclasses.field(default_factory=list)  # figure, value, goal, result
    seconds: float = 0.0
    error: str = ""


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        default=str(REPO / ".gpu-data"),
        help="folder holding cifar-10-batches-py (default .gpu-data, made by bench/gpu_carry.sh)",
    )
    p.add_argument("--dry-run", action="store_true", help="the same steps, tiny, on the CPU")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--out", default=None, help="where the steps' JSON files go (default: temp)")
    return p.parse_args()


def _steps(args, out: pathlib.Path) -> list[Step]:
    py = sys.executable
    dry = args.dry_run
    device = ["--device", "cpu", "--quick"] if dry else ["--device", "cuda"]
    data = [] if dry else ["--data", args.data]
    return [
        Step(
            "gpu tests",
            [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/"],
            90,
        ),
        Step(
            "bench_trainer",
            [py, "bench/bench_trainer.py", *device, *data, "--json", str(out / "trainer.json")]
            + ([] if dry else ["--steps", "50", "--repeats", "3"]),
            75,
            out / "trainer.json",
        ),
        Step(
            "bench_sharing",
            # in the precision the trainer runs on the card (auto: bf16 where it is fast), so
            # the overhead is judged on the steps a study takes; bench_sharing sets the goal
            # of the device it ran on
            [py, "bench/bench_sharing.py", *device, "--precision", "auto"]
            + ["--json", str(out / "sharing.json")]
            + ([] if dry else ["--steps", "20", "--repeats", "7"]),
            60,
            out / "sharing.json",
        ),
        Step(
            "bench_packing",
            [py, "bench/bench_packing.py", *device, *data, "--json", str(out / "packing.json")]
            + ([] if dry else ["--trials", "8", "--epochs", "2"]),
            220,
            out / "packing.json",
        ),
    ]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:200].replace("|", "/")


def run_step(step: Step, deadline: float, env: dict) -> str:
    """Run ``step`` within its budget (and before ``deadline``); returns its output.

    The step runs in a process group of its own, and the whole group is killed when it ends or
    times out: a timed-out pytest or bench leaves no spawned worker holding the card for the
    steps after it (killing only the step's own process did)."""
    budget = max(5.0, min(step.budget_s, deadline - time.monotonic() - RESERVE_S))
    start = time.monotonic()
    proc = subprocess.Popen(
        step.command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=budget)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()  # the group is gone: its pipes close
        code, step.error = None, f"timed out after {budget:.0f} s"
    finally:
        _kill_group(proc.pid)  # whatever the step left behind
    step.seconds = time.monotonic() - start
    output = (out or "") + (err or "")
    if code not in (0, None) and not step.error:
        step.error = f"exit {code}: {_one_line(output)}"
    return output


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _load(step: Step) -> dict | None:
    if step.json_path is None or not step.json_path.is_file():
        return None
    try:
        return json.loads(step.json_path.read_text())
    except ValueError:
        return None


def _verdict(ok: bool | None, dry: bool) -> str:
    if dry:
        return "dry run (not judged)"
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def rows_pytest(step: Step, output: str, dry: bool) -> None:
    summary = _one_line(output) if output else ""
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error", "deselected")}
    for part in summary.replace("=", "").split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            key = words[1].rstrip("s") if words[1].startswith("error") else words[1]
            counts[key if key in counts else words[1]] = int(words[0])
    ran = counts["passed"] + counts["failed"] + counts["error"]
    value = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    if counts["error"]:
        value += f", {counts['error']} errors"
    ok = None if ran == 0 else counts["failed"] == 0 and counts["error"] == 0
    step.rows.append(["gpu tests", value, "all pass", _verdict(ok, dry)])
    if (step.error.startswith("exit 1") and ran) or step.error.startswith("exit 5"):
        step.error = ""  # failed tests are in the row (exit 1); exit 5: none selected


def rows_trainer(step: Step, data: dict, dry: bool) -> None:
    goal = data.get("goal")
    speed = data.get("speedup")
    ok = None if speed is None or goal is None else speed >= float(goal)
    step.rows += [
        ["trainer images/s", _num(data.get("images_per_s")), "", ""],
        ["trainer speedup vs usual loop", _x(speed), f">= {_x(goal)}", _verdict(ok, dry)],
        ["trainer MFU", _pct(data.get("mfu")), "", ""],
    ]
    if data.get("compile_images_per_s") is not None:
        step.rows.append(
            ["trainer images/s, compiled", _num(data["compile_images_per_s"]), "", ""]
        )


def rows_sharing(step: Step, data: dict, dry: bool) -> None:
    goal, overhead = data.get("goal"), data.get("overhead")
    on_card = str(data.get("device", "")).startswith("cuda")
    if not dry and not on_card:  # a CPU figure or a CPU goal says nothing of the card
        goal = None
    ok = None if overhead is None or goal is None else overhead <= float(goal)
    precision = data.get("precision", "?")
    step.rows.append(
        [
            f"sharing overhead per step ({precision})",
            _pct(overhead),
            "n/a" if goal is None else f"<= {_pct(goal)}",
            _verdict(ok, dry),
        ]
    )


def rows_packing(step: Step, data: dict, dry: bool) -> None:
    for row in data.get("rows", []):
        step.rows.append(
            [
                f"{row['size']} trials/h, {row['per_card']} per card",
                f"{_num(row.get('trials_per_hour'))} ({_x(row.get('ratio'))})",
                "",
                "",
            ]
        )
    figure = data.get("ratio_wrn_16_1_x4")
    step.rows.append(
        [
            "packing: 4 WRN-16-1 per card vs 1",
            _x(figure),
            f">= {_x(data.get('goal'))}",
            _verdict(data.get("pass"), dry),
        ]
    )


def _num(v) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def _x(v) -> str:
    return "n/a" if v is None else f"{float(v):.2f}x"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def _card(dry: bool) -> tuple[str, str]:
    import torch

    if torch.cuda.is_available() and not dry:
        return torch.cuda.get_device_name(0), torch.__version__
    return "none (dry run on the CPU)" if dry else "none: no CUDA device", torch.__version__


def main() -> int:
    args = _parse_args()
    deadline = time.monotonic() + TOTAL_S
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    card, torch_version = _card(args.dry_run)
    steps = _steps(args, out)
    parse = {
        "bench_trainer": rows_trainer,
        "bench_sharing": rows_sharing,
        "bench_packing": rows_packing,
    }
    for step in steps:
        print(f"gpu_check: {step.name} (budget {step.budget_s:.0f} s) ...", flush=True)
        output = run_step(step, deadline, env)
        (out / f"{step.name.replace(' ', '_')}.log").write_text(output)
        if step.name == "gpu tests":
            rows_pytest(step, output, args.dry_run)
        elif (data := _load(step)) is not None:
            parse[step.name](step, data, args.dry_run)
        elif not step.error:
            step.error = f"no figures written to {step.json_path.name}: {_one_line(output)}"
        print(f"gpu_check: {step.name} done in {step.seconds:.0f} s {step.error}", flush=True)
    table = _table(card, torch_version, steps, args.dry_run)
    print("\n" + table)
    if args.json:
        pathlib.Path(args.json).write_text(
            json.dumps(
                {
                    "card": card,
                    "torch": torch_version,
                    "dry_run": args.dry_run,
                    "steps": [
                        {
                            "name": s.name,
                            "seconds": round(s.seconds, 1),
                            "error": s.error,
                            "rows": s.rows,
                        }
                        for s in steps
                    ],
                },
                indent=2,
            )
        )
    print(f"logs and figures: {out}")
    return 0


def _table(card: str, torch_version: str, steps: list[Step], dry: bool) -> str:
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "| step | figure | value | goal | result |",
        "| --- | --- | --- | --- | --- |",
        f"| context | card | {card} | | |",
        f"| context | torch | {torch_version} | | |",
        f"| context | date | {date} | | |",
    ]
    for step in steps:
        for figure, value, goal, result in step.rows:
            lines.append(f"| {step.name} | {figure} | {value} | {goal} | {result} |")
        if step.error:
            lines.append(f"| {step.name} | | failed: {step.error} | | FAIL |")
        lines.append(f"| {step.name} | seconds | {step.seconds:.0f} | <= {step.budget_s:.0f} | |")
    if dry:
        lines.append(
            "| context | note | dry run: tiny sizes on the CPU, no figure means anything | | |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
