"""README's quick start for a TOFU user, as written: TOFU's files (the utility sets are TOFU's own, from
tests/data/tofu_format), two local HF models, the minimal config, then the commands from prepare to a controls
report."""
from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from user_setup import MINIMAL_CONFIG, texts_of, tiny_model_folders, tofu_rows, write_jsonl

TOFU_DATA = Path(__file__).parent / "data" / "tofu_format"


def tueval(cwd: Path, *argv: str) -> SimpleNamespace:
    """``tueval ARGV`` run in ``cwd``, in this process (the console script's ``main``): its stdout and stderr."""
    from tueval.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    finally:
        os.chdir(here)
    assert rc == 0, f"tueval {' '.join(argv)}: {err.getvalue()[-2000:]}"
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """A TOFU user's folder, prepared from the minimal config (``tueval prepare --config my.yaml``)."""
    root = tmp_path_factory.mktemp("quickstart")
    d = root / "data" / "tofu"
    forget, retain, hold = tofu_rows(6, "forget"), tofu_rows(12, "retain"), tofu_rows(6, "hold", perturbed=False)
    write_jsonl(d / "forget10.jsonl", forget)
    write_jsonl(d / "retain90.jsonl", retain)
    write_jsonl(d / "holdout10.jsonl", hold)
    utility = []
    for name in ("real_authors_perturbed", "world_facts_perturbed"):
        rows = [json.loads(line) for line in (TOFU_DATA / f"{name}.json").read_text().splitlines()[:8]]
        write_jsonl(d / f"{name}.jsonl", rows)
        utility += rows
    tiny_model_folders(root / "models", texts_of(forget + retain + hold + utility), names=("full", "retain90"))
    (root / "my.yaml").write_text(MINIMAL_CONFIG)
    tueval(root, "prepare", "--config", "my.yaml", "--workdir", "work_tofu")
    return root


def test_prepare_reads_tofus_files_and_both_models(quickstart):
    from tueval.workdir import Workdir

    wd = Workdir(quickstart / "work_tofu")
    assert (wd.forget_split, wd.retain_split, wd.holdout_split) == ("forget10", "retain90", "holdout10")
    assert len(wd.benchmark.split("real_authors")) == 8 and len(wd.benchmark.split("world_facts")) == 8
    assert wd.ground_truths == ("counterfactual",)
    for which in ("target", "retain"):
        assert (wd.eval_dir(which) / "forget.parquet").is_file()


def test_evaluate_prints_tofus_metrics(quickstart):
    out = tueval(quickstart, "evaluate", "target", "--workdir", "work_tofu").stdout
    assert "forget quality" in out and "model utility" in out and "privleak" in out


@pytest.mark.slow
def test_controls_report(quickstart):
    tueval(quickstart, "analyze", "controls", "--workdir", "work_tofu", "--profile", "quick", "--seeds", "2",
           "--quiet")
    import pandas as pd

    folder = quickstart / "reports" / "controls"
    v = pd.read_csv(folder / "verdicts.csv")
    methods = {"ga/tokenunlearn-hard0.3", "graddiff/etw-soft"}  # the quick grid's presets
    assert set(v["method"]) == methods, v["method"].unique()
    assert set(v["decision"]) <= {"better", "not better", "worse"} and v["estimate"].notna().all()
    text = (folder / "report.md").read_text()
    assert all(m in text for m in methods) and "matched" in text
