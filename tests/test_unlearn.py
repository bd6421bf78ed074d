"""The engine: caching by spec hash, resume after a crash, determinism, grids and CLI errors."""
import json
import pandas as pd
import pytest

from tueval.errors import SpecError
from tueval.hashing import spec_hash
from tueval.io import write_json
from tueval.sweep import expand_grid
from tueval.spec import HASH_OPTIONAL, NOT_HASHED, RunSpec
from tueval.unlearn import load_run, resolve, run_id, unlearn
from tueval.workdir import Workdir


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
    assert (rdir / "checkpoint.safetensors").exists() and not (rdir / "done.json").exists()
    resumed = unlearn(spec, small_workdir, progress=False)
    assert (rdir / "done.json").exists() and not (rdir / "checkpoint.safetensors").exists()
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


def test_cli_refuses_ratio_outside_unit_interval(small_workdir, cli):
    r = cli("unlearn", "--ratio", "0", "--mode", "hard", "--workdir", small_workdir.root)
    assert r.returncode == 2 and "ratio" in r.stderr


def test_cli_stop_step_ends_the_run_with_its_checkpoints_and_no_final_evaluation(small_workdir, cli):
    r = cli("unlearn", "--objective", "ga", "--scorer", "uniform", "--mode", "none", "--epochs", "2",
            "--no-generate", "--eval-steps", "1,2", "--stop-step", "2", "--workdir", small_workdir.root)
    assert r.returncode == 0 and "stopped after 2 steps" in r.stdout, r.stderr
    rid = r.stdout.split()[1]
    res = load_run(small_workdir, rid)
    traj = pd.read_parquet(res.path / "trajectory.parquet")
    assert list(traj["step"]) == [1, 2] and not traj["final"].any() and not (res.path / "eval").exists()
    assert res.summary["steps"] == 2 == res.spec.stop_step
    assert len(pd.read_parquet(res.path / "log.parquet")) == 2


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


# ---------------------------------------------------------------------------------------------- lm-eval in runs
def _fake_workdir(root) -> Workdir:
    """A workdir with only a prepare.json: enough for run ids, no models."""
    write_json(root / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
    return Workdir(root)


def _old_run_id(spec: RunSpec, wd: Workdir) -> str:
    """run_id as the engine computed it before RunSpec had lmeval_tasks, special_tokens and preset: the spec dict
    without them."""
    r = resolve(spec, wd)
    r.pop("_objects")
    old = {k: v for k, v in spec.to_dict().items() if k not in HASH_OPTIONAL + NOT_HASHED}
    r["spec"] = {**old, "forget_split": r["spec"]["forget_split"]}
    return spec_hash(r, 16)


def test_lmeval_field_keeps_every_existing_run_id(tmp_path):
    wd = _fake_workdir(tmp_path)
    for spec in (RunSpec(), _spec(), _spec(control="random_k", snapshot_steps=(2, 4), generate=True)):
        assert "lmeval_tasks" not in spec.hash_dict()
        assert run_id(spec, wd) == _old_run_id(spec, wd)
    # pinned: the id of the GA sequence-level spec at lr 1e-3 x 5 epochs on this fake workdir under ENGINE_VERSION 3
    # (6fa931287d67fd50 under version 2, 4dfb23725b88a8d0 under version 1, the id of runs cached before lmeval_tasks
    # existed); a change here renames every cached run. Only concrete values enter the hash: how they were given
    # does not matter.
    assert run_id(RunSpec(lr=1e-3, epochs=5), wd) == "4180ff7c5c799390"
    lm = RunSpec(lmeval_tasks=("tueval_forget_mc",))
    assert run_id(lm, wd) != run_id(RunSpec(), wd)
    assert run_id(lm, wd) != run_id(RunSpec(lmeval_tasks=("tueval_forget_mc", "tueval_retain_mc")), wd)
    with pytest.raises(SpecError, match="invalid lm-eval task"):
        run_id(RunSpec(lmeval_tasks=("bad task!",)), wd)


def test_lmeval_tasks_become_a_tuple():
    want = ("tueval_forget_mc", "tueval_retain_mc")
    assert RunSpec.from_dict({"lmeval_tasks": list(want)}).lmeval_tasks == want
    assert RunSpec.from_dict({"lmeval_tasks": "tueval_forget_mc, tueval_retain_mc"}).lmeval_tasks == want
    assert RunSpec(lmeval_tasks=["tueval_forget_mc"]).lmeval_tasks == ("tueval_forget_mc",)
    assert RunSpec(lmeval_tasks="").lmeval_tasks == () == RunSpec().lmeval_tasks
    # a grid list under `fixed` is one value, not an axis
    specs = expand_grid({"objectives": ["ga"], "seeds": [0, 1], "fixed": {"lmeval_tasks": list(want)}})
    assert len(specs) == 2 and all(s.lmeval_tasks == want for s in specs)


def test_cli_lmeval_tasks_flag_parses():
    import argparse

    from tueval.cli import build_parser

    p = build_parser()
    args = p.parse_args(["unlearn", "--lmeval-tasks", "tueval_forget_mc,tueval_retain_mc"])
    assert RunSpec(lmeval_tasks=args.lmeval_tasks).lmeval_tasks == ("tueval_forget_mc", "tueval_retain_mc")
    assert RunSpec(lmeval_tasks=p.parse_args(["unlearn"]).lmeval_tasks).lmeval_tasks == ()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    assert "--lmeval-tasks" in sub.choices["unlearn"].format_help()


def test_cli_analyze_lmeval_tasks_reach_the_controls_grid(monkeypatch, tmp_path):
    """`tueval analyze controls --lmeval-tasks all` asks the controls analysis for runs with the three tasks."""
    import tueval.analysis as A
    from tueval.cli import main

    seen = {}

    def fake_run(cfg):
        seen[cfg.__class__.__name__] = dict(cfg.extra)
        return {}

    monkeypatch.setattr(A, "get_analysis", lambda name: fake_run)
    assert main(["analyze", "controls", "--workdir", str(tmp_path), "--reports", str(tmp_path / "r"),
                 "--lmeval-tasks", "all", "--quiet"]) == 0
    assert seen["AnalysisConfig"] == {"lmeval_tasks": True}
    assert main(["analyze", "controls", "--workdir", str(tmp_path), "--reports", str(tmp_path / "r"),
                 "--lmeval-tasks", "tueval_forget_mc", "--quiet"]) == 0
    assert seen["AnalysisConfig"] == {"lmeval_tasks": "tueval_forget_mc"}


def test_run_with_lmeval_tasks_writes_accuracies(small_workdir):
    spec = _spec(objective="ga", scorer="uniform", mode="none", epochs=1, lmeval_tasks=("tueval_forget_mc",))
    res = unlearn(spec, small_workdir, progress=False)
    table = pd.read_parquet(res.path / "eval" / "lmeval.parquet")
    assert list(table.columns) == ["task", "acc", "acc_stderr", "n"] and list(table.task) == ["tueval_forget_mc"]
    acc = float(table.acc.iloc[0])
    assert 0.0 <= acc <= 1.0 and table.acc_stderr.iloc[0] >= 0
    assert table.n.iloc[0] == len(small_workdir.benchmark.split(small_workdir.forget_split))
    assert res.summary["lmeval"] == {"tueval_forget_mc": pytest.approx(acc)}
    again = load_run(small_workdir, res.run_id)
    assert again.spec.lmeval_tasks == spec.lmeval_tasks and again.summary["lmeval"] == res.summary["lmeval"]
    assert res.run_id != run_id(_spec(objective="ga", scorer="uniform", mode="none", epochs=1), small_workdir)
