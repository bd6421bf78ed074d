"""Paired differences pooled over strata (e.g. independently trained model pairs, seeds nested in pairs): the
estimate is the mean over strata of each stratum's mean difference (every stratum weighs the same, whatever its
seed count), tested with a sign-flip permutation test of that statistic and given a Welch-Satterthwaite t-interval
and a stratified bootstrap-t interval.

The test: under the null that every seed-level difference is symmetric about 0, flipping the sign of any subset of
the differences leaves their joint distribution unchanged whatever each stratum's scale, so the sign-flip null of
any statistic is exact; strata need not share a variance. The statistic ``sum_i w_i d_i`` with ``w_i = 1 /
(K n_k(i))`` is the plain mean of the rescaled differences ``d_i * N w_i`` (N seeds in all), so the stratified
test is ``sign_flip_pvalue`` of those (exact up to ``EXACT_MAX_N`` seeds in all, Monte-Carlo above). This is a
fixed-effect (stratified) test: it asks whether the effect averaged over these strata is non-zero. With two
strata a between-stratum variance (a random effect) cannot be estimated, so a claim that the effect holds for
other model pairs rests on it holding in every stratum, which the caller counts."""
from __future__ import annotations

import numpy as np
import scipy.stats

from tueval.errors import DataError
from tueval.stats.paired import (EXACT_MAX_N, Alternative, PairedResult, _check_alternative, nct_interval,
                                 robust_level, sign_flip_pvalue)



def _strata(diffs, strata) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated differences, their stratum index 0..K-1 (first-seen order) and K."""
    d = np.asarray(diffs, dtype=float)
    s = np.asarray(strata)
    if d.ndim != 1 or s.shape != d.shape:
        raise DataError(None, None, "strata", f"need one stratum per difference, got shapes {d.shape} and {s.shape}")
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        raise DataError(None, int(bad[0]), "diffs", f"difference is not finite ({d[bad[0]]})")
    _, first, idx = np.unique(s, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # stratum labels in first-seen order
    idx = order[idx.reshape(-1)]
    counts = np.bincount(idx)
    if (counts < 2).any():
        raise DataError(None, None, "strata", f"every stratum needs at least 2 paired seeds, got {counts.tolist()}")
    return d, idx, counts.size


def stratum_means(diffs, strata) -> np.ndarray:
    """The mean difference of each stratum, in first-seen order."""
    d, idx, k = _strata(diffs, strata)
    return np.bincount(idx, weights=d, minlength=k) / np.bincount(idx, minlength=k)


def pooled_weights(strata) -> np.ndarray:
    """Per difference, the weight ``1 / (K n_k)`` of its stratum in the mean of stratum means."""
    _, idx, counts = np.unique(np.asarray(strata), return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[idx.reshape(-1)])


def stratified_sign_flip_pvalue(diffs, strata, alternative: Alternative = "greater", n_resamples: int = 9999,
                                seed: int = 0) -> np.ndarray | float:
    """Sign-flip p-value of the mean of stratum means (see module doc; exact up to ``EXACT_MAX_N`` seeds);
    ``diffs`` ``[..., N]`` with one stratum per position of the last axis gives one p per leading index."""
    d = np.asarray(diffs, dtype=float)
    _strata(d.reshape(-1, d.shape[-1])[0], strata)
    return sign_flip_pvalue(d * d.shape[-1] * pooled_weights(strata), alternative, n_resamples=n_resamples,
                            seed=seed)


def _se_df(d: np.ndarray, idx: np.ndarray, k: int) -> tuple[float, float]:
    """Standard error of the mean of stratum means and its Welch-Satterthwaite degrees of freedom."""
    n = np.bincount(idx, minlength=k).astype(float)
    m = np.bincount(idx, weights=d, minlength=k) / n
    var = np.bincount(idx, weights=(d - m[idx]) ** 2, minlength=k) / (n - 1)
    terms = var / n / k ** 2
    se2 = float(terms.sum())
    if se2 == 0:
        return 0.0, float((n - 1).sum())
    return float(np.sqrt(se2)), float(se2 ** 2 / np.sum(terms ** 2 / (n - 1)))


def stratified_t_interval(diffs, strata, level: float = 0.95) -> tuple[float, float]:
    """Welch-Satterthwaite t-interval of the mean of stratum means."""
    d, idx, k = _strata(diffs, strata)
    est = float(np.mean(np.bincount(idx, weights=d) / np.bincount(idx)))
    se, df = _se_df(d, idx, k)
    half = float(scipy.stats.t.ppf(0.5 + level / 2, df)) * se if se > 0 else 0.0
    return est - half, est + half


def stratified_bootstrap_t_interval(diffs, strata, level: float = 0.95, n_resamples: int = 9999, seed: int = 0
                                    ) -> tuple[float, float]:
    """Equal-tailed bootstrap-t CI of the mean of stratum means, resampling seeds within each stratum; a resample
    with standard error 0 has T* = +-inf (0 when its estimate equals the sample's)."""
    d, idx, k = _strata(diffs, strata)
    n = np.bincount(idx, minlength=k)
    est = float(np.mean(np.bincount(idx, weights=d) / n))
    se, _ = _se_df(d, idx, k)
    if se == 0:
        return est, est
    rng = np.random.default_rng(seed)
    # one resample of every stratum per row: draw positions within the stratum, map to the stratum's members
    members = [np.flatnonzero(idx == j) for j in range(k)]
    cols = np.concatenate([members[j][rng.integers(0, n[j], size=(n_resamples, n[j]))].T for j in range(k)]).T
    b = d[cols]  # [R, N], columns grouped by stratum
    bidx = np.repeat(np.arange(k), n)
    sums = np.stack([b[:, bidx == j].sum(axis=1) for j in range(k)], axis=1)
    means = sums / n
    var = np.stack([((b[:, bidx == j] - means[:, [j]]) ** 2).sum(axis=1) for j in range(k)], axis=1) / (n - 1)
    est_b = means.mean(axis=1)
    se_b = np.sqrt((var / n).sum(axis=1)) / k
    dm = est_b - est
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se_b > 0, dm / np.where(se_b > 0, se_b, 1.0), np.sign(dm) * np.inf)
    q_lo = np.quantile(t, (1 - level) / 2, method="lower")
    q_hi = np.quantile(t, (1 + level) / 2, method="higher")
    return float(est - q_hi * se), float(est - q_lo * se)


def stratified_from_diffs(diffs, strata, alpha: float = 0.05, alternative: Alternative = "greater",
                          n_resamples: int = 9999, seed: int = 0, n_failed: int = 0) -> PairedResult:
    """PairedResult of seed-level differences pooled over ``strata`` (see module doc): estimate = mean of stratum
    means, CI = Welch-Satterthwaite t, robust CI = stratified bootstrap-t, p = stratified sign-flip, effect size =
    estimate / the pooled within-stratum SD with its noncentral-t CI. Its ``diffs`` are the rescaled differences
    whose plain mean is the estimate (a plain sign-flip test of them is the stratified test), ``n`` all seeds."""
    _check_alternative(alternative)
    d, idx, k = _strata(diffs, strata)
    level = 1.0 - alpha
    n = np.bincount(idx, minlength=k)
    scaled = d * d.size * pooled_weights(idx)
    est = float(scaled.mean())
    p = float(sign_flip_pvalue(scaled, alternative, n_resamples=n_resamples, seed=seed))
    lo, hi = stratified_t_interval(d, idx, level)
    r_level = robust_level(int(n.min()), alpha)  # it resamples within strata: the smallest one sets the level
    rlo, rhi = stratified_bootstrap_t_interval(d, idx, r_level, n_resamples, seed)
    se, df = _se_df(d, idx, k)
    m = np.bincount(idx, weights=d, minlength=k) / n
    sd = float(np.sqrt(np.sum((d - m[idx]) ** 2) / (d.size - k)))  # pooled within-stratum SD
    if sd > 0 and se > 0:
        es = est / sd
        elo, ehi = nct_interval(est / se, df, (sd / se) ** 2, level)
    else:
        es = 0.0 if est == 0 else float(np.sign(est) * np.inf)
        elo = ehi = es
    exact = d.size <= EXACT_MAX_N
    test = (f"stratified sign-flip permutation over {k} strata "
            + ("(exact)" if exact else f"(Monte-Carlo, {n_resamples})"))
    return PairedResult(estimate=est, ci_low=float(lo), ci_high=float(hi), p_value=p, effect_size=float(es),
                        n=int(d.size), test_name=test, ci_method="Welch-Satterthwaite t over strata",
                        diffs=tuple(float(x) for x in scaled), alternative=alternative, ci_level=level,
                        robust_ci_low=float(rlo), robust_ci_high=float(rhi), robust_ci_level=r_level,
                        effect_size_ci_low=float(elo), effect_size_ci_high=float(ehi), n_failed=int(n_failed))
