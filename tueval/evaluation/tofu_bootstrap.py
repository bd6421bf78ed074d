"""Percentile bootstrap CIs of the TOFU aggregates, resampling examples within each set (vectorised)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from .tofu_aggregate import UTILITY_SETS, example_values, harmonic_mean, truth_ratios


def percentile_ci(samples: np.ndarray, ci: float = 0.95) -> list[float]:
    """[lower, upper] percentile interval of bootstrap replicates (NaN if any replicate is NaN)."""
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(np.asarray(samples, dtype=float), [a, 1.0 - a])
    return [float(lo), float(hi)]


def bootstrap_replicates(
    tables: Mapping[str, pd.DataFrame], retain_forget: pd.DataFrame | None = None,
    n_boot: int = 1000, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates [n_boot] of each component, model utility, the forget aggregates and forget quality.

    Examples are resampled with replacement within each set; the three aggregates of one set share the resample.
    Forget quality resamples the forget examples jointly for both models when both logs hold the same example
    ids in the same order (paired), otherwise each model's forget set independently.
    """
    rng = np.random.default_rng(seed)
    reps: dict[str, np.ndarray] = {}
    comps = []
    for s in UTILITY_SETS:
        if s not in tables:
            continue
        vals = example_values(tables[s], s)
        idx = rng.integers(0, len(tables[s]), size=(n_boot, len(tables[s])))
        for k, v in vals.items():
            reps[f"{s}_{k}"] = v[idx].mean(axis=1)
            comps.append(reps[f"{s}_{k}"])
    if comps:
        reps["model_utility"] = harmonic_mean(np.stack(comps, axis=0), axis=0)
    if "forget" in tables:
        f = tables["forget"]
        idx = rng.integers(0, len(f), size=(n_boot, len(f)))
        for k, v in example_values(f, "forget").items():
            reps[f"forget_{k}"] = v[idx].mean(axis=1)
        if retain_forget is not None:
            a, b = truth_ratios(f), truth_ratios(retain_forget)
            paired = ("example_id" in f and "example_id" in retain_forget and len(f) == len(retain_forget)
                      and list(f["example_id"]) == list(retain_forget["example_id"]))
            idx_b = idx if paired else rng.integers(0, len(b), size=(n_boot, len(b)))
            reps["forget_quality"] = np.asarray(ks_2samp(a[idx], b[idx_b], axis=1).pvalue, dtype=float)
    return reps


def bootstrap_cis(
    tables: Mapping[str, pd.DataFrame], retain_forget: pd.DataFrame | None = None,
    n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile CIs ``{name: [lo, hi]}`` for model utility, each component, the forget aggregates and FQ."""
    if n_boot <= 0:
        return {}
    reps = bootstrap_replicates(tables, retain_forget, n_boot, seed)
    return {k: percentile_ci(v, ci) for k, v in reps.items()}
