"""One configuration: the same words give the same RunSpec from the CLI, a sweep file, the Python API and the
analyses; defaults resolve as given > objective > global; presets load and keep every run id."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tueval.cli import build_parser
from tueval.commands.unlearn import FLAGS, spec_from_args, spec_words
from tueval.config import config_dir, defaults
from tueval.spec import resolve_spec
from tueval.config.grid import load_config, profile_grid
from tueval.config.checks import RUN_RULES
from tueval.config.grid import parse_grid
from tueval.errors import SpecError
from tueval.io import write_json
from tueval.spec import RunSpec
from tueval.sweep import expand_grid, load_grid
from tueval.unlearn import run_id
from tueval.workdir import Workdir

ROOT = Path(__file__).resolve().parents[1]


def _cli_spec(words: list[str]) -> RunSpec:
    return spec_from_args(build_parser().parse_args(["unlearn", *words]))


def _readme_npo_words() -> list[str]:
    """README's `tueval unlearn --objective npo ...` command line, as words (without --workdir)."""
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines()
                if ln.startswith("tueval unlearn --objective npo"))
    words = shlex.split(line.split("#")[0])[2:]
    if "--workdir" in words:
        i = words.index("--workdir")
        del words[i: i + 2]
    return words


def _fake_workdir(root: Path) -> Workdir:
    write_json(root / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
    return Workdir(root)


# ------------------------------------------------------------------------------------------- same words, same spec
def test_readme_npo_command_trains_the_controls_analysis_npo_arm():
    from tueval.analysis.grid import BASE, grid_cells

    words = _readme_npo_words()
    cli = _cli_spec(words)
    a = build_parser().parse_args(["unlearn", *words])
    method = {"scorer": a.scorer, "mode": a.mode, "ratio": a.ratio}
    cells = grid_cells(["npo"], [method], [a.control, BASE], [a.seed])
    arm = next(c.spec for c in cells if c.arm == a.control)
    assert cli == arm
    assert (cli.lr, cli.epochs, cli.batch_size) == (1e-3, 3, 16)
    # and the sequence-level NPO base of the analysis is `tueval unlearn --objective npo --seed S`
    base = next(c.spec for c in cells if c.arm == BASE)
    assert _cli_spec(["--objective", "npo", "--seed", str(a.seed)]) == base


def test_sweep_file_without_fixed_gives_the_cli_spec(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("objectives: [npo]\nmethods:\n  - {scorer: tokenunlearn, mode: hard, ratio: 0.3}\n"
                 "controls: [random_k]\nseeds: [3]\n")
    (spec,) = load_grid(f)
    assert spec == _cli_spec(["--objective", "npo", "--scorer", "tokenunlearn", "--mode", "hard", "--ratio", "0.3",
                              "--control", "random_k", "--seed", "3"])
    assert spec.lr == 1e-3
    (ga,) = expand_grid({"objectives": "ga", "seeds": [0]})
    assert ga == _cli_spec(["--objective", "ga"]) == RunSpec() == resolve_spec()
    assert ga.lr == defaults().run["lr"] != spec.lr


def test_resolution_order_given_then_objective_then_global():
    d = defaults()
    assert "lr" in d.objectives["npo"] and "epochs" not in d.objectives["npo"]
    npo = RunSpec(objective="npo")
    assert npo.lr == d.objectives["npo"]["lr"] and npo.epochs == d.run["epochs"]
    assert RunSpec(objective="npo", lr=5e-4).lr == 5e-4  # given wins
    assert _cli_spec(["--objective", "npo", "--lr", "5e-4"]).lr == 5e-4
    assert RunSpec(objective="graddiff").lr == d.run["lr"]  # no override: global
    # grid: an lr axis or `fixed` is given, so it wins over the objective's default
    assert {s.lr for s in expand_grid({"objectives": ["ga", "npo"], "fixed": {"lr": 2e-4}})} == {2e-4}


def test_concrete_values_alone_name_the_run(tmp_path):
    from tueval import defaults as D

    wd = _fake_workdir(tmp_path)
    for obj, extra in (("ga", {}), ("npo", {"scorer": "tif", "mode": "none", "normaliser": "weight_sum"}),
                       ("ga", {"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3, "control": "random_k"})):
        explicit = RunSpec(objective=obj, **extra, **{**D.RUN, **D.OBJECTIVE_FIXED.get(obj, {})})
        implicit = RunSpec(objective=obj, **extra)
        assert explicit == implicit and explicit.hash_dict() == implicit.hash_dict()
        assert run_id(explicit, wd) == run_id(implicit, wd)
    # an int for a float field is stored as the float: YAML `clip: 1` and `--clip 1` name one run
    assert RunSpec(clip=1).to_dict() == RunSpec(clip=1.0).to_dict() and isinstance(RunSpec(clip=1).clip, float)


@pytest.mark.parametrize("spec", [
    RunSpec(objective="npo", scorer="tokenunlearn", mode="hard", ratio=0.5, control="random_k", seed=3),
    RunSpec(objective="ga", scorer="tif", normaliser="weight_sum", lr=2.5e-4, epochs=2, batch_size=8,
            weight_decay=0.01, clip=0.5, forget_split="forget05", objective_params={"alpha": 0.5},
            scorer_params={"mask": "question"}, generate=False, save_model=True, snapshot_steps=(2, 4), ckpt_every=3,
            lmeval_tasks=("tueval_forget_mc",)),
    RunSpec(objective="simnpo", lr=1 / 3),
    RunSpec(eval_every=0, eval_steps=(5, 6, 7), seed=2),
])
def test_the_printed_command_reproduces_the_spec(spec):
    assert _cli_spec(shlex.split(spec_words(spec))) == spec


def test_every_run_field_has_a_rule_a_default_and_a_flag():
    from dataclasses import fields

    names = {f.name for f in fields(RunSpec)}
    assert names == set(RUN_RULES) == set(defaults().run) == set(FLAGS)
    help_text = build_parser()._subparsers._group_actions[0].choices["unlearn"].format_help()
    assert all(flag in help_text for flag in FLAGS.values())


# ------------------------------------------------------------------------------------------- presets
def test_defaults_view_reads_the_presets():
    from tueval import defaults as D

    d = defaults()
    assert D.RUN == {k: d.run[k] for k in ("lr", "epochs", "batch_size")}
    assert D.FIXED == {**D.RUN, **D.SHARED} and D.SHARED == profile_grid("default").fixed
    assert D.OBJECTIVE_FIXED == {o: dict(v) for o, v in d.objectives.items()}
    assert D.SEEDS == list(d.analysis.seeds)
    assert D.DEMO_METHODS == [m.to_dict() for m in profile_grid("default").methods]
    assert D.FULL_OBJECTIVES == list(profile_grid("full").axes["objective"])
    assert "tuning.md" not in Path(D.__file__).read_text()


@pytest.mark.parametrize("name", ["default", "grid", "full"])
def test_profile_presets_name_known_objectives_and_scorers(name):
    g = load_config(config_dir() / "profiles" / f"{name}.yaml", names=True)
    assert g.methods and all(m.fields["scorer"] for m in g.methods)


def test_analyze_config_of_a_profile_preset_asks_for_the_profile_grid(tmp_path):
    """`tueval analyze controls --config profiles/grid.yaml` needs exactly the runs of `--profile grid`."""
    from tueval.analysis import AnalysisConfig
    from tueval.analysis.grid import grid_cells
    from tueval_analyses.controls import grid_settings

    wd = Workdir(tmp_path)
    g = load_config(config_dir() / "profiles" / "grid.yaml")

    def cells(**kw):
        st = grid_settings(AnalysisConfig(workdir=wd, compute=False, progress=False, **kw))
        return [c.spec for c in grid_cells(st["objectives"], st["methods"], st["controls"], (0, 1), st["fixed"])]

    assert cells(extra=g.analysis_extra()) == cells(profile="grid")


def test_defaults_file_is_checked(tmp_path):
    from tueval.config.schema import parse_defaults
    from tueval.config.yamlfile import parse_yaml

    text = (config_dir() / "defaults.yaml").read_text().replace("clip: 1.0", "clip: -1.0")
    data, lines = parse_yaml(text, "defaults file d.yaml")
    with pytest.raises(SpecError, match=r"defaults file d.yaml, line \d+, run: field 'clip'"):
        parse_defaults(data, "defaults file d.yaml", lines)


# ------------------------------------------------------------------------------------------- grid format
def test_grid_methods_with_own_controls_objectives_and_the_uniform_base():
    specs = expand_grid({"objectives": ["ga", "npo"], "seeds": [0],
                         "methods": [{"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3,
                                      "controls": [None, "random_k", "uniform"], "objectives": ["npo"]},
                                     {"scorer": "etw", "mode": "soft"}]})
    labels = [s.label() for s in specs]
    assert labels == ["npo/tokenunlearn-hard0.3", "npo/tokenunlearn-hard0.3+random_k", "npo/sequence",
                      "ga/etw-soft", "npo/etw-soft"]
    assert next(s for s in specs if s.label() == "npo/sequence") == RunSpec(objective="npo")


def test_yaml_reads_1e_3_as_a_number(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("objectives: [ga]\nlrs: [1e-3, 2.0e-4]\nfixed: {weight_decay: 0}\n")
    assert [s.lr for s in load_grid(f)] == [1e-3, 2e-4]


def test_analyze_settings_flag_then_file_then_default(monkeypatch, tmp_path):
    import tueval.analysis as A
    from tueval.cli import main

    seen = []
    monkeypatch.setattr(A, "get_analysis", lambda name: lambda cfg: seen.append(cfg) or {})
    f = tmp_path / "a.yaml"
    f.write_text(f"seeds: [3, 4]\nalpha: 0.1\nreports: {tmp_path / 'r'}\nobjectives: [npo]\n"
                 "fixed: {epochs: 2}\nuniform: false\n")
    assert main(["analyze", "controls", "--config", str(f), "--alpha", "0.01", "--workdir", str(tmp_path)]) == 0
    cfg = seen[-1]
    assert cfg.alpha == 0.01 and cfg.seeds == (3, 4) and cfg.reports == tmp_path / "r"
    assert cfg.profile == defaults().analysis.profile
    assert cfg.extra == {"objectives": ["npo"], "fixed": {"epochs": 2}, "uniform": False}
    assert main(["analyze", "controls", "--workdir", str(tmp_path), "--seeds", "2"]) == 0
    assert seen[-1].seeds == (0, 1) and seen[-1].alpha == defaults().analysis.alpha and seen[-1].extra == {}


def test_sweep_and_analyze_take_the_same_file(tmp_path, capsys):
    from tueval.cli import main

    wd = _fake_workdir(tmp_path / "w")
    f = tmp_path / "g.yaml"
    f.write_text(f"objectives: [ga]\nseeds: [0, 1]\nworkers: 1\nworkdir: {wd.root}\nalpha: 0.1\n")
    assert main(["sweep", str(f), "--dry-run"]) == 0
    assert re.search(r"2 specs, 2 missing", capsys.readouterr().out)
    g = parse_grid({"objectives": ["ga"], "seeds": [0, 1], "workers": 1, "alpha": 0.1})
    assert g.settings == {"workers": 1, "alpha": 0.1} and len(g.specs()) == 2
