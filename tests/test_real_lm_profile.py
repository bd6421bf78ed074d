"""The real-LM profile (``tueval demo --profile smollm2``) runs the suite, here on a tiny chat model standing in
for SmolLM2 (the tiny size: a handful of people, one finetuning epoch)."""
from __future__ import annotations

import json

import pytest

from user_setup import tiny_model_folders


@pytest.fixture(scope="module")
def profile_run(tmp_path_factory):
    from tueval.data.sources.synthetic import benchmark_config
    from tueval.data.synthetic import generate_benchmark
    from tueval.real_lm import SIZES, run_smollm2_demo

    root = tmp_path_factory.mktemp("smollm2_profile")
    s = SIZES["tiny"]
    bench = generate_benchmark(benchmark_config(profile="small", n_people=s["people"],
                                                n_holdout_people=s["holdout_people"],
                                                n_utility_people=s["utility_people"], n_world_facts=s["world_facts"]))
    texts = [t for e in bench.split("all") for t in (e.question, e.answer, e.paraphrased_answer, *e.perturbed_answers)]
    base = tiny_model_folders(root, texts, names=("base",), chat=True, vocab=400)["base"]
    run_smollm2_demo(root / "w", root / "reports", quiet=True, base=base, size="tiny", analyses=("alignment",),
                     seeds=(0,))
    return root


def test_profile_finetunes_both_models_in_the_chat_format(profile_run):
    from tueval.workdir import Workdir

    wd = Workdir(profile_run / "w")
    m = wd.manifest
    assert m["train"]["target"]["source"] == "finetuned" and m["train"]["retain"]["source"] == "finetuned"
    assert m["prompt"]["chat"] is True and m["prompt"]["special_tokens"] == "exclude"
    assert "n_train_examples" in json.loads((wd.path("retain") / "meta.json").read_text())
    target_n = json.loads((wd.path("target") / "meta.json").read_text())["n_train_examples"]
    retain_n = json.loads((wd.path("retain") / "meta.json").read_text())["n_train_examples"]
    assert retain_n < target_n, "the retain model never sees the forget split"


def test_profile_excludes_chat_markup_from_selection(profile_run):
    from tueval.analysis.forget import load_forget
    from tueval.workdir import Workdir

    wd = Workdir(profile_run / "w")
    data = load_forget(wd, 4)
    end = data.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert (data.batch.labels == end).any(), "the answers end with the end-of-turn token"
    assert not (data.batch.answer_mask & (data.batch.input_ids == end)).any()


def test_profile_writes_its_reports(profile_run):
    rep = profile_run / "reports"
    assert (rep / "alignment" / "report.md").is_file() and (rep / "foundation" / "report.md").is_file()
    t = json.loads((rep / "demo_timings.json").read_text())
    assert t["profile"] == "smollm2" and t["timings"]["total_s"] > 0


def test_the_example_config_is_the_profiles():
    from pathlib import Path

    import yaml

    from tueval.real_lm import CONFIG, SIZES

    example = yaml.safe_load((Path(__file__).parent.parent / "examples" / "smollm2.yaml").read_text())
    assert example == yaml.safe_load(CONFIG.format(base="SMOLLM2_GGUF", **SIZES["full"]))
