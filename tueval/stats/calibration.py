"""Monte-Carlo calibration of the verdict rule: false-positive rate with no true effect, power with a planted one.

Model per simulation: seed effect u_s ~ N(0, rho sigma^2) shared by all arms, own noise e ~ N(0, (1-rho) sigma^2);
method_s = effect*sigma + u_s + e_ms, control_js = u_s + e_js. Each arm has sd sigma and any two arms correlate rho;
differences have sd sigma*sqrt(2(1-rho)), so at rho = 0.5 the planted effect in sd units equals d_z.
``decide`` applies the same rule as ``verdict_table``/``beats_all`` (higher is better), vectorised over simulations.
"""
from __future__ import annotations

import numpy as np

from tueval.stats.multiple import adjust_batch
from tueval.stats.paired import BCA_MIN_N, bca_interval, sign_flip_pvalue, t_interval


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


def decide(method: np.ndarray, controls: np.ndarray, alpha: float = 0.05, correction: str = "holm",
           n_resamples: int = 9999, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-comparison 'better' decisions [n_sims, k] (family of one) and beats_all [n_sims] (Holm over the k controls).

    Identical to ``compare(..., alpha=alpha)`` + ``verdict_table`` + ``beats_all`` per simulation: one-sided
    exact sign-flip p (Monte-Carlo above 16 seeds), (1 - alpha) t-interval below 10 seeds and BCa from 10 on.
    CIs are only computed where the p-value condition already holds (the rule is a conjunction); the correction
    is ``adjust_batch``, which ``adjust`` (used by verdict_table) calls row by row.
    """
    diffs = method[:, None, :] - controls  # [S, k, n]
    n_sims, k, n = diffs.shape
    p = np.asarray(sign_flip_pvalue(diffs, "greater", n_resamples=n_resamples, seed=seed)).reshape(n_sims, k)
    level = 1.0 - alpha
    ci_low = np.full((n_sims, k), -np.inf)
    need = p < alpha
    if n < BCA_MIN_N:
        ci_low[need] = t_interval(diffs[need], level)[0]
    else:
        ci_low[need] = [bca_interval(d, level, n_resamples=n_resamples, seed=seed)[0] for d in diffs[need]]
    ci_ok = ci_low > 0
    per_comparison = need & ci_ok
    beats = np.all((adjust_batch(p, correction) < alpha) & ci_ok, axis=1)
    return per_comparison, beats


def simulate_fpr(n_sims: int = 1000, n_seeds: int = 6, n_controls: int = 3, effect: float = 0.0,
                 noise_sd: float = 1.0, alpha: float = 0.05, correlation: float = 0.5, seed: int = 0,
                 n_resamples: int = 9999) -> dict:
    """Rate at which the rule declares 'method beats all controls' (FPR at effect 0, power otherwise), with MC-SE.

    ``rate``/``mc_se`` are for beats_all (Holm over the controls); ``per_comparison_rate``/``per_comparison_mc_se``
    for single comparisons (MC-SE from per-simulation averages, since a simulation's comparisons are correlated).
    """
    method, controls = simulate_arms(n_sims, n_seeds, n_controls, effect, noise_sd, correlation, seed)
    per, beats = decide(method, controls, alpha=alpha, n_resamples=n_resamples, seed=seed)
    rate = float(beats.mean())
    per_sim = per.mean(axis=1)
    pc_rate = float(per_sim.mean())
    pc_se = float(per_sim.std(ddof=1) / np.sqrt(n_sims)) if n_sims > 1 else float("nan")
    return {"rate": rate, "mc_se": float(np.sqrt(rate * (1 - rate) / n_sims)), "n_sims": int(n_sims),
            "per_comparison_rate": pc_rate, "per_comparison_mc_se": pc_se, "n_seeds": int(n_seeds),
            "n_controls": int(n_controls), "effect": float(effect), "alpha": float(alpha),
            "correlation": float(correlation)}


def simulate_power(effect: float, **kwargs) -> dict:
    """simulate_fpr with a planted effect (in sd units of one arm): the rate is the power of the rule."""
    return simulate_fpr(effect=effect, **kwargs)
