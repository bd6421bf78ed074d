"""Forget-utility curves compared at matched forgetting: the utility of an arm's trajectory at a given forget level,
per-seed paired differences method - control at the method's final forget level, and the dominated area
(hypervolume) of a curve against a reference point.

A curve is the checkpoints of one run in step order: forget level ``x`` (e.g. log10 forget quality, or the
distance of the forget probability to the retain model's) and utility ``y``, as arrays ``[..., n]`` padded with
NaN. The utility at level L is linearly interpolated in ``x`` on a segment between two consecutive finite
checkpoints whose levels bracket L.

Non-monotone curves (forget quality rises, then falls again when the run overshoots the retain model) may cross L
more than once. ``rule="first"`` takes the first crossing along the run: the least dose at which the arm reaches
L, which is what a practitioner stopping at L would keep. ``rule="best"`` takes the highest utility over every
crossing (the upper envelope of the curve at L: the most favourable reading for that arm, conservative when it is
the control's). A segment with a non-finite end (a diverged checkpoint) is never used.

A curve that never reaches L is *not bracketed*: its value is NaN and ``bracketed`` is False. In a paired
comparison a seed whose control is not bracketed at the method's level counts against the method's claim (its
difference takes the worst-rank value, ``fill_failed``), never a silent drop."""
from __future__ import annotations

from typing import Literal

import numpy as np

Rule = Literal["first", "best"]
RULES = ("first", "best")
Interp = Literal["linear", "upper", "lower"]
INTERPS = ("linear", "upper", "lower")
#: the smallest forget quality (KS p-value) kept before log10, so a p-value of 0 stays finite
FQ_FLOOR = 1e-300
#: per-seed status of a matched difference
OK, NOT_BRACKETED, METHOD_FAILED, CONTROL_FAILED = "ok", "not bracketed", "method failed", "control failed"


def log10_fq(forget_quality) -> np.ndarray:
    """log10 of the forget quality (KS p), floored at ``FQ_FLOOR``; NaN stays NaN."""
    fq = np.asarray(forget_quality, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.log10(np.where(np.isnan(fq), np.nan, np.maximum(fq, FQ_FLOOR)))


def retain_distance(forget_prob, retain_forget_prob: float) -> np.ndarray:
    """|forget probability - the retain model's|: over-forgetting is as far from the retain model as
    under-forgetting."""
    return np.abs(np.asarray(forget_prob, dtype=float) - float(retain_forget_prob))


def segment_utility(y0, y1, t, interp: Interp = "linear") -> np.ndarray:
    """Utility a fraction ``t`` along segments from ``y0`` to ``y1``: linearly interpolated, or, knowing only that
    it lies between the ends, the higher (``upper``) or lower (``lower``) end."""
    if interp not in INTERPS:
        raise ValueError(f"interp must be one of {INTERPS}, got {interp!r}")
    if interp == "linear":
        return y0 + t * (y1 - y0)
    return np.maximum(y0, y1) if interp == "upper" else np.minimum(y0, y1)


def split_at_crossings(gap, y, interp: Interp = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Curves of a signed gap ``[..., n]`` (e.g. forget probability - the retain model's) and utility, with one
    point inserted on every segment ``[..., 2n - 1]``: where the gap changes sign, the crossing (gap 0, utility
    interpolated), elsewhere the segment's midpoint. The curves are the same piecewise-linear paths, and |gap| of
    the result is piecewise linear along them, so a distance between 0 and the ends of a segment that crosses the
    retain model's level is bracketed, as the run passed through it."""
    g, y = np.asarray(gap, dtype=float), np.asarray(y, dtype=float)
    if g.shape != y.shape:
        raise ValueError(f"gap and y must have the same shape, got {g.shape} and {y.shape}")
    g0, g1, y0, y1 = g[..., :-1], g[..., 1:], y[..., :-1], y[..., 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = g0 * g1 < 0
        t = np.where(cross, g0 / np.where(cross, g0 - g1, 1.0), 0.5)
    shape = (*g.shape[:-1], max(2 * g.shape[-1] - 1, 0))
    G, Y = np.full(shape, np.nan), np.full(shape, np.nan)
    G[..., ::2], Y[..., ::2] = g, y
    # the inserted point's utility is the segment's under ``interp``, so a bound stays the whole segment's
    G[..., 1::2], Y[..., 1::2] = g0 + t * (g1 - g0), segment_utility(y0, y1, t, interp)
    return G, Y


def utility_at_level(x, y, level, rule: Rule = "first", interp: Interp = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Utility of each curve ``(x, y)`` ``[..., n]`` at forget ``level`` ``[...]`` (broadcast), and whether the
    curve brackets the level (see module doc for ``rule`` and ``interp``); NaN where it does not."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    level = np.asarray(level, dtype=float)[..., None]
    x0, x1, y0, y1 = x[..., :-1], x[..., 1:], y[..., :-1], y[..., 1:]
    valid = np.isfinite(x0) & np.isfinite(x1) & np.isfinite(y0) & np.isfinite(y1) & np.isfinite(level)
    with np.errstate(invalid="ignore"):
        hit = valid & (np.minimum(x0, x1) <= level) & (level <= np.maximum(x0, x1))
        dx = x1 - x0
        t = np.where(dx != 0, (level - x0) / np.where(dx != 0, dx, 1.0), 0.0)
    # at a checkpoint its utility is known
    inside = np.where(level == x0, y0, np.where(level == x1, y1, segment_utility(y0, y1, t, interp)))
    at = np.where(hit, inside, np.nan)
    bracketed = hit.any(axis=-1)
    if at.shape[-1] == 0:
        return np.full(bracketed.shape, np.nan), bracketed
    if rule == "first":
        value = np.take_along_axis(at, np.argmax(hit, axis=-1)[..., None], axis=-1)[..., 0]
    else:
        value = np.max(np.where(hit, at, -np.inf), axis=-1)
    return np.where(bracketed, value, np.nan), bracketed


def final_point(x, y) -> tuple[np.ndarray, np.ndarray]:
    """The last checkpoint of each curve ``[..., n]`` (the last index where ``x`` or ``y`` is not NaN padding),
    as (level, utility); a run whose last checkpoint diverged gives non-finite values (a failed run)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    present = ~(np.isnan(x) & np.isnan(y))
    n = x.shape[-1]
    last = n - 1 - np.argmax(present[..., ::-1], axis=-1)
    take = lambda a: np.take_along_axis(a, last[..., None], axis=-1)[..., 0]  # noqa: E731
    has = present.any(axis=-1)
    return np.where(has, take(x), np.nan), np.where(has, take(y), np.nan)


def frontier_at_level(x, y, level, rule: Rule = "first", interp: Interp = "linear"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Utility of an arm with several runs per seed (e.g. a learning-rate grid) at ``level`` ``[S]``: curves
    ``[S, R, n]``, the best utility over the runs that bracket the level (the arm's frontier), and whether any
    run does."""
    v, b = utility_at_level(x, y, np.asarray(level, dtype=float)[..., None], rule, interp)
    value = np.max(np.where(b, v, -np.inf), axis=-1)
    has = b.any(axis=-1)
    return np.where(has, value, np.nan), has


def matched_differences(method_level, method_utility, control_x, control_y, rule: Rule = "first",
                        interp: Interp = "linear") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-seed utility differences method - control at the method's final forget level ``[S]``; control curves
    ``[S, n]`` (one run per seed) or ``[S, R, n]`` (a grid: its frontier). Returns (diff, control utility at the
    level, status): ``OK``, ``NOT_BRACKETED`` (the control never reaches the level), ``METHOD_FAILED`` (the
    method's final level or utility is not finite) or ``CONTROL_FAILED`` (no finite checkpoint); diff is NaN
    unless OK (``fill_failed`` gives the worst-rank values)."""
    lvl = np.asarray(method_level, dtype=float)
    mu = np.asarray(method_utility, dtype=float)
    cx, cy = np.asarray(control_x, dtype=float), np.asarray(control_y, dtype=float)
    if cx.ndim == lvl.ndim + 1:
        cu, b = utility_at_level(cx, cy, lvl, rule, interp)
        alive = (np.isfinite(cx) & np.isfinite(cy)).any(axis=-1)
    else:
        cu, b = frontier_at_level(cx, cy, lvl, rule, interp)
        alive = (np.isfinite(cx) & np.isfinite(cy)).any(axis=(-1, -2))
    m_ok = np.isfinite(lvl) & np.isfinite(mu)
    status = np.where(~m_ok, METHOD_FAILED, np.where(~alive, CONTROL_FAILED, np.where(b, OK, NOT_BRACKETED)))
    diff = np.where(status == OK, mu - cu, np.nan)
    return diff, cu, status.astype(object)


def fill_failed(diff, status) -> np.ndarray:
    """Worst-rank values for the seeds that are not OK: a failed method or a control that does not bracket the
    method's level takes min(0, worst OK difference) (against the method's claim); a failed control takes
    max(0, best OK difference) (against the control). With no OK seed the fill is 0."""
    d = np.asarray(diff, dtype=float).copy()
    s = np.asarray(status, dtype=object)
    ok = (s == OK) & np.isfinite(d)
    lo = min(0.0, float(d[ok].min())) if ok.any() else 0.0
    hi = max(0.0, float(d[ok].max())) if ok.any() else 0.0
    d[(s == METHOD_FAILED) | (s == NOT_BRACKETED)] = lo
    d[s == CONTROL_FAILED] = hi
    return d


def hypervolume(x, y, ref_x, ref_y) -> np.ndarray:
    """Area dominated by the points ``(x, y)`` ``[..., n]`` (both maximised) and bounded by the reference point
    ``(ref_x, ref_y)`` (broadcast over ``[...]``); points that do not dominate it, and NaN padding, add nothing.
    For a lower-is-better forget level pass its negation (and the negated reference)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rx = np.asarray(ref_x, dtype=float)[..., None]
    ry = np.asarray(ref_y, dtype=float)[..., None]
    keep = np.isfinite(x) & np.isfinite(y) & (x > rx) & (y > ry)
    xs, ys = np.where(keep, x, rx), np.where(keep, y, ry)
    order = np.argsort(-xs, axis=-1, kind="stable")
    xs, ys = np.take_along_axis(xs, order, -1), np.take_along_axis(ys, order, -1)
    height = np.maximum.accumulate(ys, axis=-1) - ry
    nxt = np.concatenate([xs[..., 1:], np.broadcast_to(rx, xs[..., :1].shape)], axis=-1)
    return np.sum((xs - nxt) * height, axis=-1)
