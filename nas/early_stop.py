"""Pareto-aware early stopping, shared by the Optuna and Ray Tune backends.

Two rules, pure functions of the learning curves: Pareto-aware successive-halving rungs with a
noise margin, and an optional plateau. :func:`decide` applies a :class:`StopRule`; each backend
only collects curves and acts on the :class:`Decision`.

Design: docs/design.md#nasearly_stop
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nas.noise import difference_se
from nas.pareto import crowding_distance, non_dominated_sort
from nas.schema import DIRECTIONS
from softshare.strict import option
from softshare.validate import is_int, is_number, require_int

__all__ = [
    "RUNG_DIRECTIONS",
    "Decision",
    "StopRule",
    "decide",
    "default_first_rung",
    "rank_at_rung",
]

# (accuracy at the rung, parameter count)
RUNG_DIRECTIONS: tuple[str, str] = DIRECTIONS  # a rung ranks by the study's objectives

Curve = Sequence[float]


# --- argument checks --------------------------------------------------------------------------


def _check_curve(name: str, curve: object) -> None:
    """ValueError unless ``curve`` is a sequence of finite numbers."""
    if isinstance(curve, str) or not isinstance(curve, Sequence):
        raise ValueError(
            f"{name} must be a sequence of finite accuracies, but got {name}={curve!r}."
        )
    for epoch, value in enumerate(curve, start=1):
        if not is_number(value):
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
        require_int(f"others[{i}][1]", other[1], 0)


# --- configuration and result -----------------------------------------------------------------


def default_first_rung(max_epochs: int) -> int:
    """A quarter of the budget, but at least 2 epochs and below the budget where it allows: after one
    epoch at a high learning rate the curves have not separated (measured on CIFAR-10: epoch-to-epoch
    swings of about 5 points at epoch 2 of 12). 4 -> 2, 8 -> 2, 12 -> 3, 30 -> 7."""
    return max(1, min(max(2, max_epochs // 4), max_epochs - 1))


@dataclass(frozen=True)
class StopRule:
    """When a trial may be stopped early. JSON-native fields; every field is validated.

    Attributes:
        max_epochs: the trial's full budget in epochs, >= 1. Rungs lie strictly below it (a
            trial at its last epoch finishes anyway).
        min_epochs: the first rung r in epochs, >= 1. If r >= max_epochs there is no rung.
            ``None`` (the default) means :func:`default_first_rung` of the budget (a quarter of
            it, at least 2 epochs where the budget allows); after construction the field always
            holds an int.
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
        margin: a fixed distance (accuracy units, finite, >= 0) a trial must trail what a rung
            keeps before it is stopped; ``None`` (the default): ``z`` times the noise of a
            difference at that rung (:meth:`noise_margin`). Studies made before ``z`` may hold one.
        z: how many standard deviations of a difference a trial must trail by, >= 0: the seed SD
            of the study at the rung times sqrt(2) once two seeds of one architecture have
            reached it (the study's yardstick, :func:`nas.replicates.yardstick`), else the
            binomial standard error of the difference on ``val_images`` images (1.0 point at 60%
            on 5,000 images), or 0 when ``val_images`` is None.
        val_images: size of the validation set the accuracies are measured on, integer >= 1, or
            ``None`` (unknown: no noise margin).
    """

    # option(): the field's default and what its command-line flag shows (softshare.strict).
    max_epochs: int
    min_epochs: int | None = option(
        None, "first rung in epochs (default: a quarter of the budget, at least 2)", min=1
    )
    eta: int = option(3, "keep the top 1/eta at each rung", min=2)
    min_trials: int | None = None
    patience: int | None = option(None, "also stop after this many epochs without gain", min=1)
    min_delta: float = 0.0
    enabled: bool = option(
        True, "train every trial to its budget (no early stopping)", flag="--no-early-stopping"
    )
    margin: float | None = None
    z: float = option(
        1.0,
        "stop a trial only when it trails what a rung keeps by more than Z standard deviations "
        "of a difference: the seed SD the study measured at that epoch (baselines' seeds), or "
        "the validation set's binomial error before any seed pair reached it",
        min=0.0,
        flag="--stop-margin",
        metavar="Z",
    )
    val_images: int | None = None

    def __post_init__(self) -> None:
        require_int("max_epochs", self.max_epochs, 1)
        if self.min_epochs is None and is_int(self.max_epochs):  # frozen: set once, here
            object.__setattr__(self, "min_epochs", default_first_rung(int(self.max_epochs)))
        require_int("min_epochs", self.min_epochs, 1)
        require_int("eta", self.eta, 2)
        if self.min_trials is None:
            object.__setattr__(self, "min_trials", self.eta)  # frozen: set once, here
        require_int("min_trials", self.min_trials, 1)
        if self.patience is not None:
            require_int("patience", self.patience, 1)
        if not is_number(self.min_delta) or self.min_delta < 0:
            min_delta = self.min_delta
            raise ValueError(f"min_delta must be a finite number >= 0, but got {min_delta=}.")
        if not isinstance(self.enabled, bool):
            enabled = self.enabled
            raise ValueError(f"enabled must be True or False, but got {enabled=}.")
        if self.margin is not None and (not is_number(self.margin) or self.margin < 0):
            margin = self.margin
            raise ValueError(
                f"margin must be a finite number >= 0 (accuracy units) or None, but got {margin=}."
            )
        if not is_number(self.z) or self.z < 0:
            z = self.z
            raise ValueError(f"z must be a finite number >= 0, but got {z=}.")
        if self.val_images is not None:
            require_int("val_images", self.val_images, 1)
        self._store_plain_numbers()

    def _store_plain_numbers(self) -> None:
        """Replace numpy scalars (they pass the checks) by ints and a float: JSON-native."""
        for name in ("max_epochs", "min_epochs", "eta", "min_trials", "patience", "val_images"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "min_delta", float(self.min_delta))
        object.__setattr__(self, "z", float(self.z))
        if self.margin is not None:
            object.__setattr__(self, "margin", float(self.margin))

    def noise_margin(self, accuracy: float, seed_sd: float | None = None) -> float:
        """The margin a trial of this ``accuracy`` is given at a rung: ``margin`` when fixed,
        else ``z`` times the SD of a difference, from the seed SD at the rung where the study
        has measured one, else from the validation set's binomial error."""
        if self.margin is not None:
            return self.margin
        if seed_sd is not None:
            return self.z * math.sqrt(2.0) * seed_sd
        return self.z * difference_se(accuracy, accuracy, self.val_images)

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
            or not is_number(point[0])
            or not is_int(point[1])
            or point[1] < 0
        ):
            raise ValueError(
                f"points[{i}] must be (finite accuracy, integer params >= 0), but got {point!r}."
            )
    return _pareto_order([(float(a), int(p)) for a, p in points])


def _pareto_order(points: list[tuple[float, int]]) -> list[int]:
    """:func:`rank_at_rung` without the argument checks."""
    return _rank(points)[0]


def _rank(points: list[tuple[float, int]]) -> tuple[list[int], set[tuple[float, int]]]:
    """(order of :func:`rank_at_rung`, the distinct end values of the first front).

    Crowding is measured in (accuracy, log10 params), the space the hypervolume is measured in:
    in raw counts one large model's neighbours would look far apart and small ones crowded."""
    front_of, crowding = [0] * len(points), [0.0] * len(points)
    logged = [(a, math.log10(max(p, 1))) for a, p in points]
    first: list[int] = []
    for level, front in enumerate(non_dominated_sort(points, RUNG_DIRECTIONS)):
        first = first or front
        for i, distance in zip(front, crowding_distance(logged, front, RUNG_DIRECTIONS)):
            front_of[i], crowding[i] = level, distance
    order = sorted(
        range(len(points)),
        key=lambda i: (front_of[i], -crowding[i], -points[i][0], points[i][1], i),
    )
    smallest = min((points[i] for i in first), key=lambda q: (q[1], -q[0]))
    most_accurate = max((points[i] for i in first), key=lambda q: (q[0], -q[1]))
    return order, {smallest, most_accurate}


def _points_at_rung(
    rung: int, curve: Curve, params: int, others: Sequence[tuple[Curve, int]]
) -> list[tuple[float, int]]:
    """(accuracy at epoch ``rung``, params) of the candidate (first) and each other trial that
    has reached that epoch."""
    points = [(float(curve[rung - 1]), int(params))]
    points += [(float(c[rung - 1]), int(p)) for c, p in others if len(c) >= rung]
    return points


def _judge_rung(
    rung: int, points: list[tuple[float, int]], rule: StopRule, seed_sd: float | None = None
) -> Decision:
    """Stop the candidate (``points[0]``) unless it ranks in the rung's top share, is (a twin of) an
    end of the first front, or would rank in the top share but for the noise margin."""
    n = len(points)
    if n < rule.min_trials:  # type: ignore[operator]  # an int after __post_init__
        return _CONTINUE
    order, ends = _rank(points)
    keep = max(1, n // rule.eta, len(ends))
    rank = order.index(0) + 1
    if rank <= keep or points[0] in ends:
        return _CONTINUE
    margin = rule.noise_margin(points[0][0], seed_sd)
    if (
        margin > 0
        and _rank([(points[0][0] + margin, points[0][1]), *points[1:]])[0].index(0) < keep
    ):
        return _CONTINUE  # behind the kept trials by no more than the noise
    return Decision(
        stop=True,
        reason=f"rung {rung}: rank {rank} of {n}, keeps top {keep}"
        + (f", trails by more than {margin:.1%}" if margin > 0 else "")
        + (" (seed noise)" if seed_sd is not None and rule.margin is None else ""),
    )


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
    noise: Sequence[float | None] = (),
) -> Decision:
    """Whether the trial with learning curve ``curve`` should stop now. Pure.

    Args:
        curve: this trial's validation accuracy after each epoch so far (``len(curve)`` =
            epochs done); finite numbers, on the same scale for every trial (e.g. [0, 1]).
        params: this trial's parameter count, integer >= 0.
        others: (curve, params) of every other trial of the study: finished, stopped or still
            running. Their order does not matter.
        rule: the thresholds.
        noise: the study's seed SD after each epoch (``noise[e - 1]`` for epoch e; None or
            absent where no two seeds of one architecture have reached it): the rung's margin
            (:meth:`StopRule.noise_margin`).

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
    require_int("params", params, 0)
    _check_others(others)
    if not isinstance(rule, StopRule):
        raise ValueError(f"rule must be a StopRule, but got {rule=}.")
    if not rule.enabled:
        return _CONTINUE
    if len(curve) in rule.rungs:
        rung = len(curve)
        sd = noise[rung - 1] if len(noise) >= rung else None
        decision = _judge_rung(rung, _points_at_rung(rung, curve, params, others), rule, sd)
        if decision.stop:
            return decision
    if rule.patience is not None:
        return _judge_plateau(curve, rule.patience, rule.min_delta)
    return _CONTINUE
