"""Every bad input is refused before any work: rc 2, one line on stderr naming the field (and file), no traceback,
no new folder anywhere (CLI flags, grid files, --dry-run, analyze --config, the Python API)."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from tueval.cli import main
from tueval.errors import SpecError
from tueval.io import write_json
from tueval.spec import RunSpec

UNLEARN = [  # (flags, what the message must name)
    (["--lr", "0"], "lr"), (["--lr", "nan"], "lr"), (["--lr", "inf"], "lr"), (["--lr", "-1e-3"], "lr"),
    (["--epochs", "0"], "epochs"), (["--batch-size", "0"], "batch_size"), (["--clip", "-1"], "clip"),
    (["--clip", "inf"], "clip"), (["--weight-decay", "-5"], "weight_decay"),
    (["--weight-decay", "inf"], "weight_decay"), (["--weight-decay", "nan"], "weight_decay"),
    (["--mode", "hard", "--ratio", "0"], "ratio"), (["--mode", "hard", "--ratio", "1.5"], "ratio"),
    (["--seed", "abc"], "--seed"), (["--seed", "1.5"], "--seed"), (["--seed", "-1"], "seed"),
    (["--ckpt-every", "0"], "ckpt_every"), (["--forget-split", "../../etc"], "forget_split"),
    (["--snapshot-steps", "0,5"], "snapshot_steps"), (["--snapshot-steps", "a"], "snapshot_steps"),
    (["--control", "bogus"], "control"), (["--objective", "nope"], "objective"), (["--scorer", "nope"], "scorer"),
    (["--lmeval-tasks", "bad task!"], "lmeval_tasks"), (["--objective-param", "bta=1"], "bta"),
]

GRIDS = {  # name: (file text, what the message must name besides the file)
    "lr_zero": ("objectives: [ga]\nlrs: [0]\n", "'lr'"),
    "lr_nan": ("objectives: [ga]\nlrs: [.nan]\n", "'lr'"),
    "lr_inf": ("objectives: [ga]\nfixed: {lr: .inf}\n", "'lr'"),
    "lr_string": ("objectives: [ga]\nfixed: {lr: fast}\n", "'lr'"),
    "epochs_zero": ("objectives: [ga]\nepochs: [0]\n", "'epochs'"),
    "batch_size_zero": ("fixed: {batch_size: 0}\n", "'batch_size'"),
    "clip_negative": ("fixed: {clip: -1}\n", "'clip'"),
    "weight_decay_negative": ("fixed: {weight_decay: -5}\n", "'weight_decay'"),
    "ratio_zero": ("methods:\n  - {scorer: tokenunlearn, mode: hard, ratio: 0}\n", "'ratio'"),
    "ratio_above_one": ("ratios: [0.3, 1.5]\nmodes: [hard]\nscorers: [tokenunlearn]\n", "'ratio'"),
    "seeds_string": ("objectives: [ga]\nseeds: [\"abc\"]\n", "'seed'"),
    "seeds_float": ("objectives: [ga]\nseeds: [1.5]\n", "'seed'"),
    "seeds_bool": ("objectives: [ga]\nseeds: [true]\n", "'seed'"),
    "ckpt_every_zero": ("fixed: {ckpt_every: 0}\n", "'ckpt_every'"),
    "snapshot_steps": ("fixed: {snapshot_steps: [0]}\n", "'snapshot_steps'"),
    "forget_split_path": ("fixed: {forget_split: ../../etc}\n", "'forget_split'"),
    "control_unknown": ("controls: [null, bogus]\n", "'control'"),
    "objective_unknown": ("objectives: [nope]\n", "'objective'"),
    "scorer_unknown": ("methods:\n  - {scorer: nope, mode: soft}\n", "'scorer'"),
    "empty_grid": ("", "empty grid"),
    "empty_mapping": ("{}\n", "empty grid"),
    "empty_axis": ("seeds: []\n", "seeds"),
    "python_tag": ("!!python/object/apply:os.system [\"echo pwned\"]\n", "line 1"),
    "python_tag_value": ("objectives: !!python/name:os.system\n", "line 1"),
    "malformed": ("objectives: [ga\nseeds: [0]\n", "line 2"),
    "scanner_error": ("objectives: [ga]\n\tseeds: [0]\n", "line 2"),
    "top_level_list": ("- objectives: [ga]\n", "mapping"),
    "fixed_not_mapping": ("objectives: [ga]\nfixed: [1, 2]\n", "fixed"),
    "methods_not_list": ("methods: {scorer: etw}\n", "methods"),
    "unknown_grid_key": ("objectivs: [ga]\n", "objectivs"),
    "unknown_spec_field": ("objectives: [ga]\nfixed:\n  lrr: 0.1\n", "lrr"),
    "duplicate_key": ("seeds: [0]\nseeds: [1]\n", "seeds"),
    "alpha_out_of_range": ("objectives: [ga]\nalpha: 2\n", "'alpha'"),
}


@pytest.fixture()
def place(tmp_path, monkeypatch):
    """A fake prepared workdir (enough for run ids) inside a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "work"
    write_json(root / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
    return tmp_path


def _tree(root) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}


def _refused(argv: list[str], place, capsys, *names: str) -> str:
    before = _tree(place)
    rc = main(argv)
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert rc == 2, (rc, out.err)
    assert len(lines) == 1, out.err
    assert "Traceback" not in out.err + out.out
    for n in names:
        assert n in lines[0], (n, lines[0])
    assert _tree(place) == before, "a refused command left files behind"
    return lines[0]


@pytest.mark.parametrize("flags,field", UNLEARN, ids=[" ".join(f) for f, _ in UNLEARN])
def test_unlearn_refuses_bad_flags(flags, field, place, capsys):
    _refused(["unlearn", *flags, "--workdir", str(place / "work")], place, capsys, field)


@pytest.mark.parametrize("name", sorted(GRIDS))
@pytest.mark.parametrize("command", ["sweep", "sweep --dry-run", "analyze"])
def test_grid_files_are_refused_before_any_work(name, command, place, capsys):
    text, what = GRIDS[name]
    f = place / f"{name}.yaml"
    f.write_text(text)
    argv = {"sweep": ["sweep", str(f)], "sweep --dry-run": ["sweep", str(f), "--dry-run"],
            "analyze": ["analyze", "controls", "--config", str(f), "--reports", str(place / "reports")]}[command]
    if command == "analyze" and name in ("empty_axis",):
        what = "seeds"
    _refused([*argv, "--workdir", str(place / "work")], place, capsys, f"{name}.yaml", what)


@pytest.mark.parametrize("argv,what", [
    (["analyze", "controls", "--alpha", "0"], "--alpha"), (["analyze", "controls", "--seeds", "0"], "--seeds"),
    (["analyze", "controls", "--workers", "0"], "--workers"), (["analyze", "controls", "--scorers", "nope"], "nope"),
    (["analyze", "nope"], "nope"), (["analyze", "controls", "--lmeval-tasks", "bad task!"], "--lmeval-tasks"),
    (["check", "--scorer", "nope"], "nope"), (["check", "--scorer", "tokenunlearn", "--ratio", "0"], "--ratio"),
    (["check", "--scorer", "tokenunlearn", "--seeds", "1"], "--seeds"),
    (["check", "--scorer", "tokenunlearn", "--alpha", "1.5"], "--alpha"),
    (["check", "--scorer", "tokenunlearn", "--against", "random_k,bogus"], "--against"),
    (["check", "--scorer", "tokenunlearn", "--objective", "nope"], "--objective"),
    (["sweep", "g.yaml", "--workers", "0"], "--workers"),
    (["sweep", "missing.yaml"], "missing.yaml"),
    (["demo", "--profile", "nope"], "--profile"),
    (["lmeval", "--model", "target", "--batch-size", "0"], "--batch-size"),
])
def test_other_commands_refuse_bad_settings(argv, what, place, capsys):
    (place / "g.yaml").write_text("objectives: [ga]\n")
    _refused([*argv, "--workdir", str(place / "work")], place, capsys, what)


def test_a_zero_flag_is_never_replaced_by_a_default(place, capsys):
    """`--lr 0` is refused, not turned into the default lr (which would return a cached run)."""
    line = _refused(["unlearn", "--lr", "0", "--epochs", "3", "--workdir", str(place / "work")], place, capsys)
    assert "'lr'" in line and "> 0" in line


def test_a_real_process_prints_one_line_and_exits_2(place):
    f = place / "g.yaml"
    f.write_text("objectives: [ga]\nseeds: [\"abc\"]\n")
    before = _tree(place)
    r = subprocess.run([sys.executable, "-m", "tueval.cli", "sweep", str(f), "--dry-run", "--workdir",
                        str(place / "work")], capture_output=True, text=True, cwd=place, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "g.yaml" in line and "line 2" in line and "'seed'" in line
    assert _tree(place) == before


@pytest.mark.parametrize("field,value", [
    ("lr", 0), ("lr", math.nan), ("lr", math.inf), ("lr", "1e-3"), ("epochs", 0), ("epochs", 1.5),
    ("batch_size", 0), ("clip", -1), ("weight_decay", -5), ("weight_decay", math.inf), ("ratio", 0),
    ("ratio", 1.5), ("seed", "abc"), ("seed", 1.5), ("seed", True), ("ckpt_every", 0),
    ("forget_split", "../../etc"), ("forget_split", "forget100"), ("snapshot_steps", (0,)), ("mode", "sharp"),
    ("control", "bogus"), ("normaliser", "max"), ("generate", "yes"), ("objective_params", [1]),
])
def test_python_api_refuses_bad_fields(field, value):
    with pytest.raises(SpecError, match=f"'{field}'"):
        RunSpec(**{field: value})
    with pytest.raises(SpecError, match=f"'{field}'"):
        RunSpec.from_dict({field: value})


def test_python_api_checks_names_through_the_registries():
    from tueval.spec import resolve_spec
    from tueval.sweep import expand_grid

    with pytest.raises(SpecError, match="Valid names"):
        resolve_spec("nope")
    with pytest.raises(SpecError, match="unknown setting"):
        resolve_spec("npo", objective_params={"bta": 1})
    with pytest.raises(SpecError, match="unknown run-spec field"):
        RunSpec.from_dict({"lrr": 1})
    with pytest.raises(SpecError, match="empty grid"):
        expand_grid({})
    with pytest.raises(SpecError, match="Valid names"):
        expand_grid({"scorers": ["nope"]})
