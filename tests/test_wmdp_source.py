"""A WMDP-format fixture through ``tueval prepare --config`` and ``tueval evaluate``: lm-eval accuracy on the
forget-knowledge task and on an MMLU-style utility task given as a local file."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from user_setup import texts_of, tiny_model_folders, wmdp_files


@pytest.fixture(scope="module")
def wmdp_workdir(tmp_path_factory):
    from tueval.data.tofu import read_records
    from tueval.prepare_config import prepare_from_config

    root = tmp_path_factory.mktemp("wmdp_user")
    d = wmdp_files(root)
    tiny_model_folders(root / "models", texts_of([r for f in d.glob("*.jsonl") for r in read_records(f)]))
    (root / "wmdp.yaml").write_text(
        "benchmark:\n  source: wmdp\n  path: wmdp\n  tasks: [wmdp_bio]\n  utility: [mmlu_history]\n"
        "  forget: bio_forget_corpus\nmodels: {target: models/target, retain: models/retain}\n")
    return prepare_from_config(root / "wmdp.yaml", root / "w", progress=False, quiet=True)


def test_wmdp_accuracies_by_lm_eval(wmdp_workdir):
    wd = wmdp_workdir
    s = json.loads((wd.eval_dir("target") / "summary.json").read_text())
    assert s["metrics"] == "wmdp" and set(s["wmdp"]) == {"wmdp_bio"} and set(s["utility"]) == {"mmlu_history"}
    assert 0 <= s["forget_accuracy"] <= 1 and 0 <= s["utility_accuracy"] <= 1
    assert s["chance"]["wmdp_bio"] == pytest.approx(0.25)
    t = pd.read_parquet(wd.eval_dir("target") / "forget.parquet")
    assert t.task.tolist() == ["wmdp_bio"] and int(t.n.iloc[0]) == 8
    task = (wd.root / "lmeval" / "tasks" / "wmdp_bio.yaml").read_text()
    assert "A. {{choices[0]}}" in task, "four choices: the official letters prompt"


def test_lmeval_command_runs_the_workdirs_tasks(wmdp_workdir, cli):
    r = cli("lmeval", "--model", "retain", "--tasks", "wmdp_bio,mmlu_history", "--workdir", wmdp_workdir.root,
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    res = out.get("results", out)
    assert {"wmdp_bio", "mmlu_history"} <= set(res)


def test_lmeval_default_tasks_of_a_wmdp_workdir_are_its_question_files(wmdp_workdir, cli):
    r = cli("lmeval", "--model", "retain", "--workdir", wmdp_workdir.root, "--print-command")
    assert r.returncode == 0, r.stderr
    assert "wmdp_bio" in r.stdout and "mmlu_history" in r.stdout and "tueval_forget_mc" not in r.stdout
    assert (wmdp_workdir.root / "lmeval" / "tasks" / "wmdp_bio.yaml").is_file()
