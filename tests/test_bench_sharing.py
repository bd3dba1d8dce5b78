"""bench/bench_sharing.py: --quick end to end, and the --json figures bench/gpu_check.py reads."""

import json
import os
import subprocess
import sys

import pytest

from tests import REPO


@pytest.mark.slow
def test_bench_sharing_quick_writes_the_figures(tmp_path):
    out = tmp_path / "sharing.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/bench_sharing.py",
            "--quick",
            "--threads",
            "1",
            "--json",
            str(out),
        ],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {
        "device", "plans", "precision", "shared_images_per_s", "plain_images_per_s",
        "overhead", "goal",
    }  # fmt: skip
    assert figures["device"] == "cpu" and figures["plans"] == ["SWRN-16-1-2", "WRN-16-1"]
    assert figures["precision"] == "fp32" and figures["goal"] == 0.03
    assert figures["shared_images_per_s"] > 0 and figures["plain_images_per_s"] > 0
    assert isinstance(figures["overhead"], float) and -1 < figures["overhead"] < 10
