"""Monte-Carlo calibration of the verdict rule: false-positive rate under nulls shaped like the real data, and
power with a planted effect.

``decide_diffs`` applies exactly the rule of ``verdict_table`` (per comparison at alpha: one-sided sign-flip p <
alpha, the reported CI and the bootstrap-t CI exclude 0; Holm labels; the intersection-union ``beats_all``),
vectorised over simulations.

Two generators:
- ``simulate_arms``: per seed a shared seed effect u_s ~ N(0, rho sigma^2) and own noise e ~ N(0, (1-rho)
  sigma^2); method_s = effect*sigma + u_s + e_ms, control_js = u_s + e_js. Any two arms correlate rho, so the k
  comparisons of one simulation share the method arm; at rho = 0.5 the planted effect equals d_z.
- ``null_diffs``: per-seed differences of one comparison drawn from a null shape (``NULLS``): normal, skewed
  (moderate and 1 - Exp(1)), resampled empirical differences (centred and standardised, from committed runs),
  the KS lattice of forget quality, and collapse-prone arms (with collapses as values, or as failed seeds under
  the worst-rank rule). Each has mean 0 (the null) and sd about 1, so a planted ``effect`` is in d_z units.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from tueval.stats.multiple import adjust_batch
from tueval.stats.paired import (T_MAX_N, bootstrap_t_interval, robust_level, sign_flip_pvalue, t_interval,
                                 worst_rank)

#: truth ratios per forget split of the default workdir (20 people x 10 questions): forget quality is the KS p
#: of two samples of this size, so it takes one of KS_M + 1 values
KS_M = 200
#: collapse-prone arms: chance that an arm collapses on a seed, and how far (in sd of the seed-to-seed noise)
COLLAPSE_P, COLLAPSE_DROP = 0.15, 4.0


def simulate_arms(n_sims: int, n_seeds: int, n_controls: int, effect: float = 0.0, noise_sd: float = 1.0,
                  correlation: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed metric values: method [n_sims, n_seeds] and controls [n_sims, n_controls, n_seeds]."""
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must lie in [0, 1), got {correlation}")
    rng = np.random.default_rng(seed)
    shared = rng.normal(0.0, noise_sd * np.sqrt(correlation), size=(n_sims, 1, n_seeds))
    own = rng.normal(0.0, noise_sd * np.sqrt(1 - correlation), size=(n_sims, n_controls + 1, n_seeds))
    arms = shared + own
    return arms[:, 0] + effect * noise_sd, arms[:, 1:]


def decide_diffs(diffs: np.ndarray, alpha: float = 0.05, correction: str = "holm", n_resamples: int = 9999,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The verdict rule on per-seed differences [n_sims, k, n] (higher is better): per-comparison decisions at
    alpha without correction [n_sims, k] (``better_unadjusted``), Holm-adjusted 'better' labels [n_sims, k] and
    the intersection-union ``beats_all`` [n_sims].

    Identical to ``compare_diffs(..., alpha=alpha)`` + ``verdict_table`` + ``beats_all`` per simulation: one-sided
    sign-flip p (exact to 16 seeds, Monte-Carlo above, same seed), the (1 - alpha) t-interval below 20 seeds and
    the bootstrap-t interval from 20 as the reported CI, the bootstrap-t interval (same seed, at ``robust_level``) as
    the robust CI.
    CIs are only computed where the p condition holds (the rule is a conjunction)."""
    d = np.asarray(diffs, dtype=float)
    n_sims, k, n = d.shape
    p = np.asarray(sign_flip_pvalue(d, "greater", n_resamples=n_resamples, seed=seed)).reshape(n_sims, k)
    level = 1.0 - alpha
    ci_ok = np.zeros((n_sims, k), dtype=bool)
    need = p < alpha
    if need.any():
        sub = d[need]
        rlo = np.asarray(bootstrap_t_interval(sub, robust_level(n, alpha), n_resamples=n_resamples, seed=seed)[0])
        lo = np.asarray(t_interval(sub, level)[0]) if n < T_MAX_N else rlo
        ci_ok[need] = (lo > 0) & (rlo > 0)
    per = need & ci_ok
    holm = (adjust_batch(p, correction) < alpha) & ci_ok
    return per, holm, per.all(axis=1)


def decide(method: np.ndarray, controls: np.ndarray, alpha: float = 0.05, correction: str = "holm",
           n_resamples: int = 9999, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-comparison decisions at alpha [n_sims, k] and the intersection-union beats_all [n_sims] of a method
    [n_sims, n] against controls [n_sims, k, n] (``decide_diffs`` of method - control)."""
    per, _, beats = decide_diffs(method[:, None, :] - controls, alpha, correction, n_resamples, seed)
    return per, beats


def _se(rate: float, n: int) -> float:
    return float(np.sqrt(rate * (1 - rate) / n)) if n > 0 else float("nan")


def simulate_fpr(n_sims: int = 1000, n_seeds: int = 7, n_controls: int = 3, effect: float = 0.0,
                 noise_sd: float = 1.0, alpha: float = 0.05, correlation: float = 0.5, seed: int = 0,
                 n_resamples: int = 9999) -> dict:
    """Rates of the rule on ``simulate_arms``: ``rate`` = intersection-union beats_all, ``per_comparison_rate``
    (MC-SE from per-simulation averages: a simulation's comparisons are correlated) and ``holm_any_rate`` (some
    Holm label 'better': the family-wise error at effect 0)."""
    method, controls = simulate_arms(n_sims, n_seeds, n_controls, effect, noise_sd, correlation, seed)
    per, holm, beats = decide_diffs(method[:, None, :] - controls, alpha=alpha, n_resamples=n_resamples, seed=seed)
    rate = float(beats.mean())
    per_sim = per.mean(axis=1)
    holm_any = float(holm.any(axis=1).mean())
    return {"rate": rate, "mc_se": _se(rate, n_sims), "n_sims": int(n_sims),
            "per_comparison_rate": float(per_sim.mean()),
            "per_comparison_mc_se": float(per_sim.std(ddof=1) / np.sqrt(n_sims)) if n_sims > 1 else float("nan"),
            "holm_any_rate": holm_any, "holm_any_mc_se": _se(holm_any, n_sims), "n_seeds": int(n_seeds),
            "n_controls": int(n_controls), "effect": float(effect), "alpha": float(alpha),
            "correlation": float(correlation)}


def simulate_power(effect: float, **kwargs) -> dict:
    """simulate_fpr with a planted effect (in sd units of one arm): the rates are the power of the rule."""
    return simulate_fpr(effect=effect, **kwargs)


# ----------------------------------------------------------------------------------------------------- null shapes
def _standardise(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return (x - mean) / sd


def _normal(rng, S, n, pool):
    return rng.normal(0.0, 1.0, (S, n))


def _skew_moderate(rng, S, n, pool):  # -(Gamma(4) - 4) / 2: skewness -1, the long tail against the method
    return -_standardise(rng.gamma(4.0, 1.0, (S, n)), 4.0, 2.0)


def _one_minus_exp(rng, S, n, pool):  # 1 - Exp(1): skewness -2
    return 1.0 - rng.exponential(1.0, (S, n))


def _empirical(rng, S, n, pool):
    if pool is None or len(pool) < 2:
        raise ValueError("the empirical null needs a pool of centred, standardised differences")
    return rng.choice(np.asarray(pool, float), size=(S, n), replace=True)


@lru_cache(maxsize=4)
def ks_lattice(m: int = KS_M) -> np.ndarray:
    """The p-values of scipy's two-sample KS test with m and m values at D = j/m, j = 0..m (the lattice that
    forget quality lives on)."""
    import warnings

    import scipy.stats

    y = np.arange(m, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = np.array([scipy.stats.ks_2samp(y + j - 0.5, y).pvalue for j in range(m + 1)])
    p[0] = 1.0
    p.setflags(write=False)
    return p


def ks_statistic_counts(x: np.ndarray, y_sorted: np.ndarray) -> np.ndarray:
    """m * D of the two-sample KS statistic between each row of x [..., m] and the sorted sample y (both of size
    m, continuous values), as integers."""
    m = y_sorted.size
    xs = np.sort(x, axis=-1)
    c = np.searchsorted(y_sorted, xs, side="right")  # Y values <= x_(i)
    i1 = np.arange(1, m + 1)
    c_next = np.concatenate([c[..., 1:], np.full(c.shape[:-1] + (1,), m)], axis=-1)
    return np.maximum(np.maximum(np.abs(i1 - c), np.abs(i1 - c_next)).max(axis=-1), c[..., 0])


def _ks_lattice_null(rng, S, n, pool, m: int = KS_M):
    """log10 forget quality of two exchangeable arms: per seed, truth ratios of the unlearned model ~ N(delta, 1)
    against one retain sample ~ N(0, 1) (m each), delta = 0.45 + 0.1 (shared seed effect + own noise, rho 0.5)
    so that log10 forget quality spreads over about -1 .. -6 as in the committed runs."""
    lattice = np.log10(np.maximum(ks_lattice(m), 1e-300))
    y = np.sort(rng.normal(0.0, 1.0, (S, 1, 1, m)), axis=-1)
    shared = rng.normal(0.0, np.sqrt(0.5), (S, n, 1, 1))
    delta = 0.45 + 0.1 * (shared + rng.normal(0.0, np.sqrt(0.5), (S, n, 2, 1)))
    x = rng.normal(0.0, 1.0, (S, n, 2, m)) + delta
    counts = np.empty((S, n, 2), dtype=np.int64)
    for s in range(S):  # one retain sample per simulation; vectorised over seeds, arms and values
        counts[s] = ks_statistic_counts(x[s], y[s, 0, 0])
    fq = lattice[counts]
    return fq[..., 0] - fq[..., 1]


def _collapse_arms(rng, S, n):
    shared = rng.normal(0.0, np.sqrt(0.5), (S, n, 1))
    arms = shared + rng.normal(0.0, np.sqrt(0.5), (S, n, 2))
    collapsed = rng.random((S, n, 2)) < COLLAPSE_P
    return np.where(collapsed, arms - COLLAPSE_DROP, arms), collapsed


def _collapse(rng, S, n, pool):
    """Both arms collapse independently with probability COLLAPSE_P on a seed (a drop of COLLAPSE_DROP sd)."""
    arms, _ = _collapse_arms(rng, S, n)
    return arms[..., 0] - arms[..., 1]


def _collapse_failed(rng, S, n, pool):
    """As ``collapse``, but a collapsed run fails (NaN) and counts against its arm by the worst-rank rule."""
    arms, collapsed = _collapse_arms(rng, S, n)
    arms = np.where(collapsed, np.nan, arms)
    m, c = worst_rank(arms[..., 0], arms[..., 1], higher_is_better=True)
    return m - c


#: null shapes of one comparison's per-seed differences: name -> (generator(rng, n_sims, n_seeds, pool), what)
NULLS: dict[str, tuple[Callable, str]] = {
    "normal": (_normal, "normal differences (exchangeable arms)"),
    "skew -1": (_skew_moderate, "-(Gamma(4) - 4)/2: skewness -1, long tail against the method"),
    "1 - Exp(1)": (_one_minus_exp, "1 - Exp(1): skewness -2, long tail against the method (stress)"),
    "empirical": (_empirical, "resampled centred, standardised paired differences of committed runs"),
    "KS lattice": (_ks_lattice_null, f"log10 forget quality on the KS lattice (m = {KS_M}), exchangeable arms"),
    "collapse": (_collapse, f"both arms collapse with p = {COLLAPSE_P} per seed ({COLLAPSE_DROP} sd drop)"),
    "collapse, failed seeds": (_collapse_failed, "collapses as failed seeds, worst-rank rule"),
}


def null_diffs(null: str, n_sims: int, n_seeds: int, effect: float = 0.0, seed: int = 0,
               pool: np.ndarray | None = None) -> np.ndarray:
    """Per-seed differences [n_sims, n_seeds] of one comparison from null shape ``null`` (``NULLS``), plus a
    planted ``effect`` in sd units of the null's differences (the empirical null needs its ``pool``)."""
    if null not in NULLS:
        raise ValueError(f"null '{null}' is not one of {', '.join(NULLS)}")
    rng = np.random.default_rng(seed)
    d = NULLS[null][0](rng, n_sims, n_seeds, pool)
    if effect:
        d = d + effect * float(np.std(d))
    return d


def simulate_null(null: str, n_sims: int = 2000, n_seeds: int = 7, effect: float = 0.0, alpha: float = 0.05,
                  seed: int = 0, pool: np.ndarray | None = None, n_resamples: int = 9999) -> dict:
    """Rate at which one comparison is called better at alpha (the decision the intersection-union rule uses)
    under null shape ``null`` (FPR at effect 0, power otherwise), with its Monte-Carlo SE."""
    d = null_diffs(null, n_sims, n_seeds, effect, seed, pool)
    per, _, _ = decide_diffs(d[:, None, :], alpha=alpha, n_resamples=n_resamples, seed=seed)
    rate = float(per.mean())
    return {"null": null, "n_seeds": int(n_seeds), "effect": float(effect), "rate": rate, "mc_se": _se(rate, n_sims),
            "n_sims": int(n_sims), "alpha": float(alpha)}
