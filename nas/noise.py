"""How far apart two validation accuracies must be before the difference means anything.

Binomial standard errors, a study's seed SD (:func:`seed_sd`), and the two thresholds:
``CLAIM_Z`` for the report's claims, one standard error for early stopping.

Design: docs/design.md#nasnoise
"""

from __future__ import annotations

import math

__all__ = [
    "CLAIM_Z",
    "FAMILY_ALPHA",
    "beyond_noise",
    "binomial_se",
    "difference_se",
    "holm",
    "one_sided_p",
    "seed_sd",
]

CLAIM_Z = 2.0
# The family-wise error rate of the verdict's claims, one-sided: with a single comparison it asks
# z > 1.96, about CLAIM_Z; with K comparisons Holm's step-down asks more of the strongest.
FAMILY_ALPHA = 0.025


def binomial_se(accuracy: float, n: int | None) -> float:
    """Standard error of an accuracy in [0, 1] measured on ``n`` images; 0.0 when n is unknown."""
    if not n or n < 1:
        return 0.0
    p = min(max(float(accuracy), 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def difference_se(a: float, b: float, n: int | None) -> float:
    """Standard error of a - b for two accuracies on ``n`` images each, taken as independent."""
    return math.hypot(binomial_se(a, n), binomial_se(b, n))


def beyond_noise(better: float, worse: float, n: int | None, z: float = CLAIM_Z) -> bool:
    """True when ``better`` exceeds ``worse`` by more than ``z`` standard errors of the difference
    (by any amount when n is unknown: then there is no noise estimate to hide behind)."""
    return better - worse > z * difference_se(better, worse, n)


def seed_sd(groups: list[list[list[float]]]) -> list[float | None]:
    """The pooled standard deviation between seeds at each epoch: the study's noise yardstick.

    ``groups`` holds, per architecture trained with several seeds, the validation curves of its
    runs. At epoch e, the sum of squared deviations from each group's mean over the runs that
    reached e, divided by the degrees of freedom (runs minus one, summed over groups): a training
    noise that does not depend on which architecture it is measured on. None at an epoch where no
    group has two runs.
    """
    longest = max((len(c) for g in groups for c in g), default=0)
    out: list[float | None] = []
    for e in range(longest):
        squares, dof = 0.0, 0
        for g in groups:
            values = [float(c[e]) for c in g if len(c) > e and c[e] is not None]
            if len(values) > 1:
                m = sum(values) / len(values)
                squares += sum((v - m) ** 2 for v in values)
                dof += len(values) - 1
        out.append(math.sqrt(squares / dof) if dof else None)
    return out


def one_sided_p(z: float) -> float:
    """P(Z > z) for a standard normal Z: the p-value of 'better by z standard errors'."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def holm(p_values: list[float], alpha: float = FAMILY_ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise error ``alpha``.

    Sorted ascending, p_(i) is rejected while p_(i) <= alpha / (m - i + 1), stopping at the first
    that is not; it controls the chance of any false claim among the m at ``alpha`` whatever
    their dependence (Holm 1979)."""
    m = len(p_values)
    reject = [False] * m
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        if p_values[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject
