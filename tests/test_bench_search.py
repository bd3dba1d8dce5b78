"""bench/bench_search.py --quick runs end to end and prints every measure it promises (figures mean nothing)."""

import pytest

from tests.benches import run_bench

pytestmark = pytest.mark.slow


def test_bench_search_quick_prints_every_section(tmp_path):
    done = run_bench("bench_search", "--quick", "--threads", "1", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for fragment in (
        "architecture sequence: 6 of the first 6 proposals were the same plan in both studies",
        "hypervolume at equal compute",
        "goal:          within 50% of the no-ES compute",
        "new architectures",
        "shared plans saving nothing",
        "search against the baselines",
        "dominance (equal compute):",
        "verdict (all trials): ",
    ):
        assert fragment in out, fragment
    rows = [line for line in out.splitlines() if line.startswith(("no ES ", "ES "))]
    assert any("100.0%" in line for line in rows)  # every trained trial a new architecture
    assert (tmp_path / "search_trials.csv").is_file()
