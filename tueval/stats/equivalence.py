"""TOST equivalence of two arms paired by seed: is the mean difference inside (-margin, +margin)?"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from statsmodels.stats.weightstats import ttost_paired

from tueval.errors import DataError
from tueval.stats.paired import as_diffs, t_interval


@dataclass(frozen=True)
class EquivalenceResult:
    """TOST result: the larger one-sided p, the (1 - 2 alpha) CI of the mean difference and the decision."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    low: float
    high: float
    alpha: float
    equivalent: bool
    n: int
    test_name: str = "TOST paired t (statsmodels ttost_paired)"

    def to_dict(self) -> dict:
        """Plain-dict view for JSON/CSV."""
        return asdict(self)


def _bounds(margin) -> tuple[float, float]:
    """(low, high) from a symmetric margin or an explicit pair."""
    if np.ndim(margin) == 0:
        m = float(margin)
        if not m > 0:
            raise ValueError(f"equivalence margin must be > 0, got {margin}")
        return -m, m
    low, high = (float(x) for x in margin)
    if not low < high:
        raise ValueError(f"equivalence bounds must satisfy low < high, got {margin}")
    return low, high


def equivalence_from_diffs(diffs, margin, alpha: float = 0.05) -> EquivalenceResult:
    """TOST on precomputed per-seed differences; ``margin`` is δ (bounds ±δ) or a pair (low, high)."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise DataError(None, None, "diffs", f"need a 1-D array of at least 2 paired seeds, got shape {d.shape}")
    low, high = _bounds(margin)
    mean = float(d.mean())
    if np.ptp(d) == 0:  # no spread: t is infinite, the decision is whether the constant lies strictly inside
        p = 0.0 if low < mean < high else 1.0
    else:
        p = float(ttost_paired(d, np.zeros_like(d), low, high)[0])
    lo, hi = t_interval(d, 1.0 - 2.0 * alpha)
    return EquivalenceResult(estimate=mean, ci_low=float(lo), ci_high=float(hi), p_value=p, low=low, high=high,
                             alpha=alpha, equivalent=bool(p < alpha), n=int(d.size))


def equivalence_test(method, control, margin, alpha: float = 0.05) -> EquivalenceResult:
    """TOST equivalence of method vs control paired by seed: equivalent iff p < alpha (the 90% CI inside the bounds)."""
    return equivalence_from_diffs(as_diffs(method, control), margin, alpha)
