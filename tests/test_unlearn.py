"""The engine: caching by spec hash, resume after a crash, determinism, grids and CLI errors."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from tueval.errors import SpecError
from tueval.sweep import expand_grid
from tueval.unlearn import RunSpec, run_id, unlearn


def _spec(**kw):
    d = dict(objective="npo", scorer="tokenunlearn", mode="hard", ratio=0.3, seed=1, lr=1e-3, epochs=2,
             batch_size=16, generate=False, ckpt_every=1)
    d.update(kw)
    return RunSpec(**d)


def test_killed_run_resumes_and_matches_an_uninterrupted_run(small_workdir):
    spec = _spec()
    import shutil

    shutil.rmtree(small_workdir.root / "runs" / run_id(spec, small_workdir), ignore_errors=True)  # reused workdirs
    with pytest.raises(KeyboardInterrupt):
        unlearn(spec, small_workdir, progress=False, stop_after=2)
    rdir = small_workdir.root / "runs" / run_id(spec, small_workdir)
    assert (rdir / "checkpoint.pt").exists() and not (rdir / "done.json").exists()
    resumed = unlearn(spec, small_workdir, progress=False)
    assert (rdir / "done.json").exists() and not (rdir / "checkpoint.pt").exists()
    rows_resumed = pd.read_parquet(rdir / "eval" / "forget.parquet")
    log = pd.read_parquet(rdir / "log.parquet")
    assert list(log.step) == list(range(resumed.summary["steps"]))
    fresh = unlearn(spec, small_workdir, progress=False, force=True)
    rows_fresh = pd.read_parquet(fresh.path / "eval" / "forget.parquet")
    pd.testing.assert_frame_equal(rows_resumed, rows_fresh)
    again = unlearn(spec, small_workdir, progress=False)
    assert again.cached and again.run_id == fresh.run_id


def test_spec_hash_names_the_run_and_changes_with_the_spec(small_workdir):
    a, b = _spec(seed=1), _spec(seed=2)
    assert run_id(a, small_workdir) == run_id(_spec(seed=1), small_workdir)
    assert run_id(a, small_workdir) != run_id(b, small_workdir)
    assert run_id(a, small_workdir) != run_id(_spec(control="random_k"), small_workdir)


def test_unlearning_raises_forget_loss_and_keeps_retain(small_workdir):
    res = unlearn(_spec(objective="graddiff", scorer="uniform", mode="none", epochs=2, lr=1e-3), small_workdir,
                  progress=False)
    log = pd.read_parquet(res.path / "log.parquet")
    target = json.loads((small_workdir.eval_dir("target") / "summary.json").read_text())
    assert res.summary["forget_prob"] < target["forget_prob"] - 0.05
    assert log.retain.iloc[-1] < 1.0, "GradDiff keeps the retain NLL bounded"


def test_bad_specs_are_refused(small_workdir):
    with pytest.raises(SpecError, match="Valid names"):
        unlearn(_spec(objective="nope"), small_workdir, progress=False)
    with pytest.raises(SpecError, match="Valid names"):
        unlearn(_spec(scorer="nope"), small_workdir, progress=False)
    with pytest.raises(SpecError):
        unlearn(_spec(ratio=1.5), small_workdir, progress=False)


def test_cli_refuses_ratio_outside_unit_interval(small_workdir):
    r = subprocess.run([sys.executable, "-m", "tueval.cli", "unlearn", "--ratio", "0", "--mode", "hard",
                        "--workdir", str(small_workdir.root)], capture_output=True, text=True)
    assert r.returncode == 2 and "ratio" in r.stderr


def test_expand_grid_crosses_axes_and_drops_irrelevant_fields():
    specs = expand_grid({"objectives": ["ga", "npo"], "methods": [{"scorer": "etw", "mode": "soft"},
                                                                   {"scorer": "uniform", "mode": "none"}],
                         "controls": [None, "permuted"], "seeds": [0, 1], "fixed": {"epochs": 1}})
    labels = {(s.objective, s.label(), s.seed) for s in specs}
    assert ("ga", "ga/etw-soft+permuted", 1) in labels and ("npo", "npo/sequence", 0) in labels
    # the sequence-level base has no control: 2 objectives x (2 etw arms + 1 base) x 2 seeds
    assert len(specs) == 12
    with pytest.raises(SpecError, match="unknown grid key"):
        expand_grid({"objectivs": ["ga"]})
