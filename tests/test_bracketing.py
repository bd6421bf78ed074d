"""Bracketing runs (``tueval.analysis.bracketing``): which controls are re-dosed, and on a real workdir the control
re-dosed at 3x its rate reaches the method's level, with the run id a grid at that rate gives it."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tueval.analysis.bracketing import FACTOR, bracket_trajectories, unbracketed
from tueval.spec import RunSpec


def _traj(rows) -> pd.DataFrame:
    """A trajectories frame from (arm, seed, run_id, step, forget_quality, forget_prob, utility_est) rows."""
    df = pd.DataFrame(rows, columns=["arm", "seed", "run_id", "step", "forget_quality", "forget_prob",
                                     "utility_est"]).assign(objective="ga", method="ga/m")
    df["final"] = df.groupby("run_id")["step"].transform("max").eq(df["step"]) & df["step"].gt(0)
    return df


def test_only_controls_that_miss_a_seed_and_can_be_redosed_are_listed():
    # the method ends at fq 1e-2 on both seeds; uniform reaches it on seed 0 only, random_k on both, and
    # step_matched on neither (but its dose is the method's by construction)
    rows = []
    for s in (0, 1):
        rows += [("method", s, f"m{s}", 0, 1e-6, 0.9, 0.5), ("method", s, f"m{s}", 8, 1e-2, 0.5, 0.4),
                 ("random_k", s, f"r{s}", 0, 1e-6, 0.9, 0.5), ("random_k", s, f"r{s}", 8, 1e-1, 0.3, 0.3),
                 ("step_matched", s, f"s{s}", 0, 1e-6, 0.9, 0.5), ("step_matched", s, f"s{s}", 8, 1e-4, 0.8, 0.45)]
    rows += [("uniform", 0, "u0", 0, 1e-6, 0.9, 0.5), ("uniform", 0, "u0", 8, 1e-1, 0.3, 0.3),
             ("uniform", 1, "u1", 0, 1e-6, 0.9, 0.5), ("uniform", 1, "u1", 8, 1e-3, 0.7, 0.45)]
    got = unbracketed(_traj(rows), estimands=("fq",))
    assert got.to_dict("records") == [{"objective": "ga", "method": "ga/m", "arm": "uniform"}]
    every = _traj([r for r in rows if r[0] != "uniform" or r[1] == 0])
    assert unbracketed(every, estimands=("fq",)).empty


def test_a_control_redosed_at_three_times_its_rate_brackets_the_method(small_workdir):
    """The 'method' is the GA base at lr 3e-4, the control the same base at a third of it, which forgets less and
    does not reach the method's final level; its bracketing run is the control at 3x its rate, which is the method's
    own spec (same run id: cached, not computed again) and so reaches the level."""
    from tueval.analysis.matched_tables import load_trajectories, matched_comparison
    from tueval.stats.matched import NOT_BRACKETED, OK
    from tueval.unlearn import unlearn

    wd = small_workdir
    kw = {"objective": "ga", "scorer": "uniform", "mode": "none", "epochs": 2, "batch_size": 16, "seed": 0,
          "generate": False, "eval_every": 4}
    meth = unlearn(RunSpec(lr=3e-4, **kw), wd, progress=False)
    ctl = unlearn(RunSpec(lr=3e-4 / FACTOR, **kw), wd, progress=False)
    runs = pd.DataFrame([{"objective": "ga", "method": "ga/dose", "arm": a, "seed": 0, "run_id": r.run_id,
                          "lr": r.spec.lr} for a, r in (("method", meth), ("uniform", ctl))])
    traj = load_trajectories(runs, wd)
    fp = json.loads((wd.eval_dir("retain") / "summary.json").read_text())["forget_prob"]
    before = matched_comparison(traj, fp, estimands=("fq",)).diffs
    assert (before["status"] == NOT_BRACKETED).all()
    out, done = bracket_trajectories(traj, wd, fp, rounds=2, estimands=("fq",))
    assert len(done) == 1 and done.iloc[0]["from_run_id"] == ctl.run_id and done.iloc[0]["round"] == 1
    assert done.iloc[0]["run_id"] == meth.run_id and done.iloc[0]["lr"] == pytest.approx(3e-4)
    after = matched_comparison(out, fp, estimands=("fq",)).diffs
    assert (after["status"] == OK).all() and after["n_control_runs"].tolist() == [2]
    assert after["diff"].iloc[0] == pytest.approx(0.0, abs=1e-12)  # the control's new run is the method itself
    # nothing left to bracket: a second round adds nothing; no rounds: the trajectories as they were
    assert len(out) == len(traj) + len(traj[traj["run_id"] == meth.run_id])
    same, none = bracket_trajectories(traj, wd, fp, rounds=0, estimands=("fq",))
    assert same.equals(traj) and none.empty


def test_bracket_rounds_is_a_grid_key_and_four_rounds_in_the_default_profile(tmp_path):
    from tueval.analysis.controls_grid import grid_settings
    from tueval.analysis.registry import AnalysisConfig
    from tueval.config.grid import parse_grid
    from tueval.errors import SpecError

    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="default"))["bracket_rounds"] == 4
    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="quick"))["bracket_rounds"] == 0
    g = parse_grid({"objectives": ["ga"], "bracket_rounds": 2}, "grid.yaml")
    assert g.analysis_extra()["bracket_rounds"] == 2
    with pytest.raises(SpecError, match="bracket_rounds"):
        parse_grid({"objectives": ["ga"], "bracket_rounds": -1}, "grid.yaml")


def test_the_rate_search_goes_up_while_the_largest_rate_reaches_furthest_and_bisects_otherwise():
    from tueval.analysis.bracketing import _next_rate

    # (rate, furthest reach, turned back)
    assert _next_rate([(1.0, -3.0, False), (3.0, -2.0, True)], FACTOR) == pytest.approx(9.0)
    # GA's base: 1x still rising at its end reaches furthest, 3x and 9x collapsed early: between 1x and 3x
    assert _next_rate([(3.0, -1.8, True), (1.0, -1.66, False), (9.0, -2.1, True)], FACTOR) == pytest.approx(3 ** 0.5)
    # the best run turned back: between it and the next smaller rate, or a factor below the smallest
    assert _next_rate([(1.0, -1.9, False), (3.0, -1.4, True), (9.0, -2.1, True)], FACTOR) == pytest.approx(3 ** 0.5)
    assert _next_rate([(1.0, -1.1, True), (3.0, -1.7, True)], FACTOR) == pytest.approx(1 / 3)
    # a tie in reach: the smaller rate is the best (less dose), here still rising, so between it and the next
    assert _next_rate([(1.0, -1.5, False), (3.0, -1.5, True)], FACTOR) == pytest.approx(3 ** 0.5)


def test_next_rates_per_seed_short_of_the_level_and_none_below_the_start():
    """Seed 0: the method (log10 fq -1) is beyond both control runs; the best (lr 1, -2) rose to its end, the one at
    lr 3 peaked at -3 and collapsed: one new rate, between 1 and 3. Seed 1: the method ended below the target
    model's level (fq 1e-8 < 1e-7): no rate forgets less than none, so no proposal, although that seed is not
    bracketed."""
    from tueval.analysis.bracketing import next_rates, run_reach

    rows = []
    for s in (0, 1):
        mq = 1e-1 if s == 0 else 1e-8
        rows += [("method", s, f"m{s}", 0, 1e-7, 0.9, 0.5), ("method", s, f"m{s}", 8, 1e-3, 0.5, 0.4),
                 ("method", s, f"m{s}", 16, mq, 0.3, 0.3),
                 ("uniform", s, f"a{s}", 0, 1e-7, 0.9, 0.5), ("uniform", s, f"a{s}", 8, 1e-4, 0.6, 0.4),
                 ("uniform", s, f"a{s}", 16, 1e-2, 0.4, 0.3),
                 ("uniform", s, f"b{s}", 0, 1e-7, 0.9, 0.5), ("uniform", s, f"b{s}", 8, 1e-3, 0.3, 0.3),
                 ("uniform", s, f"b{s}", 16, 1e-5, 0.2, 0.1)]
    traj = _traj(rows)
    reach = run_reach(traj, "fq").set_index("run_id")
    assert reach.loc["a0", "reach"] == pytest.approx(-2.0) and not reach.loc["a0", "turned_back"]
    assert reach.loc["b0", "reach"] == pytest.approx(-3.0) and reach.loc["b0", "turned_back"]
    lrs = pd.Series({f"{k}{s}": lr for s in (0, 1) for k, lr in (("m", 1.0), ("a", 1.0), ("b", 3.0))})
    pairs = unbracketed(traj, estimands=("fq",))
    assert pairs.to_dict("records") == [{"objective": "ga", "method": "ga/m", "arm": "uniform"}]
    got = next_rates(traj, pairs, lrs, estimands=("fq",))
    assert got["lr"].tolist() == pytest.approx([3 ** 0.5]) and got["arm"].tolist() == ["uniform"]
    assert next_rates(traj[traj["seed"] == 1], pairs, lrs, estimands=("fq",)).empty
    # the first round also widens: factor times the largest rate, beside the search's rate
    wide = next_rates(traj, pairs, lrs, estimands=("fq",), widen=True)
    assert wide["lr"].tolist() == pytest.approx([3 ** 0.5, 3 * FACTOR])


def test_reach_on_the_forget_probability_is_minus_the_closest_distance_to_the_retain_model():
    """Retain forget probability 0.3: a run that crosses it passed through distance 0 (reach 0); one that came to
    0.6 and went back to 0.7 turned back at reach -0.3; one still falling at its end (0.6) has not turned back."""
    from tueval.analysis.bracketing import run_reach

    rows = [("method", 0, "m", 0, 1e-7, 0.9, 0.5), ("method", 0, "m", 16, 1e-2, 0.35, 0.3)]
    for rid, fps in (("c", (0.5, 0.1)), ("d", (0.6, 0.7)), ("e", (0.8, 0.6))):
        rows += [("uniform", 0, rid, 0, 1e-7, 0.9, 0.5), ("uniform", 0, rid, 8, 1e-4, fps[0], 0.4),
                 ("uniform", 0, rid, 16, 1e-3, fps[1], 0.3)]
    r = run_reach(_traj(rows), "fp", 0.3).set_index("run_id")
    assert r.loc["c", "reach"] == pytest.approx(0.0) and r.loc["c", "final_reach"] == pytest.approx(-0.2)
    assert r.loc["d", "reach"] == pytest.approx(-0.3) and r.loc["d", "turned_back"]
    assert r.loc["e", "reach"] == pytest.approx(-0.3) and not r.loc["e", "turned_back"]
    assert r.loc["m", "final_reach"] == pytest.approx(-0.05)
