"""Bootstrap intervals: BCa for per-seed differences, hierarchical (seeds, then examples) for per-example metrics."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.stats

from tueval.errors import DataError

Statistic = Literal["mean", "pooled_mean"]
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """A point estimate with a percentile bootstrap CI and the bootstrap standard error."""

    estimate: float
    ci_low: float
    ci_high: float
    se: float
    ci: float
    n_resamples: int
    n_seeds: int
    n_examples: int
    method: str

    def to_dict(self) -> dict:
        """Plain-dict view for JSON/CSV."""
        return asdict(self)


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


# ----------------------------------------------------------------------------------------------------------------
# hierarchical bootstrap


def _values_and_seeds(values, seed_ids, value_col: str, seed_col: str) -> tuple[np.ndarray, np.ndarray]:
    """Pull (values, seed ids) from a DataFrame or two arrays and validate them."""
    if isinstance(values, pd.DataFrame):
        for col in (value_col, seed_col):
            if col not in values.columns:
                raise DataError(None, None, col, f"column missing; have {list(values.columns)}")
        v, s = values[value_col].to_numpy(dtype=float), values[seed_col].to_numpy()
    else:
        if seed_ids is None:
            raise DataError(None, None, seed_col, "seed ids are required when values is not a DataFrame")
        v, s = np.asarray(values, dtype=float), np.asarray(seed_ids)
    if v.ndim != 1 or s.shape != v.shape:
        raise DataError(None, None, seed_col,
                        f"values and seed ids must be 1-D and of equal length, got {v.shape} and {s.shape}")
    if v.size == 0:
        raise DataError(None, None, value_col, "no values")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise DataError(None, int(bad[0]), value_col, f"value is not finite ({v[bad[0]]})")
    return v, s


def _pad_by_seed(codes: np.ndarray, n_seeds: int, *arms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-seed counts and, per arm, a zero-padded [n_seeds, max_examples] matrix (rows in input order)."""
    counts = np.bincount(codes, minlength=n_seeds)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(codes.size) - starts[sorted_codes]
    mats = []
    for a in arms:
        m = np.zeros((n_seeds, counts.max()))
        m[sorted_codes, pos] = a[order]
        mats.append(m)
    return counts, mats


def _reduce(vals: np.ndarray, valid: np.ndarray, n_sel: np.ndarray, statistic: Statistic) -> np.ndarray:
    """Statistic of resampled [..., seeds, examples] values: mean of seed means, or the pooled example mean."""
    sums = np.where(valid, vals, 0.0).sum(axis=-1)
    if statistic == "mean":
        return (sums / n_sel).mean(axis=-1)
    if statistic == "pooled_mean":
        return sums.sum(axis=-1) / n_sel.sum(axis=-1)
    raise ValueError(f"statistic must be 'mean' or 'pooled_mean', got {statistic!r}")


def _hier_resample(counts: np.ndarray, mats: list[np.ndarray], statistic: Statistic, n_resamples: int,
                   seed: int) -> list[np.ndarray]:
    """Bootstrap distribution of the statistic per arm, resampling the SAME seeds and examples in every arm."""
    rng = np.random.default_rng(seed)
    n_seeds, m = mats[0].shape
    out = [np.empty(n_resamples) for _ in mats]
    step = max(1, _CHUNK_ELEMENTS // (n_seeds * m))
    for i in range(0, n_resamples, step):  # loop over chunks of resamples only
        b = min(step, n_resamples - i)
        s_idx = rng.integers(0, n_seeds, size=(b, n_seeds))  # seeds, with replacement
        n_sel = counts[s_idx]  # [b, S]
        ex_idx = (rng.random((b, n_seeds, m)) * n_sel[..., None]).astype(np.int64)  # examples within each seed
        valid = np.arange(m) < n_sel[..., None]
        for arm, mat in enumerate(mats):
            out[arm][i:i + b] = _reduce(mat[s_idx[..., None], ex_idx], valid, n_sel, statistic)
    return out


def _point(codes: np.ndarray, n_seeds: int, v: np.ndarray, statistic: Statistic) -> float:
    """Statistic on the original data."""
    counts = np.bincount(codes, minlength=n_seeds)
    if statistic == "mean":
        return float((np.bincount(codes, weights=v, minlength=n_seeds) / counts).mean())
    if statistic == "pooled_mean":
        return float(v.mean())
    raise ValueError(f"statistic must be 'mean' or 'pooled_mean', got {statistic!r}")


def _result(estimate: float, boot: np.ndarray, ci: float, n_resamples: int, n_seeds: int, n_ex: int,
            method: str) -> BootstrapResult:
    lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return BootstrapResult(estimate=estimate, ci_low=float(lo), ci_high=float(hi), se=float(boot.std(ddof=1)),
                           ci=ci, n_resamples=n_resamples, n_seeds=n_seeds, n_examples=n_ex, method=method)


def hierarchical_bootstrap(values, seed_ids=None, *, statistic: Statistic = "mean", n_resamples: int = 9999,
                           seed: int = 0, ci: float = 0.95, value_col: str = "value",
                           seed_col: str = "seed") -> BootstrapResult:
    """Two-level bootstrap CI for per-example values nested in seeds: resample seeds, then examples in each seed.

    ``values`` is a DataFrame (``value_col``, ``seed_col``) or an array with ``seed_ids`` alongside.
    ``statistic='mean'`` weights seeds equally (mean of per-seed means); ``'pooled_mean'`` weights examples.
    Returns the percentile interval of the bootstrap distribution.
    """
    v, s = _values_and_seeds(values, seed_ids, value_col, seed_col)
    _, codes = np.unique(s, return_inverse=True)
    n_seeds = int(codes.max()) + 1
    counts, mats = _pad_by_seed(codes, n_seeds, v)
    (boot,) = _hier_resample(counts, mats, statistic, n_resamples, seed)
    return _result(_point(codes, n_seeds, v, statistic), boot, ci, n_resamples, n_seeds, v.size,
                   f"hierarchical bootstrap (seeds, then examples; {statistic})")


def align_arms(method: pd.DataFrame, control: pd.DataFrame, *, seed_col: str = "seed", example_col: str = "example_id",
               value_col: str = "value") -> pd.DataFrame:
    """Join two arms' per-example rows on (seed, example); every pair must exist in both arms exactly once."""
    keys = [seed_col, example_col]
    for name, df in (("method", method), ("control", control)):
        for col in keys + [value_col]:
            if col not in df.columns:
                raise DataError(None, None, col, f"column missing in {name} arm; have {list(df.columns)}")
        dup = df.duplicated(keys)
        if dup.any():
            raise DataError(None, int(np.flatnonzero(dup.to_numpy())[0]), example_col,
                            f"duplicate (seed, example) in {name} arm")
    merged = method[keys + [value_col]].merge(control[keys + [value_col]], on=keys, how="outer",
                                              suffixes=("_method", "_control"), indicator=True)
    lonely = merged["_merge"] != "both"
    if lonely.any():
        r = merged[lonely].iloc[0]
        arm = "control" if r["_merge"] == "left_only" else "method"
        raise DataError(None, None, example_col,
                        f"seed {r[seed_col]!r}, example {r[example_col]!r} is missing in the {arm} arm")
    return merged.drop(columns="_merge").rename(columns={f"{value_col}_method": "method",
                                                         f"{value_col}_control": "control"})


def paired_hierarchical_bootstrap(method, control=None, seed_ids=None, *, statistic: Statistic = "mean",
                                  n_resamples: int = 9999, seed: int = 0, ci: float = 0.95,
                                  method_col: str = "method", control_col: str = "control",
                                  seed_col: str = "seed") -> BootstrapResult:
    """Hierarchical bootstrap CI of statistic(method) - statistic(control) for two arms sharing seeds and examples.

    Rows are aligned (row i is the same seed and example in both arms; see ``align_arms``); each resample
    draws one set of seeds and examples and applies it to both arms. ``method`` may be a DataFrame holding
    ``method_col``, ``control_col`` and ``seed_col``.
    """
    if isinstance(method, pd.DataFrame):
        frame = method
        m, s = _values_and_seeds(frame, None, method_col, seed_col)
        c, _ = _values_and_seeds(frame, None, control_col, seed_col)
    else:
        m, s = _values_and_seeds(method, seed_ids, method_col, seed_col)
        c, _ = _values_and_seeds(control, seed_ids, control_col, seed_col)
        if c.shape != m.shape:
            raise DataError(None, None, control_col, f"arms must be aligned row by row, got {m.size} and {c.size} rows")
    _, codes = np.unique(s, return_inverse=True)
    n_seeds = int(codes.max()) + 1
    counts, mats = _pad_by_seed(codes, n_seeds, m, c)
    bm, bc = _hier_resample(counts, mats, statistic, n_resamples, seed)
    est = _point(codes, n_seeds, m, statistic) - _point(codes, n_seeds, c, statistic)
    return _result(est, bm - bc, ci, n_resamples, n_seeds, m.size,
                   f"paired hierarchical bootstrap (seeds, then examples; {statistic})")
