"""Paired per-seed differences: t-interval or BCa CI, sign-flip p-value and d_z (the seed is the unit)."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from tueval.errors import DataError

Alternative = Literal["greater", "less", "two-sided"]
ALTERNATIVES = ("greater", "less", "two-sided")

#: largest n for which the sign-flip null is enumerated exactly (2**16 sign patterns)
EXACT_MAX_N = 16
#: below this many seeds the CI is a t-interval, from here on a BCa bootstrap
BCA_MIN_N = 10
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class PairedResult:
    """Mean paired difference (method - control) with CI, p-value, d_z and the raw per-seed differences."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    effect_size: float
    n: int
    test_name: str
    ci_method: str
    diffs: tuple[float, ...]
    alternative: str = "greater"
    ci_level: float = 0.95

    def to_dict(self) -> dict:
        """Plain-dict view (diffs as a list) for JSON/CSV."""
        d = asdict(self)
        d["diffs"] = list(self.diffs)
        return d


def as_diffs(method, control) -> np.ndarray:
    """Validated float array of per-seed differences method - control (same length, finite)."""
    m = np.asarray(method, dtype=float)
    c = np.asarray(control, dtype=float)
    if m.ndim != 1 or c.ndim != 1:
        raise DataError(None, None, "method/control",
                        f"expected 1-D per-seed arrays, got shapes {m.shape} and {c.shape}")
    if m.shape != c.shape:
        raise DataError(None, None, "method/control",
                        f"arms are paired by seed and must have equal length, got {m.size} and {c.size}")
    for name, a in (("method", m), ("control", c)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise DataError(None, int(bad[0]), name, f"per-seed value is not finite ({a[bad[0]]})")
    return m - c


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


@lru_cache(maxsize=32)
def sign_matrix(n: int) -> np.ndarray:
    """All 2**n sign patterns as a read-only [2**n, n] matrix of +-1 (row 0 is all +1)."""
    bits = (np.arange(2 ** n, dtype=np.int64)[:, None] >> np.arange(n)) & 1
    signs = (1 - 2 * bits).astype(float)
    signs.setflags(write=False)
    return signs


def sign_flip_pvalue(diffs, alternative: Alternative = "greater", n_resamples: int = 9999, seed: int = 0,
                     exact_max_n: int = EXACT_MAX_N) -> np.ndarray | float:
    """Sign-flip permutation p-value of mean(diffs) over the last axis (exact up to exact_max_n, else Monte-Carlo).

    Mirrors ``scipy.stats.permutation_test(permutation_type='samples')``: the same tolerance for ties,
    two-sided p = 2*min(p_less, p_greater) clipped to 1, and the +1 correction for Monte-Carlo nulls.
    Accepts a batch [..., n] and returns one p per leading index.
    """
    _check_alternative(alternative)
    d = np.asarray(diffs, dtype=float)
    scalar = d.ndim == 1
    d2 = d.reshape(-1, d.shape[-1])
    n = d2.shape[1]
    if n == 0:
        raise ValueError("sign_flip_pvalue needs at least one difference")
    if n <= exact_max_n:
        signs, adjustment = sign_matrix(n), 0
    else:
        rng = np.random.default_rng(seed)
        signs, adjustment = rng.choice([-1.0, 1.0], size=(n_resamples, n)), 1
    n_null = signs.shape[0]
    observed = d2.mean(axis=1)
    gamma = np.abs(np.finfo(float).eps * 100 * observed)
    less = np.empty(d2.shape[0])
    greater = np.empty(d2.shape[0])
    step = max(1, _CHUNK_ELEMENTS // n_null)
    for i in range(0, d2.shape[0], step):  # chunks over the batch, never over examples
        null = d2[i:i + step] @ signs.T / n  # [b, n_null]
        obs, g = observed[i:i + step, None], gamma[i:i + step, None]
        less[i:i + step] = (np.count_nonzero(null <= obs + g, axis=1) + adjustment) / (n_null + adjustment)
        greater[i:i + step] = (np.count_nonzero(null >= obs - g, axis=1) + adjustment) / (n_null + adjustment)
    p = {"less": less, "greater": greater, "two-sided": 2 * np.minimum(less, greater)}[alternative]
    p = np.clip(p, 0.0, 1.0).reshape(d.shape[:-1])
    return float(p) if scalar else p


def t_interval(values, level: float = 0.95, min_n: int = 2) -> tuple[np.ndarray, np.ndarray] | tuple[float, float]:
    """Two-sided Student-t CI of the mean over the last axis (batch-aware): mean +- t_{n-1} sd / sqrt(n).

    The one t-interval of the suite. With fewer than ``min_n`` values (at least 2) the bounds are NaN."""
    d = np.asarray(values, dtype=float)
    n = d.shape[-1]
    if n < max(min_n, 2):
        nan = np.full(d.shape[:-1], np.nan)
        return (float("nan"), float("nan")) if d.ndim == 1 else (nan, nan)
    mean = d.mean(axis=-1)
    se = d.std(axis=-1, ddof=1) / np.sqrt(n)
    half = scipy.stats.t.ppf(0.5 + level / 2, df=n - 1) * se
    lo, hi = mean - half, mean + half
    return (float(lo), float(hi)) if d.ndim == 1 else (lo, hi)


def group_ci(df: pd.DataFrame, by: Sequence[str] | str, value: str, level: float = 0.95) -> pd.DataFrame:
    """Mean, SD, n and the two-sided ``t_interval`` of ``value`` per group (NaN CI for n < 2): what the
    trade-off tables and figures show."""
    by = [by] if isinstance(by, str) else list(by)
    g = df.groupby(by, sort=False, dropna=False)[value]
    out = g.agg(mean="mean", sd=lambda s: s.std(ddof=1), n="count").reset_index()
    cis = [t_interval(s.dropna().to_numpy(float), level) for _, s in g]
    out["ci_low"], out["ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    return out


def effect_size_dz(diffs) -> np.ndarray | float:
    """Cohen's d_z = mean(diffs) / sd(diffs, ddof=1); 0 for all-zero and +-inf for constant nonzero diffs."""
    d = np.asarray(diffs, dtype=float)
    mean = d.mean(axis=-1)
    sd = d.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dz = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.sign(mean) * np.inf)
    dz = np.where((sd == 0) & (mean == 0), 0.0, dz)
    return float(dz) if d.ndim == 1 else dz


def paired_t(method, control, alternative: Alternative = "greater") -> tuple[float, float]:
    """Paired t statistic and p-value (scipy.stats.ttest_rel), reported next to the sign-flip test."""
    _check_alternative(alternative)
    d = as_diffs(method, control)
    if np.ptp(d) == 0:  # constant differences: t is +-inf (or undefined at 0)
        m = float(d[0])
        if m == 0:
            return 0.0, 1.0
        t = np.sign(m) * np.inf
        p = {"greater": float(m < 0), "less": float(m > 0), "two-sided": 0.0}[alternative]
        return float(t), p
    r = scipy.stats.ttest_rel(np.asarray(method, float), np.asarray(control, float), alternative=alternative)
    return float(r.statistic), float(r.pvalue)


def bca_interval(diffs, level: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap CI of mean(diffs) via scipy.stats.bootstrap; zero width for constant data, never NaN."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"bca_interval needs a 1-D array of at least 2 values, got shape {d.shape}")
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0])
    kw = dict(confidence_level=level, n_resamples=n_resamples, vectorized=True, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when BCa degenerates; we fall back below
        r = scipy.stats.bootstrap((d,), np.mean, method="BCa", rng=np.random.default_rng(seed), **kw)
        lo, hi = float(r.confidence_interval.low), float(r.confidence_interval.high)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            r = scipy.stats.bootstrap((d,), np.mean, method="percentile", rng=np.random.default_rng(seed), **kw)
            lo, hi = float(r.confidence_interval.low), float(r.confidence_interval.high)
    return lo, hi


def ci_for(diffs: np.ndarray, level: float, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, str]:
    """The CI the protocol prescribes for 1-D diffs: t-interval for n < 10, BCa bootstrap from 10 seeds on."""
    if diffs.size < BCA_MIN_N:
        lo, hi = t_interval(diffs, level)
        return lo, hi, "t"
    lo, hi = bca_interval(diffs, level=level, n_resamples=n_resamples, seed=seed)
    return lo, hi, "BCa bootstrap"


def paired_from_diffs(diffs, alpha: float = 0.05, alternative: Alternative = "greater", n_resamples: int = 9999,
                      seed: int = 0) -> PairedResult:
    """PairedResult from precomputed per-seed differences (see paired_difference)."""
    _check_alternative(alternative)
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise DataError(None, None, "diffs", f"need a 1-D array of at least 2 paired seeds, got shape {d.shape}")
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        raise DataError(None, int(bad[0]), "diffs", f"difference is not finite ({d[bad[0]]})")
    level = 1.0 - alpha
    n = d.size
    p = sign_flip_pvalue(d, alternative, n_resamples=n_resamples, seed=seed)
    lo, hi, ci_method = ci_for(d, level, n_resamples=n_resamples, seed=seed)
    exact = n <= EXACT_MAX_N
    test = "sign-flip permutation (exact)" if exact else f"sign-flip permutation (Monte-Carlo, {n_resamples})"
    return PairedResult(estimate=float(d.mean()), ci_low=float(lo), ci_high=float(hi), p_value=float(p),
                        effect_size=float(effect_size_dz(d)), n=int(n), test_name=test, ci_method=ci_method,
                        diffs=tuple(float(x) for x in d), alternative=alternative, ci_level=level)


def paired_difference(method, control, alpha: float = 0.05, alternative: Alternative = "greater",
                      n_resamples: int = 9999, seed: int = 0) -> PairedResult:
    """Compare two arms paired by seed: mean difference, (1-alpha) CI, sign-flip p-value and d_z.

    n < 10 seeds: Student-t interval and the exact sign-flip p over all 2**n sign patterns.
    n >= 10: BCa bootstrap CI (scipy.stats.bootstrap) and a sign-flip p (exact to n=16, seeded Monte-Carlo above).
    All-zero differences give p=1 and CI [0, 0]; constant differences give a zero-width CI, never NaN.
    """
    return paired_from_diffs(as_diffs(method, control), alpha=alpha, alternative=alternative,
                             n_resamples=n_resamples, seed=seed)
