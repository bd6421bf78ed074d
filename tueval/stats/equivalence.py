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


@dataclass(frozen=True)
class NonInferiorityResult:
    """One-sided test that the method is no worse than the control by more than ``margin``: the p-value of
    H0 "worse by at least margin", the one-sided (1 - alpha) bound of the mean difference on the worse side and
    the decision."""

    estimate: float
    bound: float
    p_value: float
    margin: float
    higher_is_better: bool
    alpha: float
    non_inferior: bool
    n: int
    test_name: str = "non-inferiority paired t (one-sided, scipy ttest_1samp)"

    def to_dict(self) -> dict:
        """Plain-dict view for JSON/CSV."""
        return asdict(self)


def non_inferiority_from_diffs(diffs, margin: float, higher_is_better: bool = True,
                               alpha: float = 0.05) -> NonInferiorityResult:
    """Is method - control no worse than ``-margin`` (higher is better; ``+margin`` when lower is better)? A
    one-sided paired t-test against the margin; non-inferior iff p < alpha, i.e. the one-sided (1 - alpha) bound
    lies on the good side of the margin."""
    import scipy.stats

    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise DataError(None, None, "diffs", f"need a 1-D array of at least 2 paired seeds, got shape {d.shape}")
    m = float(margin)
    if not m > 0:
        raise ValueError(f"non-inferiority margin must be > 0, got {margin}")
    sign = 1.0 if higher_is_better else -1.0
    x = sign * d + m  # > 0 on the good side of the margin
    mean = float(d.mean())
    if np.ptp(x) == 0:
        p = 0.0 if x[0] > 0 else 1.0
        bound = mean
    else:
        p = float(scipy.stats.ttest_1samp(x, 0.0, alternative="greater").pvalue)
        se = float(d.std(ddof=1) / np.sqrt(d.size))
        bound = mean - sign * float(scipy.stats.t.ppf(1 - alpha, d.size - 1)) * se
    return NonInferiorityResult(estimate=mean, bound=bound, p_value=p, margin=m, higher_is_better=higher_is_better,
                                alpha=alpha, non_inferior=bool(p < alpha), n=int(d.size))
