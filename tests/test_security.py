"""Nothing in a run folder executes: planted pickles are refused without being opened; plugin code is checked
before training and its source enters the run id."""
import importlib
import shutil
import sys
import textwrap

import pytest
import torch

from tueval.errors import SpecError, TuevalError
from tueval.hashing import spec_hash
from tueval.spec import RunSpec
from tueval.store import RunFolder, load_scorer_state
from tueval.unlearn import resolve, run_id, snapshot_model, unlearn
from tueval.io import write_json
from tueval.workdir import Workdir


def _fake_workdir(root) -> Workdir:
    """A workdir with only a prepare.json: enough for run ids, no models."""
    write_json(root / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
    return Workdir(root)


class _Payload:
    """A pickle whose loading writes a marker file (what an attacker's checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _plant(path, marker) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Payload(marker)}, path)


def test_the_planted_payload_is_live(tmp_path):
    """The payload used below really runs when unpickled (so its absence later means it was never opened)."""
    marker = tmp_path / "ran"
    _plant(tmp_path / "x.pt", marker)
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.read_text() == "ran"


def _spec(**kw):
    d = dict(objective="ga", scorer="uniform", mode="none", seed=11, lr=1e-3, epochs=1, batch_size=16,
             generate=False, ckpt_every=1)
    d.update(kw)
    return RunSpec(**d)


@pytest.mark.parametrize("name", ["checkpoint.pt", "checkpoint.safetensors"])
def test_planted_checkpoint_is_refused_and_never_runs(name, small_workdir, tmp_path):
    spec = _spec(seed=11 if name.endswith(".pt") else 12)
    rdir = small_workdir.root / "runs" / run_id(spec, small_workdir)
    shutil.rmtree(rdir, ignore_errors=True)
    marker = tmp_path / "ran"
    _plant(rdir / name, marker)
    try:
        with pytest.raises(TuevalError, match="refusing") as e:
            unlearn(spec, small_workdir, progress=False)
        msg = str(e.value)
        assert name in msg and "delete the run folder" in msg and "\n" not in msg
        assert not marker.exists()
        assert not (rdir / "done.json").exists() and (rdir / name).exists(), "refused, not restarted"
    finally:
        shutil.rmtree(rdir, ignore_errors=True)


@pytest.mark.parametrize("name", ["scorer_state.pt", "scorer_state.safetensors"])
def test_planted_scorer_state_is_refused_and_never_runs(name, tmp_path):
    rdir = tmp_path / "runs" / "abc"
    marker = tmp_path / "ran"
    _plant(rdir / name, marker)
    with pytest.raises(TuevalError, match="refusing") as e:
        load_scorer_state(rdir)
    assert name in str(e.value) and not marker.exists()
    with pytest.raises(TuevalError, match="refusing"):
        load_scorer_state(rdir / name)
    assert not marker.exists()


def test_planted_snapshot_is_refused(small_workdir, tmp_path):
    from tueval.unlearn import RunResult

    rdir = tmp_path / "runs" / "abc"
    marker = tmp_path / "ran"
    _plant(rdir / "snapshots" / "step-00002.pt", marker)
    res = RunResult("abc", rdir, _spec(snapshot_steps=(2,)), {})
    with pytest.raises(TuevalError, match="refusing"):
        snapshot_model(small_workdir, res, 2)
    assert not marker.exists()


def test_scorer_state_round_trips_without_pickle(tmp_path):
    from tueval.scoring import make_scorer

    sc = make_scorer("atwu_proto")
    sc._init(4, "cpu")
    with torch.no_grad():
        sc._u.copy_(torch.arange(4.0))
    sc._u.grad = torch.ones(4)
    sc._b.grad = torch.ones(())
    sc._opt.step()
    sc.n_updates = 3
    folder = RunFolder(tmp_path / "runs" / "r1")
    folder.save_scorer_state(sc.state_dict())
    back = make_scorer("atwu_proto")
    back.load_state_dict(load_scorer_state(folder.path))
    assert back.n_updates == 3 and torch.equal(back._u, sc._u) and torch.equal(back._b, sc._b)
    assert torch.equal(back._opt.state_dict()["state"][0]["momentum_buffer"],
                       sc._opt.state_dict()["state"][0]["momentum_buffer"])
    with pytest.raises(TuevalError, match="no scorer_state"):
        load_scorer_state(tmp_path / "runs" / "empty")


# ------------------------------------------------------------------------------------------ plugin code and hash
PLUGIN_V1 = '''
import torch

def my_score(model, batch):
    return batch.answer_mask.float()
'''
PLUGIN_V2 = PLUGIN_V1.replace("return batch.answer_mask.float()", "return 2 * batch.answer_mask.float()")


def _main_formula_run_id(spec: RunSpec, wd: Workdir) -> str:
    """The run id by the formula of the engine before plugin code entered the hash (the documented resolved
    dict: engine version, hashed spec, scorer description, weighting, objective settings, workdir models)."""
    from tueval.objectives import make_objective
    from tueval.scoring import make_scorer
    from tueval.unlearn import ENGINE_VERSION
    from tueval.weighting import WeightingSpec

    scorer = make_scorer(spec.scorer, dict(spec.scorer_params))
    w = WeightingSpec(mode=spec.mode, ratio=spec.ratio, control=spec.control, normaliser=spec.normaliser)
    objective = make_objective(spec.objective, {"normaliser": w.loss_normaliser, **spec.objective_params})
    return spec_hash({"engine": ENGINE_VERSION, "spec": {**spec.hash_dict(), "forget_split": wd.forget_split},
                      "scorer": scorer.describe(), "weighting": w.params(),
                      "objective": {"name": spec.objective, "params": objective.get_params()},
                      "workdir": {k: wd.manifest["paths"][k] for k in ("benchmark", "tokenizer", "target",
                                                                       "retain")}}, 16)


def test_editing_a_plugin_changes_its_run_id(tmp_path, monkeypatch):
    wd = _fake_workdir(tmp_path)
    mod = tmp_path / "plugmod_edit.py"
    mod.write_text(PLUGIN_V1)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    spec = RunSpec(scorer="plugmod_edit:my_score", mode="soft")
    first = run_id(spec, wd)
    code = resolve(spec, wd)["scorer"]["code"]
    assert len(code["source_sha256"]) == 64 and first == run_id(spec, wd)
    assert first != _main_formula_run_id(spec, wd), "plugin code is part of the hash"
    mod.write_text(PLUGIN_V2)
    importlib.reload(sys.modules["plugmod_edit"])
    second = run_id(spec, wd)
    assert second != first and resolve(spec, wd)["scorer"]["code"]["source_sha256"] != code["source_sha256"]
    mod.write_text(PLUGIN_V1)
    importlib.reload(sys.modules["plugmod_edit"])
    assert run_id(spec, wd) == first, "the same code gives the same id"


def test_entry_point_plugin_hash_names_its_distribution(tmp_path, monkeypatch):
    from tueval.scoring import SCORERS

    wd = _fake_workdir(tmp_path)
    (tmp_path / "plugmod_ep.py").write_text(PLUGIN_V1)
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugmod_ep

    class Dist:
        name, version = "my-scorers", "1.2.0"

    class EP:
        name, dist = "my_ep_scorer", Dist()

        def load(self):
            return plugmod_ep.my_score

    monkeypatch.setattr(SCORERS, "entry_point", lambda name: EP() if name == "my_ep_scorer" else None)
    monkeypatch.setattr(SCORERS, "get", lambda name: plugmod_ep.my_score)
    spec = RunSpec(scorer="my_ep_scorer", mode="soft")
    code = resolve(spec, wd)["scorer"]["code"]
    assert code["distribution"] == "my-scorers==1.2.0"
    before = run_id(spec, wd)
    Dist.version = "1.3.0"
    assert run_id(spec, wd) != before


def test_builtin_run_ids_are_unchanged(tmp_path):
    wd = _fake_workdir(tmp_path)
    specs = [RunSpec(), RunSpec(objective="npo", scorer="tokenunlearn", mode="hard", ratio=0.3, seed=3),
             RunSpec(objective="ga", scorer="atwu_proto", mode="none", control="permuted"),
             RunSpec(objective="npo", scorer="anti", mode="hard", scorer_params={"base": "oracle"})]
    for spec in specs:
        assert "code" not in resolve(spec, wd)["scorer"] and "code" not in resolve(spec, wd)["objective"]
        assert run_id(spec, wd) == _main_formula_run_id(spec, wd)


# ------------------------------------------------------------------------------------------ plugin checks in runs
BAD_PLUGINS = textwrap.dedent('''
    import torch

    def nan_scores(model, batch):
        s = batch.answer_mask.float()
        s[0, batch.prompt_lengths[0]] = float("nan")
        return s

    def inf_scores(model, batch):
        return batch.answer_mask.float() / 0.0

    def crashes(model, batch):
        raise KeyError("no such field\\nsecond line")

    def wrong_shape(model, batch):
        return torch.ones(batch.input_ids.shape[0])

    def a_list(model, batch):
        return batch.answer_mask.float().tolist()
''')


@pytest.fixture()
def bad_plugins(tmp_path, monkeypatch):
    (tmp_path / "bad_scorers.py").write_text(BAD_PLUGINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "bad_scorers"


@pytest.mark.parametrize("fn,fault,mode", [
    ("nan_scores", r"non-finite values \(NaN\)", "soft"),
    ("nan_scores", r"non-finite values \(NaN\)", "hard"),
    ("inf_scores", r"non-finite values \(inf\)", "none"),
    ("crashes", "raised KeyError", "soft"),
    ("wrong_shape", r"returned shape \[\d+\]", "soft"),
    ("a_list", "returned list", "soft"),
])
def test_bad_plugin_scorer_fails_before_training(fn, fault, mode, bad_plugins, small_workdir):
    spec = _spec(scorer=f"{bad_plugins}:{fn}", mode=mode, seed=21)
    rdir = small_workdir.root / "runs" / run_id(spec, small_workdir)
    with pytest.raises(SpecError, match=fault) as e:
        unlearn(spec, small_workdir, progress=False)
    msg = str(e.value)
    assert f"scorer '{bad_plugins}:{fn}'" in msg and "before training" in msg and "\n" not in msg
    assert not rdir.exists(), "nothing is written for a run that never started"


def test_static_plugin_is_checked_on_the_reference_model(bad_plugins, small_workdir):
    spec = _spec(scorer=f"{bad_plugins}:nan_scores", mode="soft", scorer_params={"static": True})
    with pytest.raises(SpecError, match=f"scorer '{bad_plugins}:nan_scores'"):
        unlearn(spec, small_workdir, progress=False)


NAN_OBJECTIVE = textwrap.dedent('''
    import torch
    from tueval.objectives import GradAscent

    CALLS = [0]
    NAN_AT = 2

    class NanLater(GradAscent):
        name = "nan_later"

        def forget_term(self, out, batch, weights, ref_out=None, model=None, ref_model=None):
            forget, extras = super().forget_term(out, batch, weights, ref_out, model, ref_model)
            CALLS[0] += 1
            if CALLS[0] > NAN_AT:
                forget = forget * float("nan")
            return forget, extras
''')


def test_nan_loss_stops_the_run_at_that_step(small_workdir, tmp_path, monkeypatch):
    from tueval.tensorfile import load_state

    (tmp_path / "nan_objective.py").write_text(NAN_OBJECTIVE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import nan_objective

    nan_objective.CALLS[0] = 0
    spec = _spec(objective="nan_objective:NanLater", epochs=2, seed=31)
    rdir = small_workdir.root / "runs" / run_id(spec, small_workdir)
    shutil.rmtree(rdir, ignore_errors=True)
    try:
        with pytest.raises(TuevalError, match="stopped at step 2: the loss is not finite") as e:
            unlearn(spec, small_workdir, progress=False)
        assert "total nan" in str(e.value) and "\n" not in str(e.value)
        state = load_state(rdir / "checkpoint.safetensors")
        assert state["step"] == 2 and [r["step"] for r in state["log"]] == [0, 1]
        assert all(torch.isfinite(t).all() for t in state["model"].values())
        assert not (rdir / "done.json").exists() and not (rdir / "log.parquet").exists()
    finally:
        shutil.rmtree(rdir, ignore_errors=True)
