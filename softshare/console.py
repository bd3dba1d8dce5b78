"""A terminal progress bar for training runs: epoch, batch, loss, accuracy, images/s and ETA.

The trainer calls ``epoch_start``, ``batch`` and ``epoch_end``; any object with those methods
can stand in (the search uses its own). Writes go to the stream the caller chose; on a stream
that is not a terminal only one line per epoch is written.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class ProgressBar:
    """One updating line per epoch; ``prefix`` names the run (e.g. a trial number)."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "", width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = f"{prefix} " if prefix else ""
        self.width = width
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._epoch_times: list[float] = []
        self._epoch = self._epochs = 0
        self._start = time.perf_counter()
        self._images = 0

    def epoch_start(self, epoch: int, epochs: int) -> None:
        self._epoch, self._epochs, self._start = epoch, epochs, time.perf_counter()

    def _eta(self, fraction_of_epoch: float) -> float:
        elapsed = time.perf_counter() - self._start
        per_epoch = (
            sum(self._epoch_times) / len(self._epoch_times)
            if self._epoch_times
            else elapsed / max(fraction_of_epoch, 1e-6)
        )
        return max(per_epoch - elapsed, 0.0) + per_epoch * (self._epochs - self._epoch)

    def batch(
        self, step: int, total: int, loss: float, acc: float, batch_size: int | None = None
    ) -> None:
        if not self.interactive:
            return
        done = int(self.width * step / max(total, 1))
        bar = "#" * done + "." * (self.width - done)
        eta = format_duration(self._eta(step / max(total, 1)))
        self.stream.write(
            f"\r{self.prefix}epoch {self._epoch}/{self._epochs} [{bar}] loss {loss:.3f} "
            f"acc {acc:.1%} ETA {eta}   "
        )
        self.stream.flush()

    def epoch_end(self, m) -> None:
        self._epoch_times.append(m.seconds)
        val = f" val {m.val_acc:.2%}" if m.val_acc is not None else ""
        line = (
            f"{self.prefix}epoch {m.epoch}/{m.epochs} loss {m.train_loss:.3f} acc {m.train_acc:.1%}{val} "
            f"{m.images_per_s:,.0f} img/s {format_duration(m.seconds)} ETA "
            f"{format_duration(self._eta(1.0))}"
        )
        self.stream.write(("\r" + line + " " * 8 + "\n") if self.interactive else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
