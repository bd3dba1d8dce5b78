"""softshare.console: the progress line of a run (epoch, loss, accuracy, speed, ETA)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from softshare.console import ProgressBar, format_duration


def test_durations_read_as_a_person_writes_them():
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m05s"
    assert format_duration(3 * 3600 + 60) == "3h01m"
    assert format_duration(-3) == "0s"


def _epoch(epoch: int, seconds: float) -> SimpleNamespace:
    return SimpleNamespace(
        epoch=epoch,
        epochs=4,
        train_loss=1.1,
        train_acc=0.45,
        val_acc=0.5,
        images_per_s=1234.0,
        seconds=seconds,
    )


def test_a_log_gets_one_line_per_epoch_with_the_eta_of_the_epochs_left():
    out = io.StringIO()  # not a terminal: no step updates, one line an epoch
    bar = ProgressBar(out, prefix="trial 3")
    bar.epoch_start(1, 4)
    bar.batch(5, 10, 1.25, 0.4)
    bar._start -= 60.0  # the epoch took 60 s
    bar.epoch_end(_epoch(1, 60.0))
    bar.epoch_start(2, 4)
    bar._start -= 120.0
    bar.epoch_end(_epoch(2, 120.0))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith(
        "trial 3 epoch 1/4 loss 1.100 acc 45.0% val 50.00% 1,234 img/s 1m00s"
    )
    assert lines[0].endswith("ETA 3m00s")  # three epochs left at 60 s each
    assert lines[1].endswith("ETA 3m00s")  # two left at the mean, 90 s
