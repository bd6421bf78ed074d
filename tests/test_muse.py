"""A MUSE-format fixture through ``tueval prepare --config`` and ``tueval evaluate``: MUSE's metrics."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from user_setup import muse_files, texts_of, tiny_model_folders


@pytest.fixture(scope="module")
def muse_workdir(tmp_path_factory):
    from tueval.data.tofu import read_records
    from tueval.prepare_config import prepare_from_config

    root = tmp_path_factory.mktemp("muse_user")
    d = muse_files(root)
    texts = texts_of([r for f in d.rglob("*.jsonl") for r in read_records(f)])
    tiny_model_folders(root / "models", texts)
    (root / "muse.yaml").write_text(
        "benchmark: {source: muse, path: muse, chunk_words: 16, max_new_tokens_verbmem: 8, "
        "max_new_tokens_knowmem: 6}\nmodels: {target: models/target, retain: models/retain}\ndevice: cpu\n")
    return prepare_from_config(root / "muse.yaml", root / "w", progress=False, quiet=True)


def test_muse_metrics_of_target_and_retain(muse_workdir):
    wd = muse_workdir
    t = json.loads((wd.eval_dir("target") / "summary.json").read_text())
    r = json.loads((wd.eval_dir("retain") / "summary.json").read_text())
    for k in ("forget_verbmem_rougeL", "forget_knowmem_rougeL", "retain_knowmem_rougeL", "privleak",
              "extraction_strength", "exact_memorization"):
        assert isinstance(t[k], float) and math.isfinite(t[k]), k
        assert 0 <= t[k] <= 1 or k == "privleak"
    assert r["privleak"] == pytest.approx(0.0), "the retain model is its own privleak reference"
    assert t["mia"]["privleak_reference_auc"] == pytest.approx(r["mia"]["mia_min_k"])
    verb = pd.read_parquet(wd.eval_dir("target") / "forget.parquet")
    assert len(verb) == 5 and {"rougeL_f1", "extraction_strength", "generation"} <= set(verb.columns)
    mia = pd.read_parquet(wd.eval_dir("target") / "mia.parquet")
    assert sorted(mia.split.unique()) == ["forget", "holdout"]
    assert wd.ground_truths == ("counterfactual",)


def test_evaluate_cli_reuses_and_prints_muse_metrics(muse_workdir, cli):
    r = cli("evaluate", "target", "--workdir", muse_workdir.root, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["metrics"] == "muse" and "forget_verbmem_rougeL" in s and s["tables"] == sorted(
        ["forget", "knowmem_forget", "knowmem_retain", "mia"])


def test_unlearn_runs_on_a_muse_workdir(muse_workdir):
    from tueval.spec import resolve_spec
    from tueval.unlearn import unlearn

    res = unlearn(resolve_spec("ga", epochs=1, batch_size=4, generate=False), muse_workdir, progress=False)
    assert res.summary["metrics"] == "muse" and math.isfinite(res.summary["exact_memorization"])
    tables = {p.stem for p in (res.path / "eval").glob("*.parquet")}
    assert {"forget", "knowmem_forget", "knowmem_retain", "mia"} <= tables
