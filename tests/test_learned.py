"""softshare.learned_plans: the exact plan of least projection error per budget (issue 23)."""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from nas.config import save_study_config
from nas.learned import learned_budgets
from nas.optuna_backend import run_study
from nas.report import report_data, write_report
from nas.space import SearchSpace, stage_options
from nas.study import open_existing
from softshare import SWRN, ModelConfig, inherit
from softshare.learned import group_errors, learned_plans
from softshare.plan import SharingPlan
from tests import REPO
from tests.studies import ONE_RUN, smoke_cfg


def _parent(depth: int, plan: str | None = None, seed: int = 0) -> SWRN:
    """A net whose kernels have structure to find: each stage's kernels are mixes of a few
    directions plus noise, with neighbours alike (so some groups fit small banks well)."""
    torch.manual_seed(seed)
    model = SWRN(ModelConfig(plan or f"WRN-{depth}-1"))
    if plan is None:
        with torch.no_grad():
            for stage in (model.stage1, model.stage2, model.stage3):
                convs = [c for block in list(stage)[1:] for c in (block.conv1, block.conv2)]
                basis = torch.randn(3, *convs[0].weight.shape)
                for i, conv in enumerate(convs):
                    mix = torch.tensor([1.0, 0.3 * i, 0.1 * i * i]) + 0.2 * torch.randn(3)
                    conv.weight.copy_(torch.einsum("t,t...->...", mix, basis))
                    conv.weight.add_(0.3 * torch.randn_like(conv.weight))
    return model


def _brute_force(parent: SWRN, space: SearchSpace, metric: str):
    """Every shared plan of the space as (error, params, stages), errors from an SVD of each
    group's kernels. A plan's parameters are the plain net's plus, per stage, what its grouping
    adds to a plain stage (SharingPlan.num_parameters of that one-stage change)."""
    depth, layers = (
        parent.config.sharing_plan.depth,
        parent.config.sharing_plan.shareable_per_stage,
    )
    plain_stage = ((layers, None),)
    plain = SharingPlan(depth, 1, (plain_stage,) * 3).num_parameters()
    options = stage_options(space, layers)
    costs = []  # per stage: (option, params added, error) for each option
    for index, stage in enumerate((parent.stage1, parent.stage2, parent.stage3)):
        convs = [c for block in list(stage)[1:] for c in (block.conv1, block.conv2)]
        kernels = [c.weight.detach().double().reshape(-1) for c in convs]
        row = []
        for option in options:
            error, start = 0.0, 0
            for n, t in option:
                if t is not None:
                    s = torch.linalg.svdvals(torch.stack(kernels[start : start + n]))
                    lost, total = float((s[t:] ** 2).sum()), float((s**2).sum())
                    error += lost if metric == "squared" else math.sqrt(lost / total)
                start += n
            stages = [plain_stage] * 3
            stages[index] = option
            added = SharingPlan(depth, 1, tuple(stages)).num_parameters() - plain
            row.append((option, added, error))
        costs.append(row)
    return [
        (sum(c[2] for c in combo), plain + sum(c[1] for c in combo), tuple(c[0] for c in combo))
        for combo in itertools.product(*costs)
        if any(t is not None for c in combo for _, t in c[0])
    ]


@pytest.mark.parametrize(
    "depth,space",
    [
        (16, SearchSpace(depths=(16,), widths=(1,), max_templates=4)),
        (16, SearchSpace(depths=(16,), widths=(1,), allow_cuts=False)),
        (22, SearchSpace(depths=(22,), widths=(1,), max_templates=3)),
        (22, SearchSpace(depths=(22,), widths=(1,), min_templates=2, allow_unshared_groups=False)),
    ],
)
@pytest.mark.parametrize("metric", ["relative", "squared"])
def test_the_dynamic_programme_finds_what_brute_force_finds(depth, space, metric):
    parent = _parent(depth)
    plain = SharingPlan.from_dict(
        {"depth": depth, "width": 1, "stages": [[[2 * ((depth - 4) // 6 - 1), None]]] * 3}
    ).num_parameters()
    budgets = [int(plain * f) for f in (0.45, 0.55, 0.7, 0.85, 1.0, 1.2)]
    found = learned_plans(
        parent, budgets, templates=space.template_choices, cuts=space.allow_cuts, error=metric
    )
    every = _brute_force(parent, space, metric)
    for budget, got in zip(budgets, found):
        fits = [p for p in every if p[1] <= budget]
        if not fits:
            assert got is None, (budget, got)
            continue
        want = min(fits, key=lambda p: (p[0], p[1]))
        assert got is not None and got.budget == budget
        assert got.error == pytest.approx(want[0], rel=1e-6, abs=1e-9), (budget, got.plan.text)
        assert got.params <= budget and got.params == got.plan.num_parameters()
        assert got.plan.is_shared
        # the plan is one the space holds
        assert all(
            stage in stage_options(space, got.plan.shareable_per_stage)
            for stage in got.plan.stages
        )


def test_errors_agree_with_inherit_and_budgets_bind():
    parent = _parent(22)
    plans = learned_plans(parent, [140_000, 180_000, 230_000], error="relative")
    errors = [p.error for p in plans]
    assert (
        errors == sorted(errors, reverse=True) and errors[0] > errors[-1]
    )  # more room, less error
    for found in plans:
        child = inherit(parent, found.plan)
        assert sum(g["relative_error"] for g in child.projection_errors) == pytest.approx(
            found.relative
        )
        assert found.squared >= 0 and found.relative == found.error
    # a budget below every shared plan finds none; nothing shared is never returned
    assert learned_plans(parent, [1_000])[0] is None


def test_a_shared_parent_is_read_through_its_mixed_kernels():
    parent = _parent(16, plan="16-1:2x1/2x2/2")
    rows = group_errors(parent)
    # stage 1 shares one template: its two mixed kernels are parallel, a bank of 1 loses nothing
    stage1 = [g for g in rows if g.stage == 1 and g.layers == 2 and g.templates == 1]
    assert stage1[0].relative == pytest.approx(0.0, abs=1e-6)
    stage3 = [g for g in rows if g.stage == 3 and g.layers == 2 and g.templates == 1]
    assert stage3[0].relative > 0.1  # two independent random kernels
    assert {(g.stage, g.start, g.stop) for g in rows} == {
        (s, a, b) for s in (1, 2, 3) for a in range(2) for b in range(a + 1, 3)
    }


def test_bad_input_is_refused_in_one_line():
    parent = _parent(16)
    with pytest.raises(ValueError, match="softshare SWRN"):
        learned_plans(torch.nn.Linear(2, 2), [100_000])
    with pytest.raises(
        ValueError, match="error must be one of relative, squared|squared, relative"
    ):
        learned_plans(parent, [100_000], error="l1")
    with pytest.raises(ValueError, match="parameter count >= 1"):
        learned_plans(parent, [0])


# --- in a study: --learned-plans N ----------------------------------------------------------------


def test_budgets_are_spread_log_evenly_between_the_ends():
    assert learned_budgets(100, 100_000, 2) == [1000, 10_000]  # the ends are baselines already
    assert learned_budgets(100, 10_000, 1) == [1000]
    assert learned_budgets(100, 10_000, 0) == [] and learned_budgets(200, 100, 2) == []


def _study_cfg(name, **kw):
    return smoke_cfg(name, **({"n_trials": 4, "learned_plans": 2} | ONE_RUN | kw))


def _check_learned(study, folder: pathlib.Path) -> list:
    """The learned plans were queued once, right behind the baselines, marked, and asked the
    sampler with their values (so it learns from them); returns the learned trials."""
    rows = study.user_attrs["learned_plans"]
    assert 1 <= len(rows) <= 2 and len({r["plan"] for r in rows}) == len(rows)
    trials = study.get_trials()
    learned = [t for t in trials if t.user_attrs.get("learned")]
    assert [t.user_attrs["plan"] for t in learned] == [r["plan"] for r in rows]
    baselines = [t.number for t in trials if t.user_attrs.get("baseline")]
    assert max(baselines) < min(t.number for t in learned)  # right behind the baselines
    for t in learned:
        assert t.params and t.params["depth"] == 16  # the space's values: told to the sampler
        assert t.user_attrs["status"] in ("complete", "pruned")
    for r in rows:
        assert r["parent"] == "WRN-16-1" and r["params"] <= r["budget"]
    run = json.loads((folder / "parents" / "WRN-16-1" / "metrics.json").read_text())
    assert run["status"] == "complete"
    return learned


@pytest.mark.slow
def test_a_study_queues_its_learned_plans_once_and_marks_them(tmp_path, monkeypatch):
    folder = tmp_path / "l"
    study = run_study(_study_cfg("l"), folder)
    learned = _check_learned(study, folder)
    page = write_report(folder).read_text()
    assert 'id="projection-WRN-16-1"' in page  # the parent's error per candidate group
    assert all(t.user_attrs["plan_name"] in page for t in learned)
    data = report_data(folder)
    assert {(g["stage"], g["start"], g["stop"]) for g in data.projection["WRN-16-1"]} == {
        (s, a, b) for s in (1, 2, 3) for a in range(2) for b in range(a + 1, 3)
    }
    table = pd.read_csv(folder / "report" / "trials.csv")
    assert list(table[table["role"] == "learned"]["trial"]) == [t.number for t in learned]
    # the live report refreshes every minute: a parent's checkpoint is read once, again only
    # when it is rewritten
    import nas.report.data

    loads = []
    real = nas.report.data.load_parent
    monkeypatch.setattr(
        nas.report.data, "load_parent", lambda *a, **k: loads.append(a) or real(*a, **k)
    )
    assert report_data(folder).projection == data.projection and not loads
    checkpoint = folder / "parents" / "WRN-16-1" / "checkpoint.pt"
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 10**9))
    assert report_data(folder).projection == data.projection and len(loads) == 1
    stamp = (folder / "parents" / "WRN-16-1" / "checkpoint.pt").stat().st_mtime_ns
    before = len(study.get_trials())
    again = run_study(_study_cfg("l", n_trials=5), folder)
    assert (folder / "parents" / "WRN-16-1" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert len([t for t in again.get_trials() if t.user_attrs.get("learned")]) == len(learned)
    assert len(again.get_trials()) == before + 1  # the sampler went on


def _parent_done(folder: pathlib.Path) -> bool:
    try:
        run = json.loads((folder / "parents" / "WRN-16-1" / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return run.get("status") == "complete"


@pytest.mark.slow
def test_a_study_killed_after_its_parent_trained_resumes_without_training_it_again(tmp_path):
    folder = tmp_path / "k"
    folder.mkdir()
    cfg = _study_cfg("k", recipe={"epochs": 6})
    save_study_config(cfg, folder)
    args = [sys.executable, "search.py", "study", "k", "--results-dir", str(tmp_path)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None and not _parent_done(folder):
            time.sleep(0.02)
        assert proc.poll() is None, "the study ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _parent_done(folder)
    stamp = (folder / "parents" / "WRN-16-1" / "checkpoint.pt").stat().st_mtime_ns
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder / "parents" / "WRN-16-1" / "checkpoint.pt").stat().st_mtime_ns == stamp
    _, study = open_existing(folder)
    learned = _check_learned(study, folder)
    assert "(learned)" in done.stderr + done.stdout  # the terminal marks them
    assert len(learned) == len(study.user_attrs["learned_plans"])
