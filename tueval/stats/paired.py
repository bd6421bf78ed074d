"""Paired per-seed differences: t-interval (below 20 seeds) or bootstrap-t CI, a bootstrap-t interval robust to
skew, the sign-flip p-value, and d_z with its noncentral-t CI (the seed is the unit).

The sign-flip test of the mean is exact when the differences are symmetric about 0 (arms exchangeable under the
null). Studentizing it changes nothing in the paired case: sign flips leave the sum of squares unchanged, so the t
statistic is an increasing function of the mean on every sign pattern and both rank the patterns alike. Skewed
differences are handled by the bootstrap-t interval (second-order accurate for the mean), which the verdict rule
requires to exclude 0 as well (``tueval.stats.verdict``)."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from tueval.errors import DataError

Alternative = Literal["greater", "less", "two-sided"]
ALTERNATIVES = ("greater", "less", "two-sided")

#: largest n for which the sign-flip null is enumerated exactly (2**16 sign patterns)
EXACT_MAX_N = 16
#: below this many seeds the reported CI is a t-interval, from here on the bootstrap-t interval (BCa is narrow at
#: small n: at 10 seeds its 95% interval covers about 90%)
T_MAX_N = 20
#: below this many seeds the robust (bootstrap-t) interval of the verdict rule leaves ``SMALL_N_TAIL`` x alpha
#: outside it instead of alpha (a 98% interval at alpha 0.05): at 7 and 10 seeds a 95% bootstrap-t interval
#: excludes 0 too often when the differences have a long tail against the tested side; from 14 it holds its level
#: (benchmarks/calibration.md)
SMALL_N = 14
SMALL_N_TAIL = 0.4
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
    robust_ci_low: float = float("nan")
    robust_ci_high: float = float("nan")
    robust_ci_level: float = 0.95
    effect_size_ci_low: float = float("nan")
    effect_size_ci_high: float = float("nan")
    n_failed: int = 0

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


def worst_rank(method, control, higher_is_better: bool = True, worst=None) -> tuple[np.ndarray, np.ndarray]:
    """Method and control values [..., n] with every non-finite value (a failed or diverged seed: NaN or inf)
    replaced by the worst value:
    ``worst`` if given, else the worst finite value of both arms over the last axis (the minimum when higher is
    better). A failed seed thus counts against its own arm, tied with the worst finished run, and is never
    dropped; where no value is finite the NaNs stay."""
    m = np.asarray(method, dtype=float)
    c = np.asarray(control, dtype=float)
    m, c = np.where(np.isfinite(m), m, np.nan), np.where(np.isfinite(c), c, np.nan)
    if worst is None:
        both = np.concatenate([m, c], axis=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            worst = (np.nanmin if higher_is_better else np.nanmax)(both, axis=-1, keepdims=True)
    worst = np.broadcast_to(np.asarray(worst, dtype=float), m.shape[:-1] + (1,)) if np.ndim(worst) else worst
    m = np.where(np.isnan(m), worst, m)
    c = np.where(np.isnan(c), worst, c)
    return m, c


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


def bootstrap_t_interval(values, level: float = 0.95, n_resamples: int = 9999, seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray] | tuple[float, float]:
    """Equal-tailed bootstrap-t (percentile-t) CI of the mean over the last axis (batch-aware).

    Resamples the n values with replacement (one set of resample indices per call, from ``seed``), studentizes each
    resample, T* = (mean* - mean) / se*, and returns [mean - q_hi se, mean - q_lo se] with the outer order
    statistics of T* (no interpolation). A resample with se* = 0 has T* = +-inf (0 when its mean equals the
    sample's), so a sample that often resamples to a constant gets an unbounded side. Constant data give a
    zero-width interval; fewer than 2 values give NaN."""
    d = np.asarray(values, dtype=float)
    scalar = d.ndim == 1
    d2 = d.reshape(-1, d.shape[-1])
    S, n = d2.shape
    lo, hi = np.full(S, np.nan), np.full(S, np.nan)
    if n >= 2:
        idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        mean = d2.mean(axis=1)
        se = d2.std(axis=1, ddof=1) / np.sqrt(n)
        qs = ((1 - level) / 2, (1 + level) / 2)
        step = max(1, _CHUNK_ELEMENTS // (n_resamples * n))
        for i in range(0, S, step):  # chunks over the batch, never over values
            b = d2[i:i + step][:, idx]  # [b, R, n]
            mb, sb = b.mean(axis=2), b.std(axis=2, ddof=1) / np.sqrt(n)
            dm = mb - mean[i:i + step, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(sb > 0, dm / np.where(sb > 0, sb, 1.0), np.sign(dm) * np.inf)
            q_lo = np.quantile(t, qs[0], axis=1, method="lower")
            q_hi = np.quantile(t, qs[1], axis=1, method="higher")
            m, s_ = mean[i:i + step], se[i:i + step]
            with np.errstate(invalid="ignore"):
                lo[i:i + step] = np.where(s_ > 0, m - q_hi * s_, m)
                hi[i:i + step] = np.where(s_ > 0, m - q_lo * s_, m)
    lo, hi = lo.reshape(d.shape[:-1]), hi.reshape(d.shape[:-1])
    return (float(lo), float(hi)) if scalar else (lo, hi)


def dz_interval(diffs, level: float = 0.95) -> tuple[float, float]:
    """CI of Cohen's d_z from the noncentral t distribution of t = d_z sqrt(n) (exact under normal differences);
    NaN for fewer than 2 values, (d_z, d_z) when d_z is infinite or the data are constant."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n < 2:
        return float("nan"), float("nan")
    dz = float(effect_size_dz(d))
    if not np.isfinite(dz) or np.ptp(d) == 0:
        return dz, dz
    return nct_interval(dz * np.sqrt(n), n - 1, n, level)


def nct_interval(t: float, df: float, n_eff: float, level: float = 0.95) -> tuple[float, float]:
    """CI of a standardised effect ``t / sqrt(n_eff)`` by inverting the noncentral t with ``df`` degrees of freedom
    in its noncentrality (the normal approximation t +- z sqrt(1 + t^2 / (2 df)) if no root is bracketed)."""
    if not np.isfinite(t):
        return t / np.sqrt(n_eff), t / np.sqrt(n_eff)
    a = (1 - level) / 2
    z = float(scipy.stats.norm.ppf(1 - a))
    width = np.sqrt(1 + t ** 2 / (2 * df))  # sd of t around its noncentrality, to first order

    def cdf(nc: float) -> float:
        # P(T <= t) falls from 1 to 0 as nc grows; far in either tail scipy returns NaN (or noise near 0 and 1),
        # read as the tail's limit so that the root is bracketed and found wherever it lies
        v = float(scipy.stats.nct.cdf(t, df, nc))
        return min(max(v, 0.0), 1.0) if np.isfinite(v) else float(nc < t)

    def widen(nc: float, sign: float, p: float) -> float:  # step out from nc, doubling, until past p's root
        step = width
        for _ in range(64):
            if (cdf(nc) - p) * sign < 0:
                break
            nc, step = nc + sign * step, step * 2
        return nc

    def limit(p: float, sign: float) -> float:  # the noncentrality at which P(T <= t) = p
        guess = t + sign * z * width
        lo, hi = widen(guess - width, -1.0, p), widen(guess + width, 1.0, p)
        try:
            return float(scipy.optimize.brentq(lambda nc: cdf(nc) - p, lo, hi, xtol=1e-10))
        except ValueError:
            return guess

    return limit(1 - a, -1.0) / np.sqrt(n_eff), limit(a, 1.0) / np.sqrt(n_eff)


def robust_level(n: int, alpha: float = 0.05) -> float:
    """The level of the robust (bootstrap-t) interval that the verdict rule requires to exclude 0, for n seeds."""
    return 1.0 - alpha * (SMALL_N_TAIL if n < SMALL_N else 1.0)


def robust_level_note(alpha: float = 0.05) -> str:
    """The robust interval's levels in words for a report, e.g. '98% below 14 seeds, 95% from 14'."""
    small, large = robust_level(SMALL_N - 1, alpha), robust_level(SMALL_N, alpha)
    return f"{small:.0%} below {SMALL_N} seeds, {large:.0%} from {SMALL_N}"


def paired_from_diffs(diffs, alpha: float = 0.05, alternative: Alternative = "greater", n_resamples: int = 9999,
                      seed: int = 0, n_failed: int = 0) -> PairedResult:
    """PairedResult from precomputed per-seed differences (see paired_difference); ``n_failed``: how many of them
    stand for a failed (NaN or diverged) seed under the worst-rank rule (reported, not used)."""
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
    r_level = robust_level(n, alpha)
    rlo, rhi = bootstrap_t_interval(d, r_level, n_resamples=n_resamples, seed=seed)
    if n < T_MAX_N:
        lo, hi, ci_method = (*t_interval(d, level), "t")
    else:  # SMALL_N <= T_MAX_N: here the robust interval is at the reported level
        lo, hi, ci_method = rlo, rhi, "bootstrap-t"
    dlo, dhi = dz_interval(d, level)
    exact = n <= EXACT_MAX_N
    test = "sign-flip permutation (exact)" if exact else f"sign-flip permutation (Monte-Carlo, {n_resamples})"
    return PairedResult(estimate=float(d.mean()), ci_low=float(lo), ci_high=float(hi), p_value=float(p),
                        effect_size=float(effect_size_dz(d)), n=int(n), test_name=test, ci_method=ci_method,
                        diffs=tuple(float(x) for x in d), alternative=alternative, ci_level=level,
                        robust_ci_low=float(rlo), robust_ci_high=float(rhi), robust_ci_level=r_level,
                        effect_size_ci_low=float(dlo), effect_size_ci_high=float(dhi), n_failed=int(n_failed))


def paired_difference(method, control, alpha: float = 0.05, alternative: Alternative = "greater",
                      n_resamples: int = 9999, seed: int = 0) -> PairedResult:
    """Compare two arms paired by seed: mean difference, (1-alpha) CI, sign-flip p-value and d_z with its CI.

    CI: Student-t interval below 20 seeds, bootstrap-t from 20; the bootstrap-t interval is always computed too
    (``robust_ci_*``, at ``robust_level(n, alpha)``: the verdict rule needs both to exclude 0). p: sign-flip test
    of the mean, exact to n=16 (all 2**n sign patterns), seeded Monte-Carlo above. All-zero differences give p=1
    and CI [0, 0]; constant differences give a zero-width CI, never NaN.
    """
    return paired_from_diffs(as_diffs(method, control), alpha=alpha, alternative=alternative,
                             n_resamples=n_resamples, seed=seed)
