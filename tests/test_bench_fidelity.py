"""bench/bench_fidelity.py --quick runs end to end and prints every measure it promises (figures mean nothing)."""

import pytest

from tests.benches import run_bench

pytestmark = pytest.mark.slow


def test_bench_fidelity_quick_prints_both_studies_at_every_compute_level(tmp_path):
    done = run_bench(
        "bench_fidelity", "--quick", "--threads", "1", "--trials", "4", "--inherit-trials", "6",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for fragment in (
        "parents:       WRN-16-1 val ",
        "architectures: 4 of the first 4 proposals were the same plan in both",
        "hypervolume at equal compute (epochs",
        "hypervolume at equal compute (seconds",
        "goal:          inherit above scratch at every compute level (epochs): ",
        "rescoring: the inherit study's final front",
        "inherit front scored from scratch: HV ",
    ):
        assert fragment in out, fragment
    assert sum(line.startswith(("25%", "50%", "75%", "100%")) for line in out.splitlines()) == 8
    assert (tmp_path / "fidelity-inherit" / "parents" / "WRN-16-1" / "checkpoint.pt").is_file()
