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


def test_bracket_rounds_is_a_grid_key_and_one_round_in_the_default_profile(tmp_path):
    from tueval.analysis.controls_grid import grid_settings
    from tueval.analysis.registry import AnalysisConfig
    from tueval.config.grid import parse_grid
    from tueval.errors import SpecError

    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="default"))["bracket_rounds"] == 1
    assert grid_settings(AnalysisConfig(workdir=tmp_path, profile="quick"))["bracket_rounds"] == 0
    g = parse_grid({"objectives": ["ga"], "bracket_rounds": 2}, "grid.yaml")
    assert g.analysis_extra()["bracket_rounds"] == 2
    with pytest.raises(SpecError, match="bracket_rounds"):
        parse_grid({"objectives": ["ga"], "bracket_rounds": -1}, "grid.yaml")
