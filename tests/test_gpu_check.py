"""bench/gpu_check.py --dry-run on the CPU: the prepared GPU check works before it meets a GPU.

It runs with Ray, selenium and psycopg2 hidden (tests/import_probe/sitecustomize.py), as on the
GPU machine, which has torch, torchvision, numpy, pandas, pytest, matplotlib, PyYAML and tqdm
but neither optuna nor Ray nor plotly; every module any of its processes imports must come from
those, the standard library, this repository, or the wheels bench/gpu_carry.sh carries.
Only what holds on a CPU is asserted: the table, every step run, figures present or failed
in one clear line (bench_trainer and bench_sharing may not have --json yet).
"""

import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import time
import types

import pytest

from tests import REPO
from tests.benches import load_bench

HIDDEN = ("ray", "selenium", "psycopg2", "kaleido", "optuna_dashboard", "pyarrow")
ON_THE_GPU_MACHINE = ("torch", "torchvision", "numpy", "pandas", "pytest", "matplotlib")
ON_THE_GPU_MACHINE += ("PyYAML", "tqdm", "pillow")
CARRIED = ("optuna", "SQLAlchemy", "alembic", "Mako", "MarkupSafe", "colorlog", "packaging")
CARRIED += ("typing_extensions", "plotly", "narwhals")
PROJECT = {"nas", "softshare", "search", "tests", "_common", "sitecustomize", "__main__"}
STEPS = ["gpu tests", "bench_trainer", "bench_sharing", "bench_packing"]


def _closure(names) -> set[str]:
    """The distributions ``names`` and everything they require (extras left out), normalised."""
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if norm(name) in seen:
            continue
        seen.add(norm(name))
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def _foreign_imports(log: pathlib.Path) -> set[str]:
    """Imported top-level modules that none of the allowed sources provides."""
    allowed = _closure(ON_THE_GPU_MACHINE + CARRIED)
    dists = importlib.metadata.packages_distributions()
    stdlib = sysconfig.get_paths()["stdlib"]
    foreign = set()
    for line in log.read_text().splitlines():
        name, _, path = line.partition("\t")
        if name in sys.stdlib_module_names or name in PROJECT or name.startswith("bench_"):
            continue
        if not path or path.startswith(str(REPO)) or name in ("__mp_main__",):
            continue  # built in, this repository, multiprocessing's alias of a child's main
        if name.startswith("__editable__"):
            continue  # pip's finder of this project's editable install (not on the GPU machine)
        if path.startswith(stdlib) and "site-packages" not in path:
            continue  # e.g. _sysconfigdata_*
        # a private module inside a package (pandas/_libs/_cyutility...): the package's owner
        top = path.split("site-packages/", 1)[-1].split("/", 1)[0]
        top = top.split(".", 1)[0]
        owners = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(name, dists.get(top, []))}
        if not owners & allowed:
            foreign.add(f"{name} ({path})")
    return foreign


@pytest.mark.slow
def test_gpu_check_dry_run_prints_one_table_from_every_step(tmp_path):
    log = tmp_path / "imports.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "import_probe"), str(REPO)])
    env |= {"IMPORT_PROBE_HIDE": ",".join(HIDDEN), "IMPORT_PROBE_LOG": str(log)}
    result = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--dry-run", "--json", str(tmp_path / "c.json")]
        + ["--out", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0] == "| step | figure | value | goal | result |"
    assert sum(line.startswith("| --- ") for line in table) == 1  # one table
    check = json.loads((tmp_path / "c.json").read_text())
    assert [s["name"] for s in check["steps"]] == STEPS
    by_name = {s["name"]: s for s in check["steps"]}
    for name in STEPS:
        step = by_name[name]
        assert step["rows"] or step["error"], name  # figures, or why not
        if step["error"]:
            assert "\n" not in step["error"]
            assert any(f"| {name} | | failed: " in line for line in table), name
    assert not by_name["gpu tests"]["error"] and not by_name["bench_packing"]["error"]
    assert "skipped" in by_name["gpu tests"]["rows"][0][1]
    packing = [r[0] for r in by_name["bench_packing"]["rows"]]
    assert (
        "WRN-16-1 trials/h, 1 per card" in packing and "WRN-16-4 trials/h, 2 per card" in packing
    )
    imported = {line.partition("\t")[0] for line in log.read_text().splitlines()}
    assert not imported & set(HIDDEN)
    assert "optuna" in imported  # the probe saw the studies' processes
    assert not _foreign_imports(log), "imports the GPU machine lacks"


def _gone(pid: int, wait_s: float = 10.0) -> bool:
    """Whether process ``pid`` ended (or is a zombie nobody has reaped yet) within ``wait_s``."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_a_step_that_times_out_leaves_no_process_behind(tmp_path):
    """A timed-out step is killed with its whole process group: a worker it spawned (here a
    background sleep) no longer keeps the card for the steps after it. Killing only the step's
    own process (pytest) used to leave such workers running."""
    check = load_bench("gpu_check")
    pidfile = tmp_path / "pid"
    step = check.Step("t", ["sh", "-c", f"sleep 120 & echo $! > {pidfile}; wait"], 1)
    check.run_step(step, time.monotonic() + 600, dict(os.environ))  # budget: its 5 s minimum
    pid = int(pidfile.read_text())
    try:
        assert step.error.startswith("timed out after"), step.error
        assert _gone(pid), "the step's spawned process outlived it"
    finally:
        if not _gone(pid, 0):
            os.kill(pid, 9)


def test_the_sharing_overhead_is_measured_as_the_trainer_runs_and_judged_for_the_card(tmp_path):
    """On the card the overhead is measured in the trainer's precision (--precision auto: bf16
    on a card with bf16 tensor cores) and judged against the goal bench_sharing states for the
    device it ran on; a figure from a CPU, or a CPU goal, is not judged as the card's."""
    check = load_bench("gpu_check")
    args = types.SimpleNamespace(dry_run=False, data=str(tmp_path))
    sharing = next(s for s in check._steps(args, tmp_path) if s.name == "bench_sharing")
    assert sharing.command[sharing.command.index("--precision") + 1] == "auto"
    on_card = {"device": "cuda (NVIDIA H100)", "precision": "bf16", "overhead": 0.05}
    step = check.Step("bench_sharing", [], 1)
    check.rows_sharing(step, on_card | {"goal": 0.10}, dry=False)
    assert step.rows == [["sharing overhead per step (bf16)", "5.0%", "<= 10.0%", "PASS"]]
    step = check.Step("bench_sharing", [], 1)
    check.rows_sharing(step, on_card | {"device": "cpu", "goal": 0.03}, dry=False)
    assert step.rows[0][2:] == ["n/a", "n/a"]
    bench = load_bench("bench_sharing")
    assert bench.GOAL_FRACTION_GPU > bench.GOAL_FRACTION  # a goal of its own for the card
