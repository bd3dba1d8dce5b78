"""Live progress of a study: one line per trial start, epoch and end, and the front as it grows.

Lines (not a redrawn screen), so the output reads the same in a terminal, a log file and from
several workers writing to one stream.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import optuna

from softshare.console import format_duration

from ..config import StudyConfig
from ..replicates import plan_rows
from ..schema import (
    COMPLETE,
    FAILED,
    PRUNED,
    REPLICATE_ATTR,
    RUNNING,
    WAITING,
    counts_text,
    replicate_counts,
    role_of,
)
from ..study import study_counts
from .results import format_table, front_rows, knee_row, trial_rows

__all__ = ["StudyReporter"]


class StudyReporter:
    """Prints trial and epoch events of one worker, with study totals and an ETA."""

    def __init__(self, cfg: StudyConfig, stream: TextIO | None = None, prefix: str = "") -> None:
        self.cfg, self.stream, self.prefix = (
            cfg,
            stream if stream is not None else sys.stderr,
            prefix,
        )
        self.started: dict[int, float] = {}
        self.durations: list[float] = []
        self.last_front: list[int] = []

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def trial_start(self, number: int, attrs: dict) -> None:
        self.started[number] = time.perf_counter()
        role = f" ({role_of(attrs)})" if role_of(attrs) in ("baseline", "learned") else ""
        self._write(
            f"{self.prefix}[trial {number}] {attrs['plan_name']}{role}  {attrs['params']:,} params  "
            f"{attrs['macs'] / 1e6:,.1f}M mult-adds"
        )

    def epoch(self, number: int, m) -> None:
        val = f"val {m.val_acc:.2%}" if m.val_acc is not None else "no val"
        compiled = getattr(m, "compiled", None)  # None: compile off
        how = (
            ""
            if compiled is None
            else ("  compiled" if compiled else "  eager (compile fell back)")
        )
        self._write(
            f"{self.prefix}[trial {number}] epoch {m.epoch}/{m.epochs}  loss {m.train_loss:.3f}  {val}  "
            f"{m.images_per_s:,.0f} img/s{how}"
        )

    def trial_end(self, number: int, status: str, study: optuna.Study) -> None:
        took = time.perf_counter() - self.started.pop(number, time.perf_counter())
        if status in (COMPLETE, PRUNED, FAILED):
            self.durations.append(took)
        trial = study.get_trials(deepcopy=False)[number]
        detail = (
            f"val {trial.values[0]:.2%}" if trial.values else trial.user_attrs.get("reason", "")
        )
        counts = study_counts(study)
        finished = counts[COMPLETE] + counts[PRUNED]
        reps = replicate_counts(study.get_trials(deepcopy=False))
        # replicate runs queued (a baseline's seeds, the confirmation) are runs still to train
        left = max(self.cfg.n_trials - finished - counts[RUNNING], 0) + reps[WAITING]
        mean = sum(self.durations) / len(self.durations) if self.durations else 0.0
        eta = format_duration(mean * left / self.cfg.workers) if mean else "?"
        original = trial.user_attrs.get(REPLICATE_ATTR)
        what = (
            f" (replicate of trial {original}, seed {trial.user_attrs.get('seed')})"
            if original is not None
            else ""
        )
        done_reps = reps[COMPLETE] + reps[PRUNED]
        replicas = (
            f" | replicates {done_reps} done, {reps[WAITING]} queued" if sum(reps.values()) else ""
        )
        self._write(
            f"{self.prefix}[trial {number}] {status}{what}: {detail} ({format_duration(took)}) | "
            f"{finished}/{self.cfg.n_trials} done ({counts_text(counts)}){replicas} | ETA {eta}"
        )
        rows = plan_rows(trial_rows(study))  # one point per architecture
        front = front_rows(rows)
        if [r["trial"] for r in front] != self.last_front:
            self.last_front = [r["trial"] for r in front]
            self._write(
                "Pareto front (validation accuracy vs parameters):\n"
                + format_table(front, knee_row(rows), limit=8)
            )
