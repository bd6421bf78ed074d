"""Refinement runs (``tueval.analysis.refine``): which steps a matched reading needs, the refinement run's rows are
the every-step run's, and a run that does not reproduce is refused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tueval.analysis.refine import (RefinementMismatch, bracket_steps, merge_refinement, next_checkpoint,
                                    refine_trajectories, refinement_spec, refinement_steps)
from tueval.spec import RunSpec


def _traj(rows) -> pd.DataFrame:
    """A trajectories frame from (arm, seed, run_id, step, forget_quality, forget_prob, utility_est) rows; the last
    row of each run is its final one."""
    df = pd.DataFrame(rows, columns=["arm", "seed", "run_id", "step", "forget_quality", "forget_prob",
                                     "utility_est"]).assign(objective="ga", method="ga/m")
    df["final"] = df.groupby("run_id")["step"].transform("max").eq(df["step"]) & df["step"].gt(0)
    df["forget_truth_ratio"] = 0.5
    return df


def test_the_steps_inside_the_segment_the_comparison_reads():
    # the method ends at fq 1e-2; the control passes it between its checkpoints at steps 4 and 8
    t = _traj([("method", 0, "m0", 0, 1e-6, 0.9, 0.5), ("method", 0, "m0", 12, 1e-2, 0.5, 0.4),
               ("uniform", 0, "c0", 0, 1e-6, 0.9, 0.5), ("uniform", 0, "c0", 4, 1e-4, 0.7, 0.45),
               ("uniform", 0, "c0", 8, 1e-1, 0.3, 0.2), ("uniform", 0, "c0", 12, 0.5, 0.1, 0.1)])
    seg = bracket_steps(t, "fq").set_index("run_id")
    assert (seg.loc["c0", "step_low"], seg.loc["c0", "step_high"]) == (4, 8) and seg.loc["c0", "bracketed"]
    assert refinement_steps(t, estimands=("fq",)) == {"c0": (5, 6, 7)}
    # forget probability 0.5, distance 0.2 from the retain model's 0.3: the control's distance 0.4 -> 0.0 between
    # steps 4 and 8 as well (it reaches the retain level at step 8)
    assert refinement_steps(t, 0.3, estimands=("fp",)) == {"c0": (5, 6, 7)}


def test_a_crossing_of_the_retain_level_keeps_the_segments_end_steps():
    # the control's forget probability falls from 0.5 to 0.1 between steps 4 and 8, past the retain model's 0.25:
    # every distance below 0.25 lies on that segment
    t = _traj([("method", 0, "m0", 0, 1e-6, 0.9, 0.5), ("method", 0, "m0", 12, 1e-2, 0.3, 0.4),
               ("uniform", 0, "c0", 0, 1e-6, 0.9, 0.5), ("uniform", 0, "c0", 4, 1e-4, 0.5, 0.45),
               ("uniform", 0, "c0", 8, 1e-1, 0.1, 0.2)])
    seg = bracket_steps(t, "fp", 0.25).set_index("run_id")
    assert (seg.loc["c0", "step_low"], seg.loc["c0", "step_high"]) == (4, 8)


def test_no_refinement_where_the_level_is_a_checkpoint_or_the_segment_one_step():
    t = _traj([("method", 0, "m0", 0, 1e-6, 0.9, 0.5), ("method", 0, "m0", 12, 1e-4, 0.7, 0.4),
               ("uniform", 0, "c0", 0, 1e-6, 0.9, 0.5), ("uniform", 0, "c0", 4, 1e-4, 0.7, 0.45),
               ("uniform", 0, "c0", 5, 1e-1, 0.3, 0.2)])
    assert refinement_steps(t, estimands=("fq",)) == {}


def test_a_refinement_that_ends_elsewhere_is_refused():
    t = _traj([("uniform", 0, "c0", 0, 1e-6, 0.9, 0.5), ("uniform", 0, "c0", 8, 1e-1, 0.3, 0.2)])
    ref = t[t["step"] == 8][["step", "final", "forget_quality", "forget_prob", "forget_truth_ratio",
                             "utility_est"]].copy()
    extra = ref.assign(step=5, final=False, utility_est=0.3)
    ok = merge_refinement(t, "c0", pd.concat([extra, ref], ignore_index=True))
    assert sorted(ok["step"]) == [0, 5, 8] and (ok["arm"] == "uniform").all()
    with pytest.raises(RefinementMismatch, match="not reproducible"):
        merge_refinement(t, "c0", pd.concat([extra, ref.assign(utility_est=0.2 + 1e-6)], ignore_index=True))


def test_a_refinement_stops_at_the_next_checkpoint_and_is_checked_there():
    t = _traj([("uniform", 0, "c0", 0, 1e-6, 0.9, 0.5), ("uniform", 0, "c0", 4, 1e-4, 0.7, 0.45),
               ("uniform", 0, "c0", 8, 1e-1, 0.3, 0.2), ("uniform", 0, "c0", 12, 0.5, 0.1, 0.1)])
    assert next_checkpoint(t, "c0", (5, 6, 7)) == 8 and next_checkpoint(t, "c0", (9, 10)) == 0  # 12 is final
    spec = refinement_spec(RunSpec(seed=1), (5, 6, 7), 8)
    assert spec.eval_steps == (5, 6, 7, 8) and spec.stop_step == 8 and spec.eval_every == 0
    assert refinement_spec(RunSpec(seed=1), (9, 10)).stop_step == 0 and "stop_step" not in RunSpec().hash_dict()
    cols = ["step", "final", "forget_quality", "forget_prob", "forget_truth_ratio", "utility_est"]
    at8 = t[t["step"] == 8][cols].copy()
    inside = pd.concat([at8.assign(step=s, utility_est=0.2 + s / 100) for s in (5, 6, 7)], ignore_index=True)
    ok = merge_refinement(t, "c0", pd.concat([inside, at8], ignore_index=True))
    assert sorted(ok["step"]) == [0, 4, 5, 6, 7, 8, 12]  # the re-checked step 8 is not added twice
    with pytest.raises(RefinementMismatch, match="checkpoint at step 8 differs"):
        merge_refinement(t, "c0", pd.concat([inside, at8.assign(forget_prob=0.3 + 1e-6)], ignore_index=True))
    with pytest.raises(RefinementMismatch, match="no checkpoint at step 9"):
        merge_refinement(t, "c0", pd.concat([inside, at8.assign(step=9)], ignore_index=True))


def test_refinement_rows_are_the_every_step_runs_and_narrow_the_bound(small_workdir):
    """On a real workdir: the control is the GA base checked every 4 steps, the 'method' the base at a third of its
    rate (ends between the control's checkpoints); the refinement run's rows equal the rows of the same run
    checked every step, and the refined reading's bound is no wider."""
    from tueval.analysis.matched_tables import load_trajectories, matched_comparison
    from tueval.trajectory import load_trajectory
    from tueval.unlearn import load_run, unlearn

    wd = small_workdir
    kw = {"objective": "ga", "scorer": "uniform", "mode": "none", "epochs": 3, "batch_size": 16, "seed": 0,
          "generate": False}
    ctl = unlearn(RunSpec(lr=5e-4, eval_every=4, **kw), wd, progress=False)
    meth = unlearn(RunSpec(lr=5e-4 / 3, eval_every=4, **kw), wd, progress=False)
    dense = unlearn(RunSpec(lr=5e-4, eval_every=1, **kw), wd, progress=False)
    runs = pd.DataFrame([{"objective": "ga", "method": "ga/dose", "arm": a, "seed": s, "run_id": r.run_id}
                         for a, r in (("method", meth), ("uniform", ctl)) for s in (0,)])
    traj = load_trajectories(runs, wd)
    fp = json.loads((wd.eval_dir("retain") / "summary.json").read_text())["forget_prob"]
    refined, done = refine_trajectories(traj, wd, fp)
    assert list(done["run_id"]) == [ctl.run_id]
    got = refined[(refined["run_id"] == ctl.run_id) & ~refined["final"].astype(bool)].set_index("step")
    want = load_trajectory(dense.path).set_index("step")
    steps = [int(s) for s in done.iloc[0]["steps"].split(",")]
    assert steps and set(steps) <= set(want.index)
    # it stopped once it had re-checked the control's next checkpoint (or ran to the end where that is final)
    stop = int(done.iloc[0]["stop_step"])
    ref = load_run(wd, done.iloc[0]["refined_by"])
    assert stop == next_checkpoint(traj, ctl.run_id, steps)
    assert ref.spec.stop_step == stop and ref.summary["steps"] == (stop or ctl.summary["steps"])
    cols = ["forget_quality", "forget_prob", "forget_truth_ratio", "utility_est"]
    np.testing.assert_allclose(got.loc[steps, cols].to_numpy(float), want.loc[steps, cols].to_numpy(float),
                               rtol=1e-12)
    width = lambda r: (r.diffs["diff_favourable"] - r.diffs["diff"]).abs().to_numpy()
    before, after = matched_comparison(traj, fp), matched_comparison(refined, fp)
    assert (width(after) <= width(before) + 1e-12).all() and width(after).sum() < width(before).sum()
    again, done2 = refine_trajectories(traj, wd, fp, compute=False)  # the refinement run is cached
    assert done2.equals(done) and len(again) == len(refined)


def test_refine_is_a_grid_key_and_on_in_the_default_profile(tmp_path):
    from tueval.analysis.controls_grid import grid_settings
    from tueval.analysis.registry import AnalysisConfig
    from tueval.config.grid import parse_grid
    from tueval.errors import SpecError

    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="default"))["refine"] is True
    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="quick"))["refine"] is False
    g = parse_grid({"objectives": ["ga"], "refine": True}, "grid.yaml")
    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="default", extra={**g.analysis_extra(),
                                                                                    "refine": False}))["refine"] is False
    assert g.analysis_extra()["refine"] is True
    with pytest.raises(SpecError, match="refine"):
        parse_grid({"objectives": ["ga"], "refine": "often"}, "grid.yaml")
    # a spec without eval_steps keeps its run id; eval_steps alone makes a trajectory
    assert "eval_steps" not in RunSpec().hash_dict() and RunSpec(eval_steps=(3,)).has_trajectory
