"""Matched-forgetting comparison: interpolation along a trajectory, the crossing rules, 'not bracketed', paired
differences, worst-rank fills, the frontier over a grid, the hypervolume, and the tables built on them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tueval.stats.matched import (CONTROL_FAILED, METHOD_FAILED, NOT_BRACKETED, OK, fill_failed, final_point,
                                  frontier_at_level, hypervolume, log10_fq, matched_differences, retain_distance,
                                  utility_at_level)

NAN = np.nan


def test_linear_interpolation_on_a_monotone_curve():
    x = [0.0, 1.0, 2.0, 4.0]
    y = [1.0, 0.8, 0.4, 0.0]
    v, b = utility_at_level(x, y, 1.5)
    assert b and v == pytest.approx(0.6)
    v, b = utility_at_level(x, y, 3.0)
    assert v == pytest.approx(0.2)
    v, b = utility_at_level(x, y, 0.0)  # an end point is bracketed
    assert b and v == pytest.approx(1.0)


def test_decreasing_levels_interpolate_too():
    # a forget-probability distance falls along the run
    v, b = utility_at_level([0.6, 0.4, 0.1], [0.9, 0.7, 0.1], 0.25)
    assert b and v == pytest.approx(0.4)


def test_first_crossing_and_upper_envelope_on_a_non_monotone_curve():
    # forget level rises to 3 and falls back (overshoot); level 2 is crossed at step 1-2 and again at 3-4
    x = [0.0, 1.0, 3.0, 2.5, 1.5]
    y = [1.0, 0.9, 0.5, 0.2, 0.1]
    first, _ = utility_at_level(x, y, 2.0, rule="first")
    best, _ = utility_at_level(x, y, 2.0, rule="best")
    assert first == pytest.approx(0.9 - 0.4 * 0.5)
    # the second crossing is at 2.0 on the segment 2.5 -> 1.5: 0.2 + 0.5 * (0.1 - 0.2)
    assert best == pytest.approx(max(0.7, 0.15))
    # make the later crossing the higher one: 'best' must pick it, 'first' must not
    y2 = [1.0, 0.2, 0.1, 0.9, 0.9]
    f2, _ = utility_at_level(x, y2, 2.0, rule="first")
    b2, _ = utility_at_level(x, y2, 2.0, rule="best")
    assert f2 == pytest.approx(0.15) and b2 == pytest.approx(0.9)


def test_a_level_the_curve_never_reaches_is_not_bracketed():
    v, b = utility_at_level([0.0, 1.0, 2.0], [1.0, 0.5, 0.2], 2.5)
    assert not b and np.isnan(v)
    v, b = utility_at_level([0.0, 1.0, 2.0], [1.0, 0.5, 0.2], -0.1)
    assert not b and np.isnan(v)


def test_a_diverged_checkpoint_breaks_its_segments():
    x = [0.0, 1.0, NAN, 3.0]
    y = [1.0, 0.5, NAN, 0.1]
    v, b = utility_at_level(x, y, 2.0)  # only reachable across the NaN checkpoint
    assert not b and np.isnan(v)
    v, b = utility_at_level(x, y, 0.5)
    assert b and v == pytest.approx(0.75)


def test_batched_curves_with_padding_match_one_by_one():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.uniform(0, 1, (6, 5)), axis=1)
    y = 1 - x / x.max()
    x[2, 3:] = NAN
    y[2, 3:] = NAN
    lv = rng.uniform(0, 2, 6)
    v, b = utility_at_level(x, y, lv)
    for i in range(6):
        vi, bi = utility_at_level(x[i], y[i], lv[i])
        assert bi == b[i]
        assert (np.isnan(vi) and np.isnan(v[i])) or vi == pytest.approx(v[i])
    ref = [np.interp(lv[i], x[i][np.isfinite(x[i])], y[i][np.isfinite(y[i])]) for i in range(6)]
    ok = b
    np.testing.assert_allclose(v[ok], np.array(ref)[ok])


def test_final_point_skips_nan_padding_but_keeps_a_diverged_end():
    x = np.array([[0.0, 1.0, 2.0, NAN], [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 2.5]])
    y = np.array([[1.0, 0.8, 0.6, NAN], [1.0, 0.8, 0.6, 0.4], [1.0, 0.8, 0.6, NAN]])
    lx, ly = final_point(x, y)
    np.testing.assert_allclose(lx, [2.0, 3.0, 2.5])
    np.testing.assert_allclose(ly[:2], [0.6, 0.4])
    assert np.isnan(ly[2])  # a diverged last checkpoint is a failed run, not the one before


def test_frontier_takes_the_best_bracketing_run():
    # two runs per seed: a low learning rate that stops short, a high one that passes the level
    x = np.array([[[0.0, 1.0, 1.5], [0.0, 2.0, 4.0]],
                  [[0.0, 1.0, 3.0], [0.0, 2.0, 4.0]]])
    y = np.array([[[1.0, 0.9, 0.85], [1.0, 0.5, 0.1]],
                  [[1.0, 0.9, 0.8], [1.0, 0.5, 0.1]]])
    v, b = frontier_at_level(x, y, [2.0, 2.0])
    assert b.all()
    assert v[0] == pytest.approx(0.5)  # only the high learning rate reaches 2
    assert v[1] == pytest.approx(0.85)  # both do; the low one keeps more utility
    v, b = frontier_at_level(x, y, [5.0, 1.0])
    assert not b[0] and np.isnan(v[0]) and b[1]


def test_matched_differences_status_and_worst_rank_fill():
    cx = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [NAN, NAN, NAN]])
    cy = np.array([[1.0, 0.6, 0.2], [1.0, 0.6, 0.2], [1.0, 0.6, 0.2], [NAN, NAN, NAN]])
    level = np.array([1.5, 3.0, NAN, 1.0])
    mu = np.array([0.5, 0.3, 0.7, 0.6])
    d, cu, st = matched_differences(level, mu, cx, cy)
    assert list(st) == [OK, NOT_BRACKETED, METHOD_FAILED, CONTROL_FAILED]
    assert d[0] == pytest.approx(0.5 - 0.4) and cu[0] == pytest.approx(0.4)
    assert np.isnan(d[1:]).all()
    f = fill_failed(d, st)
    assert f[0] == pytest.approx(0.1)
    assert f[1] == 0.0 and f[2] == 0.0  # min(0, worst ok diff): never in the method's favour
    assert f[3] == pytest.approx(0.1)  # max(0, best ok diff): against the failed control
    # with a negative ok diff the fill against the method is that diff
    f2 = fill_failed(np.array([-0.2, 0.3, NAN]), np.array([OK, OK, NOT_BRACKETED], dtype=object))
    assert f2[2] == pytest.approx(-0.2)


def test_matched_differences_on_a_grid_uses_the_frontier():
    cx = np.array([[[0.0, 1.0, 1.5], [0.0, 2.0, 4.0]]])
    cy = np.array([[[1.0, 0.9, 0.85], [1.0, 0.5, 0.1]]])
    d, cu, st = matched_differences([2.0], [0.7], cx, cy)
    assert st[0] == OK and d[0] == pytest.approx(0.2)


def test_hypervolume_of_a_staircase():
    # rectangles [0,2]x[0,0.5] and [0,1]x[0,1] overlap in [0,1]x[0,0.5]: area 1 + 1 - 0.5
    assert hypervolume([1.0, 2.0], [1.0, 0.5], 0.0, 0.0) == pytest.approx(1.5)
    # a dominated point adds nothing, nor NaN padding, nor a point behind the reference
    assert hypervolume([1.0, 2.0, 0.5, NAN, -1.0], [1.0, 0.5, 0.2, NAN, 2.0], 0.0, 0.0) == pytest.approx(1.5)
    # the reference moves the area
    assert hypervolume([1.0, 2.0], [1.0, 0.5], 0.5, 0.25) == pytest.approx(0.5 * 0.75 + 1.0 * 0.25)
    # batched, with one reference per curve
    hv = hypervolume(np.array([[1.0, 2.0], [3.0, NAN]]), np.array([[1.0, 0.5], [1.0, NAN]]), [0.0, 1.0], 0.0)
    np.testing.assert_allclose(hv, [1.5, 2.0])


def test_hypervolume_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, 12), rng.uniform(0, 1, 12)
    pts = rng.uniform(0, 1, (200_000, 2))
    dom = ((pts[:, None, 0] <= x[None]) & (pts[:, None, 1] <= y[None])).any(axis=1)
    assert hypervolume(x, y, 0.0, 0.0) == pytest.approx(dom.mean(), abs=0.005)


def test_level_transforms():
    np.testing.assert_allclose(log10_fq([1.0, 0.01]), [0.0, -2.0])
    assert np.isfinite(log10_fq(0.0)) and np.isnan(log10_fq(NAN))
    np.testing.assert_allclose(retain_distance([0.1, 0.5], 0.3), [0.2, 0.2])
