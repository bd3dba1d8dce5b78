import json
import statistics

import pandas as pd
import pytest
import torch

import nas.retrain as retrain_module
from nas.report import report_data, terminal_summary, write_report
from nas.report.results import trial_rows
from nas.retrain import parse_count, pick, retrain
from nas.study import open_existing
from softshare import load
from softshare.train import TrainConfig
from tests.studies import make_study

# Params on 10 classes: WRN-10-1 77,850; SWRN-16-1-1 126,688; WRN-16-1 175,066; SWRN-16-2-1 498,144; WRN-16-2 691,674
HAND = [
    ("WRN-10-1", 0.50, "COMPLETE", {}),
    ("SWRN-16-1-1", 0.60, "COMPLETE", {}),
    ("WRN-16-1", 0.58, "COMPLETE", {}),  # dominated by SWRN-16-1-1 (fewer params, more accurate)
    ("SWRN-16-2-1", 0.70, "COMPLETE", {}),
    ("WRN-16-2", 0.71, "COMPLETE", {}),
    ("SWRN-16-2-2", 0.20, "PRUNED", {"reason": "rung 1"}),
]


@pytest.fixture
def hand_rows(tmp_path):
    folder = make_study(tmp_path / "hand", HAND)
    _, study = open_existing(folder)
    return trial_rows(study)


def test_pick_rules_on_a_hand_made_study(hand_rows):
    assert pick(hand_rows, "best")["plan_name"] == "WRN-16-2"
    assert pick(hand_rows, "trial:1")["plan_name"] == "SWRN-16-1-1"
    assert pick(hand_rows, "max-params:200k")["plan_name"] == "SWRN-16-1-1"
    assert pick(hand_rows, "max-params:80k")["plan_name"] == "WRN-10-1"
    # Front in (acc, log10 params): 0 (0.50, 4.891), 1 (0.60, 5.103), 3 (0.70, 5.697), 4 (0.71, 5.840).
    # Normalised to [0, 1] (1 = best) the sums are 1.0, 1.253, 1.102, 1.0: trial 1 is the knee.
    assert pick(hand_rows, "knee")["trial"] == 1


def test_impossible_picks_list_the_nearest_options(hand_rows):
    with pytest.raises(
        ValueError, match=r"no frontier member has <= 1,000 parameters; the smallest are: trial 0"
    ):
        pick(hand_rows, "max-params:1k")
    with pytest.raises(ValueError, match="no trial 42; frontier members: trial 0"):
        pick(hand_rows, "trial:42")
    with pytest.raises(ValueError, match="trial 5 is pruned"):
        pick(hand_rows, "trial:5")
    with pytest.raises(ValueError, match="unknown pick 'worst'"):
        pick(hand_rows, "worst")


@pytest.mark.parametrize(
    "text,count", [("5M", 5_000_000), ("250k", 250_000), ("1.5e6", 1_500_000), ("12", 12)]
)
def test_parse_count(text, count):
    assert parse_count(text) == count


def test_parse_count_rejects_garbage():
    with pytest.raises(ValueError, match="cannot read a parameter count"):
        parse_count("lots")


RECIPE = TrainConfig(
    epochs=2, batch_size=32, schedule="cosine", lr=0.05, device="cpu", precision="fp32"
)


@pytest.mark.slow
def test_retrain_end_to_end_with_seeds_then_rerun_is_a_no_op(tmp_path):
    folder = make_study(tmp_path / "s", HAND)
    summary = retrain(folder, "trial:1", RECIPE, seeds=2)
    assert summary["plan_name"] == "SWRN-16-1-1" and len(summary["seeds"]) == 2
    accs = [r["test_acc"] for r in summary["seeds"]]
    assert summary["test_acc_std"] == pytest.approx(statistics.stdev(accs))
    assert summary["seeds"][0]["seed_dir"].endswith("seed-0") and summary["seeds"][1][
        "seed_dir"
    ].endswith("seed-1")
    out = folder / "retrain" / "0001"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["test_acc_mean"] == pytest.approx(
        sum(r["test_acc"] for r in summary["seeds"]) / 2
    )
    for seed in (0, 1):
        assert (out / f"seed-{seed}" / "checkpoint.pt").is_file() and (
            out / f"seed-{seed}" / "model_best.pt"
        ).is_file()
    model = load(out / "seed-0" / "checkpoint.pt")
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(model(x), load(out / "seed-0" / "checkpoint.pt")(x))
    stamp = (out / "seed-0" / "test.json").stat().st_mtime_ns
    again = retrain(folder, "trial:1", RECIPE, seeds=2)
    assert (
        again["seeds"] == summary["seeds"]
        and (out / "seed-0" / "test.json").stat().st_mtime_ns == stamp
    )

    # The report shows the retrained test accuracy beside the search's validation accuracy.
    data = report_data(folder)
    row = next(r for r in data.rows if r["trial"] == 1)
    assert row["retrain_test_acc"] == pytest.approx(summary["test_acc_mean"])
    assert row["retrain_seeds"] == 2 and row["retrain_epochs"] == 2
    assert all(r["retrain_test_acc"] is None for r in data.rows if r["trial"] != 1)
    text = (
        f"{summary['test_acc_mean']:.2%} ± {100 * summary['test_acc_std']:.2f} (2 seeds, 2 epochs)"
    )
    assert (
        f"retrained: trial 1 (SWRN-16-1-1, 126,688 params): test acc {text}"
        in terminal_summary(data)
    )
    page = write_report(folder).read_text()
    assert text in page  # digits and signs: nothing to escape
    front = pd.read_csv(folder / "report" / "pareto.csv")
    assert front.set_index("trial").loc[1, "retrain_test_acc"] == pytest.approx(
        summary["test_acc_mean"]
    )


@pytest.mark.slow
def test_interrupted_retrain_resumes_by_rerunning(tmp_path, monkeypatch):
    folder = make_study(tmp_path / "s", HAND)
    real_train = retrain_module.train

    def crash_at_epoch_two(*args, **kwargs):
        def callback(m):
            if m.epoch == 2:
                raise KeyboardInterrupt

        return real_train(*args, **kwargs, callback=callback)

    recipe = TrainConfig(**(RECIPE.to_dict() | {"epochs": 3}))
    monkeypatch.setattr(retrain_module, "train", crash_at_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        retrain(folder, "trial:0", recipe)
    monkeypatch.setattr(retrain_module, "train", real_train)
    summary = retrain(folder, "trial:0", recipe)
    run = summary["seeds"][0]
    assert run["status"] == "complete" and run["epochs_run"] == 3
    metrics = json.loads((folder / "retrain" / "0000" / "seed-0" / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_full_train_uses_no_validation_split(tmp_path):
    folder = make_study(tmp_path / "s", HAND)
    summary = retrain(
        folder, "trial:0", TrainConfig(**(RECIPE.to_dict() | {"epochs": 1})), full_train=True
    )
    assert summary["full_train"] and summary["data_config"]["val_fraction"] == 0.0
    assert summary["seeds"][0]["best_val_acc"] is None


@pytest.mark.slow
def test_retrain_prints_mean_and_se_over_seeds_with_the_retrained_baselines_beside_it(
    tmp_path, capsys
):
    import search

    base = {"baseline": True}
    folder = make_study(tmp_path / "b", [("WRN-10-1", 0.50, "COMPLETE", base), *HAND[1:2]])
    flags = ["--seeds", "2", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--quiet"]
    flags += ["--schedule", "cosine", "--precision", "fp32"]
    assert search.main(["retrain", str(folder), "--pick", "trial:0", *flags]) == 0
    assert search.main(["retrain", str(folder), "--pick", "trial:1", *flags]) == 0
    out = capsys.readouterr().out.splitlines()
    summary = json.loads((folder / "retrain" / "0001" / "summary.json").read_text())
    baseline = json.loads((folder / "retrain" / "0000" / "summary.json").read_text())
    se = statistics.stdev(r["test_acc"] for r in summary["seeds"]) / 2**0.5
    assert summary["test_acc_se"] == pytest.approx(se) and baseline["baseline"] is True
    line = next(x for x in out if x.startswith("trial 1 "))
    assert line.endswith(
        f"retrained test acc {summary['test_acc_mean']:.2%} ± {100 * se:.2f} (SE, 2 seeds)"
    )
    beside = out[out.index(line) + 3]  # after the two seed lines
    assert beside.startswith("  baseline WRN-10-1 (trial 0, 77,850 params): retrained test acc ")
    assert beside.endswith("(SE, 2 seeds)")
