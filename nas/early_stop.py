"""Pareto-aware early stopping, shared by the Optuna and Ray Tune backends.

Why our own rule: Optuna does not prune multi-objective studies, and Ray Tune's schedulers
rank trials by one metric. Our two objectives are validation accuracy (maximise) and parameter
count (minimise); the parameter count is known before training starts, so only accuracy has to
be judged as epochs go by.

Two rules, both pure functions of the learning curves, so each backend only has to collect
curves and act on the :class:`Decision`:

* **Rungs** (successive halving, Jamieson & Talwalkar 2016; asynchronous as in ASHA, Li et al.
  2020): at epochs r, r*eta, r*eta^2, ... a trial is compared with every trial of the study that
  reached the same epoch, on (accuracy at that epoch, parameters). It continues only if it ranks
  in the top max(floor(n / eta), e) of those n trials, where e is the number of ends of the
  rung's first Pareto front (2, or 1 when that front is a single point). The ranking is
  Pareto-aware (see :func:`rank_at_rung`), so a small model with modest accuracy can survive
  where a plain accuracy ranking would stop it: it may sit on the accuracy/size front. Keeping
  both ends matters early in a study, when n / eta rounds down to 1: a rung that kept only one
  trial would keep the most accurate and always stop the cheapest model on the front, and the
  search would lose the small end of the frontier (measured: bench/bench_search.py).
* **Plateau**: stop once the best accuracy of the last ``patience`` epochs beats the best
  accuracy before them by no more than ``min_delta``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from nas.pareto import crowding_distance, non_dominated_sort

__all__ = ["RUNG_DIRECTIONS", "Decision", "StopRule", "decide", "rank_at_rung"]

# (accuracy at the rung, parameter count)
RUNG_DIRECTIONS: tuple[str, str] = ("maximize", "minimize")

Curve = Sequence[float]


# --- argument checks --------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    """True for ints (numpy integers included), False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_real(value: object) -> bool:
    """True for finite ints and floats (numpy scalars included), False for bools and the rest."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _require_int(name: str, value: object, minimum: int) -> None:
    """ValueError unless ``value`` is an integer >= ``minimum``."""
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}.")


def _check_curve(name: str, curve: object) -> None:
    """ValueError unless ``curve`` is a sequence of finite numbers."""
    if isinstance(curve, str) or not isinstance(curve, Sequence):
        raise ValueError(
            f"{name} must be a sequence of finite accuracies, but got {name}={curve!r}."
        )
    for epoch, value in enumerate(curve, start=1):
        if not _is_finite_real(value):
            raise ValueError(
                f"{name} must hold finite accuracies, but epoch {epoch} has {value!r}."
            )


def _check_others(others: object) -> None:
    """ValueError unless ``others`` is a sequence of (curve, params) pairs."""
    if isinstance(others, str) or not isinstance(others, Sequence):
        raise ValueError(f"others must be a sequence of (curve, params) pairs, but got {others=}.")
    for i, other in enumerate(others):
        if isinstance(other, str) or not isinstance(other, Sequence) or len(other) != 2:
            raise ValueError(f"others[{i}] must be a (curve, params) pair, but got {other!r}.")
        _check_curve(f"others[{i}][0]", other[0])
        _require_int(f"others[{i}][1]", other[1], 0)


# --- configuration and result -----------------------------------------------------------------


@dataclass(frozen=True)
class StopRule:
    """When a trial may be stopped early. JSON-native fields; every field is validated.

    Attributes:
        max_epochs: the trial's full budget in epochs, >= 1. Rungs lie strictly below it (a
            trial at its last epoch finishes anyway).
        min_epochs: the first rung r in epochs, >= 1. If r >= max_epochs there is no rung.
        eta: reduction factor, integer >= 2: rungs are r * eta^i, and a rung keeps the top
            1/eta of the trials that reached it.
        min_trials: fewer trials than this at a rung (the candidate included) means nobody is
            stopped there, integer >= 1. ``None`` (the default) means ``eta``: with fewer than
            eta trials floor(n / eta) is 0, the rung would keep only the best one, and the first
            trials of a study would be judged against almost nobody. After construction the
            field always holds an int.
        patience: plateau window in epochs, integer >= 1, or ``None`` for no plateau rule.
        min_delta: the smallest accuracy gain that counts as progress for the plateau rule, in
            accuracy units (0.01 = one point on a [0, 1] scale), finite and >= 0.
        enabled: ``False`` turns both rules off (:func:`decide` always continues).
    """

    max_epochs: int
    min_epochs: int = 1
    eta: int = 3
    min_trials: int | None = None
    patience: int | None = None
    min_delta: float = 0.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require_int("max_epochs", self.max_epochs, 1)
        _require_int("min_epochs", self.min_epochs, 1)
        _require_int("eta", self.eta, 2)
        if self.min_trials is None:
            object.__setattr__(self, "min_trials", self.eta)  # frozen: set once, here
        _require_int("min_trials", self.min_trials, 1)
        if self.patience is not None:
            _require_int("patience", self.patience, 1)
        if not _is_finite_real(self.min_delta) or self.min_delta < 0:
            min_delta = self.min_delta
            raise ValueError(f"min_delta must be a finite number >= 0, but got {min_delta=}.")
        if not isinstance(self.enabled, bool):
            enabled = self.enabled
            raise ValueError(f"enabled must be True or False, but got {enabled=}.")
        self._store_plain_numbers()

    def _store_plain_numbers(self) -> None:
        """Replace numpy scalars (they pass the checks) by ints and a float: JSON-native."""
        for name in ("max_epochs", "min_epochs", "eta", "min_trials", "patience"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "min_delta", float(self.min_delta))

    @property
    def rungs(self) -> tuple[int, ...]:
        """Epochs at which trials are compared: r, r*eta, r*eta^2, ... strictly < max_epochs."""
        rungs, epoch = [], self.min_epochs
        while epoch < self.max_epochs:
            rungs.append(epoch)
            epoch *= self.eta
        return tuple(rungs)


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` says: ``stop`` and, when stopping, a one-line ``reason`` for logs
    and reports (``""`` when continuing), e.g. ``"rung 3: rank 5 of 9, keeps top 3"`` or
    ``"plateau: no gain > 0.0 in 5 epochs"``."""

    stop: bool
    reason: str = ""


_CONTINUE = Decision(stop=False, reason="")


# --- the rules --------------------------------------------------------------------------------


def rank_at_rung(points: Sequence[tuple[float, int]]) -> list[int]:
    """Indices of the trials at one rung, best first, from their (accuracy, params) there.

    Sort keys, in order:

    1. Pareto front of (accuracy: maximise, params: minimise), front 0 first
       (:func:`nas.pareto.non_dominated_sort`);
    2. crowding distance inside the front, larger first (:func:`nas.pareto.crowding_distance`:
       the front's two ends are ``inf``, so the most accurate and the smallest model of the
       front come before its middle; spread-out trade-offs before clustered ones);
    3. accuracy, higher first; then params, fewer first;
    4. index, lower first. Only identical points get this far.

    The order depends only on the values, never on where they sit in ``points``, except
    that identical points keep their input order (which :func:`decide` uses to put the
    candidate first among its twins). Accuracies: any finite scale, the same for all;
    params: integers >= 0.
    """
    if isinstance(points, str) or not isinstance(points, Sequence):
        raise ValueError(
            f"points must be a sequence of (accuracy, params) pairs, but got {points=}."
        )
    for i, point in enumerate(points):
        if (
            isinstance(point, str)
            or not isinstance(point, Sequence)
            or len(point) != 2
            or not _is_finite_real(point[0])
            or not _is_int(point[1])
            or point[1] < 0
        ):
            raise ValueError(
                f"points[{i}] must be (finite accuracy, integer params >= 0), but got {point!r}."
            )
    return _pareto_order([(float(a), int(p)) for a, p in points])


def _pareto_order(points: list[tuple[float, int]]) -> list[int]:
    """:func:`rank_at_rung` without the argument checks."""
    return _rank(points)[0]


def _rank(points: list[tuple[float, int]]) -> tuple[list[int], int]:
    """(order of :func:`rank_at_rung`, number of first-front points at an end of that front: 1 or 2)."""
    front_of, crowding = [0] * len(points), [0.0] * len(points)
    for level, front in enumerate(non_dominated_sort(points, RUNG_DIRECTIONS)):
        for i, distance in zip(front, crowding_distance(points, front, RUNG_DIRECTIONS)):
            front_of[i], crowding[i] = level, distance
    order = sorted(
        range(len(points)),
        key=lambda i: (front_of[i], -crowding[i], -points[i][0], points[i][1], i),
    )
    ends = sum(1 for i in order if front_of[i] == 0 and crowding[i] == math.inf)
    return order, min(2, max(1, ends))


def _points_at_rung(
    rung: int, curve: Curve, params: int, others: Sequence[tuple[Curve, int]]
) -> list[tuple[float, int]]:
    """(accuracy at epoch ``rung``, params) of the candidate (first) and each other trial that
    has reached that epoch."""
    points = [(float(curve[rung - 1]), int(params))]
    points += [(float(c[rung - 1]), int(p)) for c, p in others if len(c) >= rung]
    return points


def _judge_rung(rung: int, points: list[tuple[float, int]], rule: StopRule) -> Decision:
    """Stop the candidate (``points[0]``) unless it ranks in the rung's top share."""
    n = len(points)
    if n < rule.min_trials:  # type: ignore[operator]  # an int after __post_init__
        return _CONTINUE
    order, ends = _rank(points)
    keep = max(1, n // rule.eta, ends)
    rank = order.index(0) + 1
    if rank <= keep:
        return _CONTINUE
    return Decision(stop=True, reason=f"rung {rung}: rank {rank} of {n}, keeps top {keep}")


def _judge_plateau(curve: Curve, patience: int, min_delta: float) -> Decision:
    """Stop once max(last ``patience`` epochs) <= max(epochs before them) + ``min_delta``."""
    if len(curve) <= patience:
        return _CONTINUE
    gain = max(curve[-patience:]) - max(curve[:-patience])
    if gain > min_delta:
        return _CONTINUE
    return Decision(stop=True, reason=f"plateau: no gain > {min_delta} in {patience} epochs")


def decide(
    curve: Curve,
    params: int,
    others: Sequence[tuple[Curve, int]],
    rule: StopRule,
) -> Decision:
    """Whether the trial with learning curve ``curve`` should stop now. Pure.

    Args:
        curve: this trial's validation accuracy after each epoch so far (``len(curve)`` =
            epochs done); finite numbers, on the same scale for every trial (e.g. [0, 1]).
        params: this trial's parameter count, integer >= 0.
        others: (curve, params) of every other trial of the study: finished, stopped or still
            running. Their order does not matter.
        rule: the thresholds.

    Rung rule: only when ``len(curve)`` is one of ``rule.rungs``. The trials that "reached the
    rung" r are this one and every other whose curve has at least r epochs, each judged by its
    accuracy after epoch r (``curve[r - 1]``), never a later one. With n such trials (n >=
    ``rule.min_trials``, else continue), this trial continues only if it is among the first
    max(n // eta, e) of :func:`rank_at_rung`, e being the number of ends of the first front
    there (2, or 1 when it is one point: both ends of the front always continue); where it is
    identical (same accuracy and params) to other trials it ranks first among them. So ties never stop a trial, as in Optuna's
    SuccessiveHalvingPruner and Ray's ASHA; ranking the candidate last instead would let two
    identical leaders each stop the other.

    Plateau rule: when ``rule.patience`` is set, at any epoch (see :class:`StopRule`). The rung
    rule is applied first; its reason is the one reported.
    """
    _check_curve("curve", curve)
    _require_int("params", params, 0)
    _check_others(others)
    if not isinstance(rule, StopRule):
        raise ValueError(f"rule must be a StopRule, but got {rule=}.")
    if not rule.enabled:
        return _CONTINUE
    if len(curve) in rule.rungs:
        decision = _judge_rung(len(curve), _points_at_rung(len(curve), curve, params, others), rule)
        if decision.stop:
            return decision
    if rule.patience is not None:
        return _judge_plateau(curve, rule.patience, rule.min_delta)
    return _CONTINUE
