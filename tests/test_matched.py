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


# ---- tables on trajectory frames -----------------------------------------------------------------------------------
from tueval.analysis.lr_bracket import (bracket_table, final_levels, geometric_lrs, lr_bracket,  # noqa: E402
                                        trajectory_levels)
from tueval.analysis.matched_tables import (ESTIMANDS, hypervolume_table, load_trajectories,  # noqa: E402
                                            matched_comparison, matched_diffs, matched_verdicts)
from tueval.errors import DataError  # noqa: E402


def _run(arm, seed, fq, u, fp=None, method="ga/m", run_id=None, lr=1e-3):
    n = len(fq)
    rid = run_id or f"{method.replace('/', '_')}-{arm}-{seed}-{lr:g}"
    return pd.DataFrame({"objective": "ga", "method": method, "arm": arm, "seed": seed, "run_id": rid, "lr": lr,
                         "step": np.arange(n) * 10,
                         "final": np.arange(n) == n - 1, "forget_quality": fq,
                         "forget_prob": fp if fp is not None else np.linspace(0.9, 0.2, n), "utility_est": u})


def test_matched_diffs_bound_the_control_between_the_checkpoints_around_the_methods_level():
    t = pd.concat([_run("method", 0, [1e-6, 1e-3, 1e-2], [0.8, 0.7, 0.6]),
                   _run("uniform", 0, [1e-6, 1e-4, 1.0], [0.8, 0.7, 0.3])])
    d = matched_diffs(t, "fq")
    assert len(d) == 1
    r = d.iloc[0]
    assert r["metric"] == ESTIMANDS["fq"][0] and r["control"] == "uniform" and r["status"] == "ok"
    assert r["level"] == pytest.approx(-2.0)
    # the control passes level -2 between its checkpoints at 0.7 and 0.3: the verdict reads the higher end
    assert r["control_value"] == pytest.approx(0.7) and r["diff"] == pytest.approx(-0.1)
    assert r["diff_favourable"] == pytest.approx(0.3) and r["diff_interpolated"] == pytest.approx(0.1)
    assert not r["method_failed"] and not r["control_failed"]


def test_forget_probability_estimand_is_the_distance_to_the_retain_model():
    # retain 0.3; method ends at 0.1 (distance 0.2); the control's distances 0.6, 0.2, 0.1, 0.25
    t = pd.concat([_run("method", 0, [1e-6, 1e-3], [0.8, 0.55], fp=[0.9, 0.1]),
                   _run("uniform", 0, [1e-6, 1e-4, 1e-3, 1e-2], [0.8, 0.7, 0.5, 0.2], fp=[0.9, 0.5, 0.2, 0.05])])
    d = matched_diffs(t, "fp", retain_forget_prob=0.3).iloc[0]
    assert d["control_value"] == pytest.approx(0.7)  # raw forget probability would cross at 0.1, between 0.5, 0.2
    assert d["diff"] == pytest.approx(-0.15)
    with pytest.raises(DataError, match="retain model"):
        matched_diffs(t, "fp")


def test_worse_must_hold_with_the_control_at_the_lower_end_of_its_segment():
    # per seed the control passes the method's level (-2) between checkpoints at utility 0.7 and 0.3; the method
    # keeps 0.5 (+- noise): worse if the control kept 0.7, better if it kept 0.3, so neither is shown
    rng = np.random.default_rng(0)
    frames = []
    for s in range(8):
        frames += [_run("method", s, [1e-6, 1e-2], [0.8, 0.5 + rng.normal(0, 0.01)]),
                   _run("uniform", s, [1e-6, 1e-4, 1.0], [0.8, 0.7, 0.3])]
    d = matched_diffs(pd.concat(frames), "fq")
    assert (d["diff"] < -0.15).all() and (d["diff_favourable"] > 0.15).all()
    _, v = matched_verdicts(d)
    assert v["decision"].tolist() == ["not better"] and v["estimate_favourable"].iloc[0] > 0.15


def test_a_control_that_never_reaches_the_methods_level_counts_against_the_method():
    t = pd.concat([_run("method", s, [1e-6, 1e-2], [0.8, 0.6]) for s in range(3)]
                  + [_run("uniform", 0, [1e-6, 1e-1], [0.8, 0.4]),
                     _run("uniform", 1, [1e-6, 1e-1], [0.8, 0.4]),
                     _run("uniform", 2, [1e-6, 1e-3], [0.8, 0.79])])  # seed 2 stops short of 1e-2
    d = matched_diffs(t, "fq").set_index("seed")
    assert list(d["status"]) == ["ok", "ok", "not bracketed"]
    assert d.loc[2, "method_failed"] and np.isnan(d.loc[2, "control_value"])
    # min(0, worst matched difference): no help to the method, in every reading
    assert d.loc[2, "diff"] == pytest.approx(min(0.0, d.loc[[0, 1], "diff"].min())) and d.loc[2, "diff"] < 0
    assert d.loc[2, "diff_interpolated"] == 0.0
    _, v = matched_verdicts(d.reset_index())
    assert int(v["n_not_bracketed"].iloc[0]) == 1 and int(v["n_failed"].iloc[0]) == 1


def test_worse_never_rests_on_seeds_that_were_not_compared():
    # 6 of 7 seeds: the control stops short of the method's level; the one matched seed is slightly worse. The
    # worst-rank fill (against the method) alone would call the method 'worse' on the imputed values.
    frames = [_run("method", s, [1e-6, 1e-2], [0.8, 0.6]) for s in range(7)]
    frames += [_run("uniform", 0, [1e-6, 1e-1], [0.8, 0.4 + 0.2 * 4 / 5 + 0.003])]  # 0.603 at 1e-2
    frames += [_run("uniform", s, [1e-6, 1e-3], [0.8, 0.79]) for s in range(1, 7)]
    d = matched_diffs(pd.concat(frames), "fq")
    assert (d["status"] == "not bracketed").sum() == 6 and d["diff"].max() < 0
    _, v = matched_verdicts(d)
    assert v["decision"].iloc[0] == "not better"
    # a real deficit on every matched seed is still 'worse'
    frames = [_run("method", s, [1e-6, 1e-2], [0.8, 0.6]) for s in range(7)]
    frames += [_run("uniform", s, [1e-6, 1e-1], [0.8, 0.4 + 0.2 * 4 / 5 + 0.05 + 0.002 * s]) for s in range(7)]
    _, v = matched_verdicts(matched_diffs(pd.concat(frames), "fq"))
    assert v["decision"].iloc[0] == "worse"


def test_a_learning_rate_grid_enters_as_the_frontier():
    t = pd.concat([_run("method", 0, [1e-6, 1e-2], [0.8, 0.6]),
                   _run("uniform", 0, [1e-6, 1e-3], [0.8, 0.75], lr=1e-4),  # stops short
                   _run("uniform", 0, [1e-6, 1e-1], [0.8, 0.4], lr=3e-4),   # 0.5 at 1e-2
                   _run("uniform", 0, [1e-6, 1.0], [0.8, 0.2], lr=1e-3)])   # 0.5 at 1e-2 (2/3 of the way)
    d = matched_diffs(t, "fq").iloc[0]
    assert d["n_control_runs"] == 3 and d["status"] == "ok"
    assert d["method_value"] - d["diff_interpolated"] == pytest.approx(max(0.8 - 0.4 * 4 / 5, 0.8 - 0.6 * 4 / 6))
    assert d["control_value"] == pytest.approx(0.8)  # both bracketing runs pass level -2 from the target's 0.8


def _dose_arms(n_seeds=7, method_lr=1 / 3, bonus=0.0, seed=0, checkpoints=6, control_checkpoints=None):
    """Uniform base and a 'method' on one dose curve: forget level and utility are functions of lr x steps, plus
    per-seed noise; the method runs at ``method_lr`` times the base's learning rate, ``bonus`` added to its
    utility at every checkpoint after step 0; ``checkpoints`` after step 0 per run (``control_checkpoints`` for
    the base, if given)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_seeds):
        noise = rng.normal(0, 0.01, 2)  # one per seed: the arms share their seed's data order
        for arm, lr in (("uniform", 1.0), ("method", method_lr)):
            n = control_checkpoints if arm == "uniform" and control_checkpoints else checkpoints
            dose = lr * np.arange(n + 1) / n
            log_fq = -8 + 7 * np.sqrt(dose)
            u = 0.8 - 0.5 * dose ** 2 + noise[0] * (dose > 0)
            u = u + bonus * (dose > 0) * (arm == "method")
            frames.append(_run(arm, s, 10 ** log_fq, u, fp=0.9 - 0.7 * dose, lr=lr))
    return pd.concat(frames, ignore_index=True)


def test_planted_dose_on_synthetic_curves_is_not_better_but_a_real_gain_is():
    t = _dose_arms()
    last = t[t["final"]].groupby("arm")[["forget_quality", "utility_est"]].mean()
    # at one learning rate the low dose looks better on utility and worse on forgetting
    assert last.loc["method", "utility_est"] > last.loc["uniform", "utility_est"] + 0.1
    assert last.loc["method", "forget_quality"] < last.loc["uniform", "forget_quality"] / 10
    res = matched_comparison(t, retain_forget_prob=0.3, estimands=("fq",))
    v = res.verdicts.iloc[0]
    assert v["decision"] != "better" and not v["better_unadjusted"]
    assert max(abs(v[c]) for c in ("estimate", "estimate_favourable", "estimate_interpolated")) < 0.02
    # the bracketing checkpoints bound the control's utility: 24 checkpoints per run bound it tightly enough
    res = matched_comparison(_dose_arms(bonus=0.05, checkpoints=24), retain_forget_prob=0.3, estimands=("fq",))
    v = res.verdicts.iloc[0]
    assert v["decision"] == "better" and v["estimate"] == pytest.approx(0.05, abs=0.015)
    assert v["higher_is_better"]


def test_a_control_curve_concave_between_its_checkpoints_is_read_at_its_upper_end():
    # method and base on the same concave dose curve (no gain), the base checked twice along its run: the chord
    # between its checkpoints lies under its curve, so linear interpolation credits the method with utility it
    # does not have (+0.046); the verdict reads the control at the higher end of its segment
    t = _dose_arms(checkpoints=6, control_checkpoints=2)
    v = matched_comparison(t, retain_forget_prob=0.3, estimands=("fq",)).verdicts.iloc[0]
    assert v["estimate_interpolated"] == pytest.approx(0.046, abs=0.005)
    assert v["decision"] == "not better" and not v["better_unadjusted"] and v["estimate"] < 0


def test_matched_verdicts_form_one_family_per_method_over_estimands_and_controls():
    t = _dose_arms(bonus=0.05)
    extra = t[t["arm"] == "uniform"].assign(arm="step_matched", run_id=lambda f: f["run_id"] + "-sm")
    res = matched_comparison(pd.concat([t, extra]), retain_forget_prob=0.1)
    v = res.verdicts
    assert set(v["metric"]) == {"utility_at_matched_fq", "utility_at_matched_fp"}
    assert set(v["control"]) == {"uniform", "step_matched"}
    assert (v["family_size"] == 4).all() and v["family"].nunique() == 1
    assert (v["p_adjusted"] >= v["p_value"]).all()


def test_hypervolume_table_against_the_target_point():
    t = pd.concat([_run("method", 0, [1e-4, 1e-2, 1e-1], [0.8, 0.5, 0.2]),
                   _run("uniform", 0, [1e-4, 1e-3], [0.8, 0.6])])
    hv = hypervolume_table(t, "fq").set_index("arm")
    assert (hv["target_level"] == -4.0).all()
    # staircase over the reference (-4, 0): points (-2, 0.5), (-1, 0.2): 2 * 0.5 + 1 * 0.2
    assert hv.loc["method", "value"] == pytest.approx(1.2)
    assert hv.loc["uniform", "value"] == pytest.approx(1.0 * 0.6)
    bad = t.assign(forget_quality=np.where(t["step"] == 0, [1e-4, 1e-4, 1e-4, 1e-5, 1e-5], t["forget_quality"]))
    with pytest.raises(DataError, match="step-0"):
        hypervolume_table(bad, "fq")


def test_lr_bracket_reaches_down_to_the_weakest_method():
    base = pd.DataFrame({"lr": [1e-5, 3e-5, 1e-4, 3e-4], "level": [0.85, 0.6, 0.3, 0.05]})
    b = lr_bracket(base, [0.7, 0.4])  # weakest method at 0.7, strongest at 0.4 (forget probability)
    assert b.bracketed and b.low == 1e-5 and b.high == 1e-4 and b.lrs == (1e-5, 3e-5, 1e-4) and b.add == ()
    b = lr_bracket(base.iloc[2:], [0.7, 0.4])  # a grid that starts at the collapse side
    assert not b.bracketed and b.low is None and b.high == 1e-4
    assert b.add == (pytest.approx(1e-4 / 3),)
    b = lr_bracket(base.iloc[:2], [0.7, 0.4])
    assert b.high is None and b.add == (pytest.approx(9e-5),)
    np.testing.assert_allclose(geometric_lrs(1e-4, 3.0, 2, 1), [1e-4 / 9, 1e-4 / 3, 1e-4, 3e-4])


def test_bracket_reads_the_range_each_trajectory_passes_through():
    # one base rate whose runs start at the target (0.9) and end at 0.2: a final level alone says it never gets
    # down to a weak method at 0.7, but its trajectory passes through 0.7 on the way
    rows = [{"objective": "ga", "arm": "uniform", "method": "ga/m", "lr": 1e-4, "run_id": f"u{s}", "step": st,
             "forget_prob": lv} for s in range(2) for st, lv in ((0, 0.9), (5, 0.5), (10, 0.2))]
    rows += [{"objective": "ga", "arm": "method", "method": f"ga/m{j}", "lr": 1e-4, "run_id": f"m{j}", "step": 10,
              "forget_prob": lv} for j, lv in enumerate((0.7, 0.4))]
    traj = pd.DataFrame(rows)
    lv = trajectory_levels(traj[traj["arm"] == "uniform"]).set_index("lr")
    assert lv.loc[1e-4, "least"] == pytest.approx(0.9) and lv.loc[1e-4, "most"] == pytest.approx(0.2)
    br = bracket_table(traj)
    assert br["bracketed"].tolist() == [True] and br["add"].tolist() == [[]]
    assert not lr_bracket(final_levels(traj[traj["arm"] == "uniform"], keys=("lr",)), [0.7, 0.4]).bracketed
    stronger = traj.assign(forget_prob=np.where(traj["run_id"] == "m1", 0.1, traj["forget_prob"]))
    assert bracket_table(stronger)["add"].tolist() == [[pytest.approx(3e-4)]]  # the strongest is out of reach


def test_final_levels_and_loader_read_each_run_once(tmp_path):
    t = _dose_arms(n_seeds=2)
    fl = final_levels(t, keys=("arm",)).set_index("arm")["level"]
    assert fl["uniform"] == pytest.approx(0.2) and fl["method"] == pytest.approx(0.9 - 0.7 / 3)
    calls = []

    def load(run_dir, wd):
        calls.append(run_dir.name)
        return t[t["run_id"] == run_dir.name].drop(columns=["objective", "method", "arm", "seed", "run_id", "lr"])

    class WD:
        root = tmp_path

    runs = t.drop_duplicates("run_id")[["objective", "method", "arm", "seed", "run_id", "lr"]]
    runs = pd.concat([runs, runs.assign(method="ga/other")])  # the shared base appears under two methods
    traj = load_trajectories(runs, WD(), load)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == t["run_id"].nunique()
    assert len(traj) == 2 * len(t)
    d = matched_diffs(traj, "fq")
    assert set(d["method"]) == {"ga/m", "ga/other"}


def test_bracket_table_frontier_runs_and_comparisons():
    from tueval.analysis.lr_bracket import bracket_table
    from tueval.analysis.matched_tables import frontier_runs, matched_comparisons

    t = pd.concat([_dose_arms(n_seeds=2), _dose_arms(n_seeds=2, method_lr=3.0).query("arm == 'uniform'")
                   .assign(lr=3.0, run_id=lambda f: f["run_id"] + "-hi")])
    b = bracket_table(t).iloc[0]
    # forget probability: the base's trajectories run from the target's 0.9 to 0.2 at lr 1 (and past it at lr 3);
    # the method (lr 1/3) ends at 0.667, inside the range of lr 1 alone
    assert b["objective"] == "ga" and b["low"] == 1.0 and b["high"] == 1.0 and b["bracketed"]
    assert b["add"] == [] and b["lrs"] == [1.0]
    runs = pd.DataFrame({"arm": ["method", "uniform", "method", "uniform", "random_k"],
                         "role": ["confirmatory", "confirmatory", "sweep", "sweep", "sweep"]})
    assert list(frontier_runs(runs)["arm"]) == ["method", "uniform", "uniform"]
    cs = matched_comparisons(matched_diffs(_dose_arms(bonus=0.05, checkpoints=24), "fq"))
    assert len(cs) == 1 and cs[0].higher_is_better and cs[0].metric == "utility_at_matched_fq"
    assert cs[0].result.estimate == pytest.approx(0.05, abs=0.015)


def test_a_control_that_crosses_the_retain_level_brackets_every_distance_below_its_ends():
    # forget probability of the control 0.9 -> 0.40 -> 0.15 against the retain model's 0.24: distances 0.66, 0.16,
    # 0.09 at the checkpoints, but between the last two the run passes through 0.24 and every distance below 0.09
    rows = [{"objective": "ga", "method": "ga/m", "arm": "uniform", "seed": 0, "run_id": "u", "step": st,
             "forget_prob": fp, "utility_est": u} for st, fp, u in ((0, 0.9, 0.8), (5, 0.40, 0.6), (10, 0.15, 0.2))]
    rows += [{"objective": "ga", "method": "ga/m", "arm": "method", "seed": 0, "run_id": "m", "step": st,
              "forget_prob": fp, "utility_est": u} for st, fp, u in ((0, 0.9, 0.8), (10, 0.26, 0.55))]
    d = matched_diffs(pd.DataFrame(rows), "fp", retain_forget_prob=0.24)
    assert d["status"].tolist() == ["ok"]
    # the first crossing of distance 0.02 is at forget probability 0.26, t = 0.14 / 0.25 of the way: utility 0.488
    assert d["diff_interpolated"].iloc[0] == pytest.approx(0.55 - (0.6 + 0.14 / 0.25 * (0.2 - 0.6)))
    # read at the higher end of the segment the run crossed the retain level on (0.6), and at the lower (0.2)
    assert d["diff"].iloc[0] == pytest.approx(0.55 - 0.6) and d["diff_favourable"].iloc[0] == pytest.approx(0.35)
    from tueval.stats.matched import split_at_crossings

    g, y = split_at_crossings(np.array([[0.66, 0.16, -0.09, np.nan]]), np.array([[0.8, 0.6, 0.2, np.nan]]))
    np.testing.assert_allclose(g, [[0.66, 0.41, 0.16, 0.0, -0.09, np.nan, np.nan]])
    np.testing.assert_allclose(y[0, :5], [0.8, 0.7, 0.6, 0.6 - 0.4 * 0.64, 0.2])
