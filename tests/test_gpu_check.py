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

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
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
