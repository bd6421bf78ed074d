"""Method presets: every preset resolves, docs/presets.md is generated from them, the preset name is recorded but
not hashed, the CLI runs one, the profiles' paper rows are presets, and the papers' protocols hold in training
(TIF's paper row never loads the retain model; RMU's WMDP setting moves only the modules it names)."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tueval.config import config_dir
from tueval.spec import resolve_spec
from tueval.config.grid import load_config
from tueval.errors import SpecError
from tueval.preset_runs import built_settings, preset_rows, preset_spec, presets_markdown
from tueval.presets import ROLES, base_fields, expand_method, get_preset, load_preset, presets
from tueval.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ("tokenunlearn_hard", "tokenunlearn_soft", "etw", "atwu", "tif", "satimp", "wga")
BASES = ("ga", "graddiff", "npo")


# ------------------------------------------------------------------------------------------- the files
@pytest.mark.parametrize("name", sorted(presets()))
def test_every_preset_resolves_and_builds(name):
    p = get_preset(name)
    spec = preset_spec(p, seed=3)
    assert spec.preset == name and spec.seed == 3
    for k, v in p.run.items():  # the preset's own values reach the spec (mappings: every key)
        got = getattr(spec, k)
        assert (all(got[kk] == vv for kk, vv in v.items()) if isinstance(v, dict) else got == v), k
    built = built_settings(p)
    assert set(built) == {"scorer", "weighting", "objective"}
    assert p.role in ROLES and p.title and p.paper and p.description


def test_the_papers_and_bases_have_presets():
    names = set(presets())
    assert set(PAPERS) | set(BASES) <= names
    assert {p.name for p in presets().values() if p.role == "paper"} >= set(PAPERS)
    # the protocols the papers state
    assert preset_spec(get_preset("etw")).objective == "graddiff"
    sat = preset_spec(get_preset("satimp"))
    assert (sat.objective, sat.objective_params["gamma"], sat.objective_params["alpha"]) == ("graddiff", 0.1, 1.0)
    atwu = preset_spec(get_preset("atwu"))
    assert (atwu.objective, atwu.objective_params) == ("graddiff", {"gamma": 4.0, "alpha": 6.0})
    assert built_settings(get_preset("atwu"))["scorer"]["lr_decay"] == "linear"
    tif = get_preset("tif")
    assert preset_spec(tif).objective == "tpo" and built_settings(tif)["scorer"]["identifier"] == "ref_masked"
    assert get_preset("tif_oracle").role == "oracle"
    assert built_settings(get_preset("tif_oracle"))["scorer"]["identifier"] == "retain"
    assert built_settings(get_preset("rmu"))["objective"]["trainable"] == "all"
    assert built_settings(get_preset("rmu_wmdp"))["objective"]["trainable"] == "mlp.down_proj"


def test_docs_presets_md_is_generated_from_the_preset_files():
    doc = ROOT / "docs" / "presets.md"
    assert doc.read_text(encoding="utf-8") == presets_markdown(), \
        "docs/presets.md is stale: regenerate with `tueval presets --markdown > docs/presets.md`"
    for r in preset_rows():
        assert f"| {r['preset']} |" in doc.read_text(encoding="utf-8")


def test_a_preset_file_is_checked(tmp_path):
    good = (config_dir() / "presets" / "etw.yaml").read_text()
    (tmp_path / "etw.yaml").write_text(good)
    assert load_preset(tmp_path / "etw.yaml").run == get_preset("etw").run
    (tmp_path / "x.yaml").write_text(good)
    with pytest.raises(SpecError, match="must live in etw.yaml"):
        load_preset(tmp_path / "x.yaml")
    (tmp_path / "etw.yaml").write_text(good.replace("mode: soft", "mode: gentle"))
    with pytest.raises(SpecError, match=r"etw.yaml, line \d+.*'mode'"):
        load_preset(tmp_path / "etw.yaml")
    (tmp_path / "etw.yaml").write_text(good.replace("role: paper", "role: star"))
    with pytest.raises(SpecError, match="role"):
        load_preset(tmp_path / "etw.yaml")
    with pytest.raises(SpecError, match="unknown preset 'etww'.*Did you mean etw"):
        get_preset("etww")


# ------------------------------------------------------------------------------------------- resolution and hash
def test_resolution_given_then_preset_then_objective_defaults():
    s = RunSpec(preset="atwu", lr=3e-4, scorer_params={"lr": 1.0}, objective_params={"alpha": 2.0})
    assert s.lr == 3e-4  # given wins
    assert s.scorer_params == {"lr": 1.0, "every": 1}  # mappings merge key by key
    assert s.objective_params == {"gamma": 4.0, "alpha": 2.0}
    assert RunSpec(preset="tif").lr == RunSpec(objective="tpo").lr  # the objective's default under the preset
    npo = RunSpec(preset="tokenunlearn_hard", objective="npo")
    assert (npo.objective, npo.lr, npo.scorer) == ("npo", RunSpec(objective="npo").lr, "tokenunlearn")
    with pytest.raises(SpecError, match="preset"):
        RunSpec(preset="nope")


def test_the_preset_name_is_recorded_but_not_hashed(tmp_path):
    from tueval.io import write_json
    from tueval.unlearn import run_id
    from tueval.workdir import Workdir

    write_json(tmp_path / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
    wd = Workdir(tmp_path)
    by_name = RunSpec(preset="tokenunlearn_hard", seed=2)
    by_hand = RunSpec(objective="ga", scorer="tokenunlearn", mode="hard", ratio=0.3, seed=2)
    assert run_id(by_name, wd) == run_id(by_hand, wd)
    assert "preset" not in by_name.hash_dict() and by_name.to_dict()["preset"] == "tokenunlearn_hard"
    assert run_id(RunSpec(preset="ga"), wd) == run_id(RunSpec(), wd)
    assert run_id(RunSpec(preset="atwu"), wd) != run_id(RunSpec(preset="graddiff"), wd)


def test_cli_runs_a_preset_and_lists_them(capsys):
    from tueval.cli import build_parser, main
    from tueval.commands.unlearn import spec_from_args, spec_words

    args = build_parser().parse_args(["unlearn", "--preset", "atwu", "--seed", "4", "--control", "permuted"])
    spec = spec_from_args(args)
    assert spec == resolve_spec(preset="atwu", seed=4, control="permuted")
    words = spec_words(spec)
    assert "--preset atwu" in words
    assert spec_from_args(build_parser().parse_args(["unlearn", *words.split()])) == spec
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in presets())
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(presets())
    atwu = next(r for r in rows if r["name"] == "atwu")
    assert atwu["resolved"]["objective"] == "graddiff" and atwu["objective"]["alpha"] == 6.0
    assert main(["presets", "--markdown"]) == 0
    assert capsys.readouterr().out == presets_markdown()
    assert main(["unlearn", "--preset", "nope"]) == 2


# ------------------------------------------------------------------------------------------- profiles and grids
@pytest.mark.parametrize("profile", ["default", "grid", "full"])
def test_paper_rows_of_every_profile_are_presets(profile):
    g = load_config(config_dir() / "profiles" / f"{profile}.yaml")
    objectives = set(g.axes["objective"])
    named = [m for m in g.methods if m.fields.get("preset")]
    for m in g.methods:
        p = m.fields.get("preset")
        if p is None:  # a plain scorer entry: no paper's scorer without its preset
            assert m.fields["scorer"] not in {get_preset(n).run["scorer"] for n in PAPERS}, m.fields
            continue
        # the bases and the privileged TIF identifier never stand for a paper; the one oracle a profile may run is
        # the ground-truth positive control, which the index reports apart from the papers
        pr = get_preset(p)
        assert pr.role == "paper" or (pr.role == "oracle" and pr.run["scorer"] == "oracle"), p
        assert set(m.objectives) <= objectives, (p, m.objectives)
    if profile in ("default", "grid"):
        assert {m.fields["preset"] for m in named} >= set(PAPERS) - ({"wga", "satimp"} if profile == "default" else set())
        for m in named:  # its paper's informative control (random_k_fixed for a static scorer's random_k), the
            # update-matched control, or none (the demo budget)
            own = get_preset(m.fields["preset"]).control
            allowed = {None, own, "step_matched"} | ({"random_k_fixed"} if own == "random_k" else set())
            assert set(m.controls) <= allowed, m.fields


def test_a_preset_method_runs_on_its_objective_against_its_own_base():
    from tueval.analysis.grid import BASE, METHOD_ARM, grid_cells

    cells = grid_cells(["ga", "graddiff"], [{"preset": "atwu", "controls": ["permuted"]}], [BASE], [0, 1])
    arms = {c.arm: c.spec for c in cells if c.seed == 0}
    assert set(arms) == {METHOD_ARM, "permuted", BASE}
    assert {c.objective for c in cells} == {"graddiff"}
    base = arms[BASE]
    assert (base.objective, base.scorer, base.mode, base.objective_params) == \
        ("graddiff", "uniform", "none", {"gamma": 4.0, "alpha": 6.0})
    assert base.lr == arms[METHOD_ARM].lr and base.preset is None
    assert base_fields({"preset": "etw"}) == {"objective": "graddiff", "scorer": "uniform", "mode": "none"}
    # an entry that lists its objectives runs the preset's weighting on each
    m = expand_method({"preset": "etw", "objectives": ["ga", "npo"]})
    assert "objective" not in m and m["objectives"] == ["ga", "npo"] and m["scorer"] == "etw"
    assert expand_method(m) == m
    cells = grid_cells(["ga", "npo"], [m], [BASE], [0])
    assert {(c.objective, c.spec.objective, c.spec.lr) for c in cells} == \
        {("ga", "ga", RunSpec().lr), ("npo", "npo", RunSpec(objective="npo").lr)}


def test_a_sweep_file_with_a_preset_entry(tmp_path):
    from tueval.sweep import load_grid

    f = tmp_path / "g.yaml"
    f.write_text("objectives: [ga]\nmethods:\n  - {preset: satimp, controls: [null, uniform]}\nseeds: [1]\n")
    method, base = load_grid(f)
    assert method == resolve_spec(preset="satimp", seed=1)
    assert (base.objective, base.scorer, base.objective_params) == ("graddiff", "uniform",
                                                                    {"gamma": 0.1, "alpha": 1.0})


# ------------------------------------------------------------------------------------------- protocols in training
def _trainer(spec, wd):
    from tueval.training import Trainer
    from tueval.unlearn import resolve

    r = resolve(spec, wd)
    scorer, wspec, objective = r["_objects"]
    torch.manual_seed(spec.seed)
    return Trainer.build(spec, wd, scorer, wspec, objective, r["spec"]["forget_split"])


def test_tif_paper_row_never_loads_the_retain_model(small_workdir, monkeypatch):
    from tueval.workdir import Workdir

    load = Workdir.load_model

    def guarded(self, which, *a, **kw):
        if which == "retain" or "retain" in str(which):
            raise AssertionError("the retain model was loaded")
        return load(self, which, *a, **kw)

    monkeypatch.setattr(Workdir, "load_model", guarded)
    spec = replace(preset_spec(get_preset("tif"), seed=0), epochs=1)
    t = _trainer(spec, small_workdir)  # scoring: the static identifier runs here, on every forget example
    assert t.ctx.retain_model is None
    assert t.static is not None and bool((t.static[t.forget.answer_mask] == 1).any())
    row = t(0)  # training: one TPO step
    assert math.isfinite(row["total"]) and row["lpl"] > 0
    with pytest.raises(AssertionError, match="retain model was loaded"):  # the oracle does read it
        _trainer(replace(preset_spec(get_preset("tif_oracle"), seed=0), epochs=1), small_workdir)


def _train(t) -> None:
    from tueval.loop import LoopState, run_loop

    run_loop(t, LoopState(0, t.total_steps, t.steps_per_epoch), [])


def test_rmu_wmdp_setting_updates_only_the_named_modules(small_workdir):
    target, _ = small_workdir.load_model("target")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    t = _trainer(replace(preset_spec(get_preset("rmu_wmdp"), seed=0), epochs=1), small_workdir)
    _train(t)
    after = t.model.state_dict()
    layer = t.objective.layer
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == {f"model.layers.{layer}.mlp.down_proj.weight"}
    # open-unlearning's TOFU setting trains every parameter the loss reaches
    t = _trainer(replace(preset_spec(get_preset("rmu"), seed=0), epochs=1), small_workdir)
    _train(t)
    moved_all = {k for k in before if not torch.equal(before[k], t.model.state_dict()[k])}
    assert "model.embed_tokens.weight" in moved_all and len(moved_all) > 5


def test_atwu_preset_passes_the_run_length_to_its_scorer(small_workdir):
    t = _trainer(replace(preset_spec(get_preset("atwu"), seed=0), epochs=1), small_workdir)
    assert t.scorer._run_steps == t.total_steps
    assert t.scorer.lr_at(0) == t.scorer.lr and t.scorer.lr_at(t.total_steps) == 0.0
    assert 0 < t.scorer.lr_at(t.total_steps // 2 + 1) < t.scorer.lr


def test_an_analysis_grid_keeps_each_objectives_learning_rate_unless_the_user_fixes_it():
    """Without a `fixed` of its own an analysis grid runs NPO/TPO at their objective default (1e-3) and GA at the
    run default; a user's fixed learning rate wins everywhere."""
    from tueval import defaults
    from tueval.analysis.grid import BASE, grid_cells

    cells = grid_cells(["ga", "tpo"], [{"preset": "tif", "controls": ["random_k_fixed"]},
                                       {"preset": "tokenunlearn_hard", "controls": ["random_k"]}],
                       ["random_k_fixed", "random_k", BASE], [0], defaults.SHARED)
    lrs = {(c.objective, c.arm): c.spec.lr for c in cells}
    assert lrs[("tpo", "method")] == lrs[("tpo", BASE)] == lrs[("tpo", "random_k_fixed")] == 1e-3
    assert lrs[("ga", "method")] == lrs[("ga", BASE)] == 1.5e-4
    mine = grid_cells(["tpo"], [{"preset": "tif", "controls": []}], [BASE], [0], {**defaults.SHARED, "lr": 5e-4})
    assert {c.spec.lr for c in mine} == {5e-4}


def test_a_method_entrys_eval_every_reaches_every_arm_and_redosed_run():
    """The demo grid checks some methods' trajectories more densely than the shared setting: the entry's value
    must reach the method, its controls, its base and their learning-rate sweep runs, and nothing else."""
    from tueval import defaults
    from tueval.analysis.grid import grid_cells

    methods = [{"preset": "tokenunlearn_hard", "controls": ["random_k", "step_matched"], "eval_every": 4},
               {"preset": "etw", "controls": ["permuted"]}]
    cells = grid_cells(["ga", "graddiff"], methods, ["random_k", "step_matched", "permuted", "uniform"], [0],
                       {**defaults.SHARED, "eval_every": "epoch"}, base_lr_factors=(3.0,), control_lr_factors=(3.0,))
    every = {(c.objective, c.arm, c.setting): c.spec.eval_every for c in cells}
    ga = {k: v for k, v in every.items() if k[0] == "ga"}
    assert len(ga) == 6 and set(ga.values()) == {4}  # method, random_k, step_matched, base, 2 runs at 3x
    assert {v for k, v in every.items() if k[0] == "graddiff"} == {"epoch"}


def test_base_lr_factors_add_the_base_alone_at_multiples_of_its_own_rate():
    from tueval.analysis.grid import BASE, METHOD_ARM, grid_cells, unique_specs
    from tueval.analysis.matched_tables import frontier_runs

    methods = [{"preset": "tokenunlearn_hard", "controls": ["random_k"]}, {"preset": "tif", "controls": []},
               {"preset": "atwu", "controls": []}]
    plain = grid_cells(["ga", "graddiff", "tpo"], methods, [BASE], [0, 1])
    cells = grid_cells(["ga", "graddiff", "tpo"], methods, [BASE], [0, 1], base_lr_factors=(1.0, 3.0))
    extra = [c for c in cells if c.role == "sweep"]
    assert len(cells) == len(plain) + len(extra) and len(extra) == 3 * 2  # factor 1 is the confirmatory run
    assert {c.arm for c in extra} == {BASE}
    conf = {(c.objective, c.seed): c.spec for c in cells if c.arm == BASE and c.role == "confirmatory"}
    for c in extra:
        base = conf[(c.objective, c.seed)]
        assert c.spec.lr == pytest.approx(3 * base.lr)  # the preset's own rate (TIF's TPO: 1e-3)
        assert replace(c.spec, lr=base.lr) == base and c.setting == f"lr={c.spec.lr:g}"
    assert [c.spec.lr for c in extra if c.objective == "tpo"] == [pytest.approx(3e-3)] * 2
    # a method of the same objective shares the base's sweep runs; the frontier reads them, the method's arm not
    two = grid_cells(["ga"], [methods[0], {"preset": "tokenunlearn_soft", "controls": []}], [BASE], [0],
                     base_lr_factors=(3.0,))
    assert len(unique_specs([c for c in two if c.role == "sweep"])) == 1
    assert len(unique_specs(two)) == 5  # 2 methods, random_k, the base and its one sweep run
    import pandas as pd

    runs = pd.DataFrame([{"arm": c.arm, "role": c.role} for c in cells])
    kept = frontier_runs(runs)
    assert (kept["role"] == "sweep").sum() == len(extra) and METHOD_ARM in set(kept["arm"])


def test_control_lr_factors_redose_the_controls_but_not_step_matched():
    from tueval.analysis.grid import BASE, grid_cells
    from tueval.analysis.matched_tables import frontier_runs

    m = [{"preset": "tokenunlearn_hard", "controls": ["random_k", "step_matched"]}]
    cells = grid_cells(["ga"], m, [BASE], [0], ratios=(0.1,), control_lr_factors=(3.0,))
    sweep = [c for c in cells if c.role == "sweep"]
    assert {(c.arm, c.setting) for c in sweep} == {("random_k", "lr=0.00045"), ("method", "ratio=0.1"),
                                                   ("random_k", "ratio=0.1")}
    import pandas as pd

    runs = pd.DataFrame([{"arm": c.arm, "role": c.role, "setting": c.setting} for c in cells])
    kept = frontier_runs(runs)  # the control's lr frontier, never its other k nor the method's sweep
    assert set(map(tuple, kept.loc[kept["role"] == "sweep", ["arm", "setting"]].values)) == {("random_k", "lr=0.00045")}
