"""Runs that cannot differ share one computation (tueval.shared_training): the random_k control of a hard
selection under two static scorers is trained once, and the second run's folder equals a run trained anew."""
import json
import shutil

import pandas as pd
import pytest

from tueval import shared_training
from tueval.spec import RunSpec
from tueval.unlearn import resolve, run_id, unlearn


def _spec(**kw):
    d = dict(objective="ga", scorer="oracle", mode="hard", ratio=0.3, control="random_k", seed=4, lr=1e-3,
             epochs=1, batch_size=16, generate=False, eval_steps=(1, 2))
    d.update(kw)
    return RunSpec(**d)


def _key(wd, **kw):
    r = resolve(_spec(**kw), wd)
    return shared_training.training_key(r, r["_objects"][0])


def _tables(path):
    return {p.name: pd.read_parquet(p) for p in sorted((path / "eval").glob("*.parquet"))} | {
        n: pd.read_parquet(path / n) for n in ("log.parquet", "trajectory.parquet")}


def test_only_runs_whose_training_ignores_the_scorer_share_a_key(small_workdir):
    wd = small_workdir
    k = _key(wd)
    assert k is not None and k == _key(wd, scorer="tokenunlearn") == _key(wd, scorer="uniform")
    assert _key(wd, control="random_k_fixed") not in (None, k)
    assert len({k, _key(wd, seed=5), _key(wd, ratio=0.5), _key(wd, lr=2e-3), _key(wd, objective="npo")}) == 5
    for kw in ({"control": "permuted"}, {"control": None}, {"control": "bottom_k"},
               {"mode": "soft", "control": "permuted"},
               {"scorer": "random"},  # draws from the run's weights generator, before the control does
               {"scorer": "anti", "scorer_params": {"base": "random"}},
               {"scorer": "tokenunlearn", "scorer_params": {"dynamic": True}}):  # scored on the policy each step
        assert _key(wd, **kw) is None, kw


def test_second_run_is_filled_from_the_first_and_equals_a_run_trained_anew(small_workdir):

    wd = small_workdir
    shutil.rmtree(wd.root / "runs" / run_id(_spec(scorer="tokenunlearn"), wd), ignore_errors=True)  # reused workdirs
    first = unlearn(_spec(), wd, progress=False, force=True)
    second = unlearn(_spec(scorer="tokenunlearn"), wd, progress=False)
    assert second.run_id != first.run_id and second.cached  # computed nothing
    assert second.summary["same_training_as"] == first.run_id
    assert second.summary["label"] != first.summary["label"]
    record = json.loads((second.path / "spec.json").read_text())
    assert record["same_training_as"] == first.run_id and record["spec"]["scorer"] == "tokenunlearn"
    filled = _tables(second.path)
    assert set(filled) >= {"forget.parquet", "log.parquet", "trajectory.parquet"}
    again = unlearn(_spec(scorer="tokenunlearn"), wd, progress=False)
    assert again.cached and again.run_id == second.run_id
    trained = unlearn(_spec(scorer="tokenunlearn"), wd, progress=False, force=True)  # trains, reads no source
    assert "same_training_as" not in trained.summary
    for name, t in _tables(trained.path).items():
        pd.testing.assert_frame_equal(filled[name], t, check_exact=False, rtol=1e-6, atol=1e-7, obj=name)
    for k in ("forget_quality", "forget_prob"):
        assert trained.summary[k] == pytest.approx(first.summary[k], rel=1e-6, abs=1e-9), k


def test_disabled_sharing_trains_every_run(small_workdir, monkeypatch):
    monkeypatch.setattr(shared_training, "ENABLED", False)
    assert _key(small_workdir) is None
