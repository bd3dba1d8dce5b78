"""How far apart two validation accuracies must be before the difference means anything.

An accuracy measured on n validation images is a binomial proportion: its standard error is
sqrt(p (1 - p) / n) (0.7 points at 60% on 5,000 images, 1.5 points on 1,000). Two models
measured on the same images have correlated errors, so treating them as independent, as here,
overstates the noise of their difference: every "A beats B" built on it is conservative.

Two uses, two strengths:

* claims in the report ("this plan dominates that baseline", "these front members are tied")
  need the difference to exceed ``CLAIM_Z`` = 2 standard errors of the difference (about 95%
  two-sided);
* the early-stopping rule stops a trial only when it trails by more than one standard error
  of the difference (``StopRule``'s default), since stopping is reversible by nobody and
  early curves are noisier than the binomial error alone.
"""

from __future__ import annotations

import math

__all__ = ["CLAIM_Z", "binomial_se", "difference_se", "beyond_noise"]

CLAIM_Z = 2.0


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
