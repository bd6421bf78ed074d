"""Multiple-comparison adjustment (Holm for confirmatory families, Benjamini-Hochberg for screens).

Two engines give the same numbers (tests check agreement on random families with ties):
``statsmodels.stats.multitest.multipletests`` with the method passed explicitly (its default is Holm-Sidak,
not Holm), and a vectorised numpy twin. The numpy engine is the default because statsmodels' Holm branch runs a
full ``gc.collect()`` on every call (about 0.05 s bare, near 1 s in a process that has imported torch).
"""
from __future__ import annotations

import numpy as np
from statsmodels.stats.multitest import multipletests

from tueval.errors import DataError

#: methods accepted by ``adjust``
METHODS = ("holm", "fdr_bh", "bonferroni", "none")


def _check(pvals, method: str) -> np.ndarray:
    """Validated float array of p-values in [0, 1]."""
    if method not in METHODS:
        raise ValueError(f"correction must be one of {METHODS}, got {method!r}")
    p = np.asarray(pvals, dtype=float)
    bad = np.argwhere(~np.isfinite(p) | (p < 0) | (p > 1))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise DataError(None, idx[-1], "p_value", f"p-value must lie in [0, 1], got {p[idx]}")
    return p


def adjust_batch(pvals, method: str = "holm") -> np.ndarray:
    """Adjusted p-values for each row of [..., k] (each row is one family), in numpy."""
    p = _check(pvals, method)
    if method == "none" or p.ndim == 0 or p.shape[-1] == 0:
        return p.copy()
    k = p.shape[-1]
    if method == "bonferroni":
        return np.minimum(p * k, 1.0)
    order = np.argsort(p, axis=-1, kind="stable")
    ps = np.take_along_axis(p, order, axis=-1)
    if method == "holm":  # step-down: running max of (k - i) * p_(i)
        adj_sorted = np.minimum(np.maximum.accumulate(ps * np.arange(k, 0, -1), axis=-1), 1.0)
    else:  # fdr_bh step-up: running min, from the largest p down, of k/i * p_(i)
        scaled = ps * k / np.arange(1, k + 1)
        adj_sorted = np.minimum(np.minimum.accumulate(scaled[..., ::-1], axis=-1)[..., ::-1], 1.0)
    out = np.empty_like(adj_sorted)
    np.put_along_axis(out, order, adj_sorted, axis=-1)
    return out


def adjust(pvals, method: str = "holm", engine: str = "numpy") -> np.ndarray:
    """Adjusted p-values for one 1-D family (``method`` in holm, fdr_bh, bonferroni, none; engine numpy|statsmodels)."""
    p = _check(pvals, method)
    if p.ndim != 1:
        raise DataError(None, None, "p_value", f"expected a 1-D family of p-values, got shape {p.shape}")
    if engine == "numpy":
        return adjust_batch(p, method)
    if engine != "statsmodels":
        raise ValueError(f"engine must be 'numpy' or 'statsmodels', got {engine!r}")
    if p.size == 0 or method == "none":
        return p.copy()
    return multipletests(p, alpha=0.05, method=method)[1]
