"""rliable-style aggregates over (runs x tasks) score matrices: IQM, mean, median, optimality gap, P(X > Y),
with stratified-bootstrap CIs (runs resampled within each task)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import scipy.stats

from tueval.errors import DataError

try:  # rliable.metrics is pure numpy/scipy; rliable.library needs `arch`, which fails to import with pandas 3 (arch 7.2)
    from rliable import metrics as _rly
except Exception:  # pragma: no cover - exercised only where rliable is missing or broken
    _rly = None

_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class IntervalEstimate:
    """An aggregate with its stratified-bootstrap percentile CI."""

    estimate: float
    ci_low: float
    ci_high: float
    ci: float
    reps: int
    statistic: str
    method: str = "stratified bootstrap (percentile)"

    def to_dict(self) -> dict:
        """Plain-dict view for JSON/CSV."""
        return asdict(self)


def _scores(x, name: str = "scores") -> np.ndarray:
    """Validated 2-D float matrix (runs x tasks); a 1-D array is one task."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.size == 0:
        raise DataError(None, None, name, f"expected a (runs x tasks) matrix, got shape {a.shape}")
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        raise DataError(None, int(bad[0][0]), name, f"score for task {int(bad[0][1])} is not finite")
    return a


# ---- numpy/scipy versions (vectorised over a leading batch axis; also the fallback when rliable is absent) -----

def _iqm_np(s: np.ndarray) -> np.ndarray:
    """IQM of [..., runs, tasks]: 25% trimmed mean over runs and tasks pooled."""
    return scipy.stats.trim_mean(s.reshape(*s.shape[:-2], -1), 0.25, axis=-1)


def _mean_np(s: np.ndarray) -> np.ndarray:
    """Mean over tasks of the per-task mean."""
    return s.mean(axis=-2).mean(axis=-1)


def _median_np(s: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean."""
    return np.median(s.mean(axis=-2), axis=-1)


def _optimality_gap_np(s: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """gamma - mean(min(score, gamma)) over runs and tasks."""
    return gamma - np.minimum(s, gamma).mean(axis=(-2, -1))


def _poi_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of [..., runs_x, tasks] vs [..., runs_y, tasks]: Mann-Whitney U/(n_x n_y), ties 1/2, task mean."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (gt + 0.5 * eq).mean(axis=-1)


_VECTORISED: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iqm": _iqm_np, "mean": _mean_np, "median": _median_np, "optimality_gap": _optimality_gap_np,
}


# ---- public point estimates -------------------------------------------------------------------------------------

def iqm(scores) -> float:
    """Interquartile mean (25% trimmed mean) over all runs x tasks, as rliable's aggregate_iqm."""
    s = _scores(scores)
    return float(_rly.aggregate_iqm(s)) if _rly is not None else float(_iqm_np(s))


def aggregate_mean(scores) -> float:
    """Mean over tasks of per-task mean scores (rliable aggregate_mean)."""
    s = _scores(scores)
    return float(_rly.aggregate_mean(s)) if _rly is not None else float(_mean_np(s))


def aggregate_median(scores) -> float:
    """Median over tasks of per-task mean scores (rliable aggregate_median)."""
    s = _scores(scores)
    return float(_rly.aggregate_median(s)) if _rly is not None else float(_median_np(s))


def optimality_gap(scores, gamma: float = 1.0) -> float:
    """Optimality gap gamma - mean(min(score, gamma)) (rliable aggregate_optimality_gap)."""
    s = _scores(scores)
    return float(_rly.aggregate_optimality_gap(s, gamma)) if _rly is not None else float(_optimality_gap_np(s, gamma))


def probability_of_improvement(scores_x, scores_y) -> float:
    """P(X > Y): per task Mann-Whitney U / (n_x n_y) with ties counted 1/2, averaged over tasks (rliable)."""
    x, y = _scores(scores_x, "scores_x"), _scores(scores_y, "scores_y")
    if x.shape[1] != y.shape[1]:
        raise DataError(None, None, "scores_y", f"task counts differ: {x.shape[1]} vs {y.shape[1]}")
    if _rly is not None:
        return float(_rly.probability_of_improvement(x, y))
    return float(_poi_np(x, y))


# ---- stratified bootstrap ---------------------------------------------------------------------------------------

def _resample_idx(rng: np.random.Generator, b: int, runs: int, tasks: int,
                  task_bootstrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Run indices [b, runs, tasks] drawn within each task, and task indices [b, 1, tasks]."""
    run_idx = rng.integers(0, runs, size=(b, runs, tasks))
    task_idx = (rng.integers(0, tasks, size=(b, 1, tasks)) if task_bootstrap
                else np.broadcast_to(np.arange(tasks), (b, 1, tasks)))
    return run_idx, task_idx


def _interval(estimate: float, boot: np.ndarray, ci: float, reps: int, name: str) -> IntervalEstimate:
    lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return IntervalEstimate(float(estimate), float(lo), float(hi), ci, reps, name)


def stratified_bootstrap_ci(scores, statistic: str | Callable[[np.ndarray], float] = "iqm", reps: int = 2000,
                            ci: float = 0.95, seed: int = 0, task_bootstrap: bool = False) -> IntervalEstimate:
    """Aggregate of a (runs x tasks) matrix with a stratified-bootstrap percentile CI (rliable's default interval).

    ``statistic`` is 'iqm', 'mean', 'median', 'optimality_gap' (vectorised) or a callable on a runs x tasks matrix.
    """
    s = _scores(scores)
    runs, tasks = s.shape
    rng = np.random.default_rng(seed)
    name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "custom")
    if isinstance(statistic, str):
        if statistic not in _VECTORISED:
            raise ValueError(f"statistic must be one of {tuple(_VECTORISED)} or a callable, got {statistic!r}")
        fn = _VECTORISED[statistic]
        estimate = float(fn(s))
    else:
        fn = None
        estimate = float(statistic(s))
    boot = np.empty(reps)
    step = max(1, _CHUNK_ELEMENTS // s.size)
    for i in range(0, reps, step):
        b = min(step, reps - i)
        run_idx, task_idx = _resample_idx(rng, b, runs, tasks, task_bootstrap)
        res = s[run_idx, task_idx]  # [b, runs, tasks]
        boot[i:i + b] = fn(res) if fn is not None else [statistic(r) for r in res]
    return _interval(estimate, boot, ci, reps, name)


def probability_of_improvement_ci(scores_x, scores_y, reps: int = 2000, ci: float = 0.95,
                                  seed: int = 0) -> IntervalEstimate:
    """P(X > Y) with a stratified-bootstrap CI (runs of X and of Y resampled independently within each task)."""
    x, y = _scores(scores_x, "scores_x"), _scores(scores_y, "scores_y")
    if x.shape[1] != y.shape[1]:
        raise DataError(None, None, "scores_y", f"task counts differ: {x.shape[1]} vs {y.shape[1]}")
    rng = np.random.default_rng(seed)
    boot = np.empty(reps)
    step = max(1, _CHUNK_ELEMENTS // (x.shape[0] * y.shape[0] * x.shape[1]))
    for i in range(0, reps, step):
        b = min(step, reps - i)
        ix, tx = _resample_idx(rng, b, x.shape[0], x.shape[1], False)
        iy, ty = _resample_idx(rng, b, y.shape[0], y.shape[1], False)
        boot[i:i + b] = _poi_np(x[ix, tx], y[iy, ty])
    return _interval(probability_of_improvement(x, y), boot, ci, reps, "probability_of_improvement")
