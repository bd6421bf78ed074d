"""A run's trajectory: written with eval_every, its final row agrees with the full evaluation, it does not change
the run, a resumed run's trajectory equals an uninterrupted one's, and the field stays out of the hash at 0."""
import shutil

import numpy as np
import pandas as pd
import pytest

from tueval.errors import SpecError
from tueval.spec import RunSpec
from tueval.trajectory import FILE, load_trajectory
from tueval.unlearn import run_id, unlearn


def _spec(**kw):
    d = dict(objective="ga", scorer="uniform", mode="none", seed=3, lr=1e-3, epochs=2, batch_size=16,
             generate=False, ckpt_every=1)
    d.update(kw)
    return RunSpec(**d)


def _fresh(spec, wd):
    shutil.rmtree(wd.root / "runs" / run_id(spec, wd), ignore_errors=True)  # reused workdirs


def test_eval_every_is_checked_and_outside_the_hash_at_0():
    assert RunSpec().eval_every == 0 and "eval_every" not in RunSpec().hash_dict()
    assert RunSpec(eval_every="epoch").hash_dict()["eval_every"] == "epoch"
    assert RunSpec(eval_every="3").eval_every == 3
    for bad in (-1, 1.5, "often", True):
        with pytest.raises(SpecError, match="eval_every"):
            RunSpec(eval_every=bad)


def test_trajectory_is_written_and_its_final_row_is_the_full_evaluation(small_workdir):
    spec = _spec(eval_every=1)
    _fresh(spec, small_workdir)
    res = unlearn(spec, small_workdir, progress=False)
    traj = pd.read_parquet(res.path / FILE)
    steps = res.summary["steps"]
    assert list(traj.step) == list(range(1, steps + 1)) and list(traj.final) == [False] * (steps - 1) + [True]
    last = traj.iloc[-1]
    for k in ("forget_quality", "forget_prob", "forget_truth_ratio"):
        assert last[k] == pytest.approx(res.summary[k], rel=1e-9, abs=1e-12), k
        assert last[f"full_{k}"] == pytest.approx(res.summary[k], rel=1e-12)
    assert res.summary["model_utility"] is None and pd.isna(last["full_model_utility"])  # no generation, no ROUGE
    # the checkpoint rows are the checkpoint evaluation of the run's own models: forgetting moves along the run
    assert np.isfinite(traj.utility_est).all() and traj.forget_prob.iloc[0] != traj.forget_prob.iloc[-1]
    # the trajectory does not change the run
    plain = unlearn(_spec(), small_workdir, progress=False)
    assert plain.run_id != res.run_id and not (plain.path / FILE).exists()
    pd.testing.assert_frame_equal(pd.read_parquet(plain.path / "eval" / "forget.parquet"),
                                  pd.read_parquet(res.path / "eval" / "forget.parquet"))
    # step 0 is the target model, evaluated once per workdir
    full = load_trajectory(res.path, small_workdir)
    assert full.step.iloc[0] == 0 and len(full) == len(traj) + 1
    assert full.forget_quality.iloc[0] != traj.forget_quality.iloc[-1]


def test_resumed_run_keeps_its_trajectory(small_workdir):
    spec = _spec(eval_every=2, seed=4)
    _fresh(spec, small_workdir)
    with pytest.raises(KeyboardInterrupt):
        unlearn(spec, small_workdir, progress=False, stop_after=3)
    resumed = pd.read_parquet(unlearn(spec, small_workdir, progress=False).path / FILE)
    fresh = pd.read_parquet(unlearn(spec, small_workdir, progress=False, force=True).path / FILE)
    pd.testing.assert_frame_equal(resumed, fresh)
    assert list(fresh.step)[:-1] == list(range(2, int(fresh.step.iloc[-1]), 2))


def test_target_point_is_computed_once_per_workdir(small_workdir, monkeypatch):
    """The step-0 row comes from the stored file after the first evaluation, also in a fresh process."""
    from tueval import trajectory

    calls = []
    monkeypatch.setattr(trajectory, "evaluate_checkpoint", lambda *a, **k: calls.append(1) or {"forget_quality": 0.5})
    path = small_workdir.eval_dir("target") / f"checkpoint-{small_workdir.forget_split}.json"
    path.unlink(missing_ok=True)
    trajectory._TARGET_POINTS.clear()
    assert trajectory.target_point(small_workdir) == {"forget_quality": 0.5}
    trajectory._TARGET_POINTS.clear()  # as a new process: only the file remains
    assert trajectory.target_point(small_workdir) == {"forget_quality": 0.5}
    assert trajectory.target_point(small_workdir) == {"forget_quality": 0.5}
    assert len(calls) == 1
    path.unlink()
    trajectory._TARGET_POINTS.clear()
