"""The lm-eval bridge: MC rows, task export, BOS consistency, accuracy, offline errors, the lm_eval CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tueval.data.schema import Example
from tueval.errors import DataError, SpecError
from tueval.evaluation import lmeval as L

SMALL_CFG = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, max_position_embeddings=256)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (two threads crawl when the cores are shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def untrained(tiny_tokenizer):
    from tueval.models.tiny import TinyModelConfig, build_model

    return build_model(tiny_tokenizer, TinyModelConfig(**SMALL_CFG), seed=0).eval()


@pytest.fixture(scope="module")
def trained(tiny_tokenizer, toy_examples):
    """A tiny model that memorised the eight toy answers (about 1 s)."""
    from tueval.models.tiny import TinyModelConfig, build_model
    from tueval.models.train import TrainConfig, train_model

    m = build_model(tiny_tokenizer, TinyModelConfig(**SMALL_CFG), seed=0)
    res = train_model(m, tiny_tokenizer, toy_examples, TrainConfig(lr=1e-2, batch_size=8, max_epochs=80, min_epochs=10),
                      progress=False)
    assert res.fact_acc > 0.95
    return m.eval()


@pytest.fixture(scope="module")
def toy_tasks(tmp_path_factory, toy_examples):
    """The toy examples exported as lm-eval tasks: forget (4 rows), retain (4 rows), and all 8 as tueval_all_mc."""
    d = tmp_path_factory.mktemp("tasks")
    L.export_tasks(d, {"forget10": [e for e in toy_examples if e.split == "forget"],
                       "retain90": [e for e in toy_examples if e.split == "retain"]})
    L.write_task(d, "tueval_all_mc", L.mc_rows(toy_examples))
    return d


def _read_jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ rows
def test_mc_rows_gold_in_choices_and_deterministic(toy_examples):
    rows = L.mc_rows(toy_examples, seed=0)
    assert len(rows) == len(toy_examples)
    for r, e in zip(rows, toy_examples):
        assert r["id"] == e.id and r["question"] == e.question
        assert len(r["choices"]) == 4 and r["choices"][r["answer"]] == e.answer
        assert sorted(r["choices"]) == sorted([e.answer, *e.perturbed_answers[:3]])
    assert rows == L.mc_rows(toy_examples, seed=0)
    # a row's order depends on (seed, id), not on the other rows
    assert list(reversed(rows)) == L.mc_rows(list(reversed(toy_examples)), seed=0)
    assert len({r["answer"] for r in rows}) > 1
    other = L.mc_rows(toy_examples, seed=1)
    assert [r["choices"] for r in other] != [r["choices"] for r in rows]
    assert all(o["choices"][o["answer"]] == e.answer for o, e in zip(other, toy_examples))


def test_mc_rows_rejects_too_few_or_repeated_distractors(toy_examples):
    e = toy_examples[0]
    few = Example(id="x", subject=e.subject, question=e.question, answer=e.answer,
                  perturbed_answers=e.perturbed_answers[:2])
    with pytest.raises(DataError, match=r"row 1, field 'perturbed_answers'.*'x' has 2 perturbed"):
        L.mc_rows([e, few])
    dup = Example(id="y", subject=e.subject, question=e.question, answer=e.answer,
                  perturbed_answers=[e.answer, *e.perturbed_answers[:2]])
    with pytest.raises(DataError, match="ambiguous"):
        L.mc_rows([dup])
    assert len(L.mc_rows([few], n_choices=3)[0]["choices"]) == 3


# ---------------------------------------------------------------------------------------------- export
def test_exported_tasks_load_in_lm_eval(toy_tasks, toy_examples):
    import yaml

    cfg = yaml.safe_load((toy_tasks / "tueval_forget_mc.yaml").read_text())
    assert cfg["output_type"] == "multiple_choice" and cfg["doc_to_choice"] == "choices"
    assert cfg["doc_to_text"] == "Question: {{question}}\nAnswer:" and cfg["doc_to_target"] == "answer"
    assert [m["metric"] for m in cfg["metric_list"]] == ["acc", "acc_norm"] and cfg["metadata"] == {"version": 1}
    data = Path(cfg["dataset_kwargs"]["data_files"]["test"])
    assert data.is_absolute() and data.exists()
    assert not (toy_tasks / "tueval_utility_mc.yaml").exists()  # no utility splits in the source
    tm = L.task_manager(toy_tasks, include_defaults=False)
    loaded = tm.load(["tueval_forget_mc", "tueval_retain_mc"])["tasks"]
    docs = list(loaded["tueval_forget_mc"].test_docs())
    assert [d["id"] for d in docs] == [e.id for e in toy_examples if e.split == "forget"]
    assert docs[0]["choices"][docs[0]["answer"]] == toy_examples[0].answer
    assert len(list(loaded["tueval_retain_mc"].test_docs())) == 4


def test_export_benchmark_three_tasks(tmp_path):
    from tueval.data.synthetic import SMALL, generate_benchmark

    b = generate_benchmark(SMALL)
    written = L.export_tasks(tmp_path, b)
    assert set(written) == set(L.DEFAULT_TASKS)
    rows = {t: _read_jsonl(tmp_path / f"{t}.jsonl") for t in written}
    forget = b.split("forget10")
    assert [r["id"] for r in rows[L.FORGET_TASK]] == [e.id for e in forget]
    retain_ids = {e.id for e in b.split("retain90")}
    assert len(rows[L.RETAIN_TASK]) == len(forget) and {r["id"] for r in rows[L.RETAIN_TASK]} <= retain_ids
    assert len(rows[L.UTILITY_TASK]) == len(b.split("real_authors")) + len(b.split("world_facts"))
    assert all(len(r["choices"]) == 4 and 0 <= r["answer"] < 4 for t in rows for r in rows[t])
    before = (tmp_path / f"{L.RETAIN_TASK}.jsonl").read_text()
    L.export_tasks(tmp_path, b)  # the retain subset is fixed
    assert (tmp_path / f"{L.RETAIN_TASK}.jsonl").read_text() == before


def test_wmdp_task_from_rows(tmp_path, untrained, tiny_tokenizer):
    src = tmp_path / "bio.jsonl"
    rows = [{"question": "Which city is in Portugal?", "choices": ["Lisbon", "Paris", "Rome", "Seoul"], "answer": 0},
            {"id": "q2", "question": "Which year is odd?", "choices": ["1950", "1962", "1977", "1990"], "answer": "C"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    y = L.wmdp_task_from_rows(src, "my_bio", tmp_path / "tasks")
    out = _read_jsonl(y.with_suffix(".jsonl"))
    assert [r["answer"] for r in out] == [0, 2] and out[1]["id"] == "q2"
    res = L.run_lmeval(untrained, tiny_tokenizer, tasks="my_bio", include_path=tmp_path / "tasks")
    assert res["my_bio"]["n"] == 2 and 0.0 <= res["my_bio"]["acc"] <= 1.0
    y2 = L.wmdp_task_from_rows(src, "my_bio_letters", tmp_path / "tasks", style="letters")
    assert "A. {{choices[0]}}" in y2.read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": 5}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, row 1, field 'answer'"):
        L.wmdp_task_from_rows(bad, "bad", tmp_path / "tasks")
    with pytest.raises(SpecError, match="invalid task name"):
        L.wmdp_task_from_rows(src, "../evil", tmp_path / "tasks")


# ------------------------------------------------------------------------------------------------ BOS
def _own_choice_loglik(model, tok, question: str, choices: list[str]) -> torch.Tensor:
    """Sum of log p(" " + choice tokens | prompt) with the training tokenisation (EOS excluded)."""
    from tueval.data.collate import tokenize_pairs
    from tueval.tokens import token_logprobs

    b = tokenize_pairs(tok, [question] * len(choices), choices)
    with torch.no_grad():
        lp = token_logprobs(model(**b.model_inputs()).logits, b.input_ids)
    mask = b.answer_mask.clone()
    mask[torch.arange(len(choices)), b.attention_mask.sum(1) - 1] = False  # drop EOS: lm-eval does not score it
    return (lp * mask).sum(1)


def test_lm_eval_scores_training_tokens_with_one_bos(trained, tiny_tokenizer, toy_examples, toy_tasks, tmp_path):
    from tueval.data.format import continuation_text, prompt_text
    from tueval.models.load import save_model

    tok, e = tiny_tokenizer, toy_examples[0]
    lm = L._hflm(trained, tok, 8, "cpu")
    ctx, cont = lm._encode_pair(prompt_text(e.question), continuation_text(e.answer))
    assert ctx == tok(prompt_text(e.question), add_special_tokens=True)["input_ids"]
    assert ctx[0] == tok.bos_token_id and ctx.count(tok.bos_token_id) == 1
    assert cont == tok(continuation_text(e.answer), add_special_tokens=False)["input_ids"]

    model_dir = save_model(trained, tok, tmp_path / "m")
    for model in (trained, model_dir):  # in memory and from a saved folder
        raw = L.simple_evaluate_offline(model, tok if model is trained else None, tasks=["tueval_forget_mc"],
                                        include_path=toy_tasks, log_samples=True)
        samples = raw["samples"]["tueval_forget_mc"]
        assert len(samples) == 4
        for s in samples:
            theirs = torch.tensor([r[0] for r in s["filtered_resps"]])
            ours = _own_choice_loglik(trained, tok, s["doc"]["question"], s["doc"]["choices"])
            torch.testing.assert_close(theirs, ours.double().float(), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------- accuracy
def test_trained_model_beats_untrained(trained, untrained, tiny_tokenizer, toy_tasks):
    trained.train()  # run_lmeval evaluates in eval mode and restores the mode
    rng = torch.get_rng_state()
    res = L.run_lmeval(trained, tiny_tokenizer, tasks=["tueval_all_mc"], include_path=toy_tasks, batch_size=16)
    assert trained.training and torch.equal(rng, torch.get_rng_state())
    trained.eval()
    base = L.run_lmeval(untrained, tiny_tokenizer, tasks=["tueval_all_mc"], include_path=toy_tasks)
    row = res["tueval_all_mc"]
    assert set(row) >= {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n"} and row["n"] == 8
    assert row["acc"] >= 0.875 and row["acc"] > base["tueval_all_mc"]["acc"]
    lim = L.run_lmeval(trained, tiny_tokenizer, tasks="tueval_forget_mc,tueval_retain_mc", include_path=toy_tasks,
                       limit=2)
    assert {t: r["n"] for t, r in lim.items()} == {"tueval_forget_mc": 2, "tueval_retain_mc": 2}
    with pytest.raises(SpecError, match="needs its tokenizer"):
        L.run_lmeval(trained, None, tasks=["tueval_all_mc"], include_path=toy_tasks)


def test_installed_task_without_data_gives_clear_error(untrained, tiny_tokenizer, toy_tasks):
    with pytest.raises(SpecError) as ei:
        L.run_lmeval(untrained, tiny_tokenizer, tasks=["wmdp_bio"], include_path=toy_tasks)
    msg = str(ei.value)
    assert "'wmdp_bio'" in msg and "'cais/wmdp'" in msg and "not available offline" in msg and "--from-wmdp" in msg
    with pytest.raises(SpecError, match=r"unknown lm-eval task 'wmdp_bioo' \(did you mean wmdp_bio"):
        L.run_lmeval(untrained, tiny_tokenizer, tasks=["wmdp_bioo"], include_path=toy_tasks)


# ---------------------------------------------------------------------------------------- lm_eval CLI
def test_lm_eval_cli_matches_run_lmeval(untrained, tiny_tokenizer, toy_tasks, tmp_path):
    """The documented lm_eval command, run as a subprocess, reports what run_lmeval reports."""
    from tueval.models.load import save_model

    model_dir = save_model(untrained, tiny_tokenizer, tmp_path / "model")
    exe = str(Path(sys.executable).parent / "lm_eval")
    cmd = L.lm_eval_cli_command(model_dir, toy_tasks, ["tueval_all_mc"], batch_size=8, output_path=tmp_path / "out",
                                executable=exe)
    assert cmd.startswith("HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1") and "add_bos_token=True" in cmd
    proc = subprocess.run(cmd + " --log_samples", shell=True, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = json.loads(sorted((tmp_path / "out").rglob("results_*.json"))[-1].read_text())["results"]["tueval_all_mc"]
    ours = L.simple_evaluate_offline(model_dir, tasks=["tueval_all_mc"], include_path=toy_tasks, log_samples=True)
    flat = L.flatten_results(ours)["tueval_all_mc"]
    assert cli["acc,none"] == pytest.approx(flat["acc"]) and cli["acc_norm,none"] == pytest.approx(flat["acc_norm"])
    cli_samples = [json.loads(x) for x in sorted((tmp_path / "out").rglob("samples_tueval_all_mc_*.jsonl"))[-1]
                   .read_text().splitlines()]
    theirs = torch.tensor([[float(r[0]) for r in s["filtered_resps"]] for s in sorted(cli_samples,
                                                                                      key=lambda s: s["doc_id"])])
    mine = torch.tensor([[r[0] for r in s["filtered_resps"]] for s in ours["samples"]["tueval_all_mc"]])
    torch.testing.assert_close(theirs, mine, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------------------- tueval CLI
@pytest.fixture(scope="module")
def fake_workdir(tmp_path_factory, untrained, tiny_tokenizer):
    """A workdir with the SMALL benchmark and an untrained 'target' model (plumbing only)."""
    from tueval.data.benchmark import write_benchmark
    from tueval.data.synthetic import SMALL, generate_benchmark
    from tueval.io import write_json
    from tueval.models.load import save_model

    root = tmp_path_factory.mktemp("work")
    write_benchmark(generate_benchmark(SMALL), root / "benchmark")
    save_model(untrained, tiny_tokenizer, root / "models" / "target")
    write_json(root / "prepare.json", {"paths": {"benchmark": "benchmark", "target": "models/target"},
                                       "profile": {"forget_split": "forget10"}})
    return root


def test_tueval_lmeval_cli(fake_workdir, capsys, tmp_path):
    from tueval.cli import main

    w = str(fake_workdir)
    assert main(["lmeval", "--export", str(tmp_path / "t"), "--workdir", w]) == 0
    assert sorted(p.stem for p in (tmp_path / "t").glob("*.yaml")) == sorted(L.DEFAULT_TASKS)
    capsys.readouterr()
    assert main(["lmeval", "--model", "target", "--workdir", w, "--tasks", "tueval_forget_mc,tueval_utility_mc",
                 "--limit", "3", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {t: r["n"] for t, r in out["results"].items()} == {"tueval_forget_mc": 3, "tueval_utility_mc": 3}
    stored = json.loads((fake_workdir / "lmeval" / "target" / "results.json").read_text())
    assert stored["results"] == out["results"] and "lm_eval --model hf" in stored["command"]
    assert main(["lmeval", "--model", "target", "--workdir", w, "--print-command"]) == 0
    assert "--include_path" in capsys.readouterr().out
    assert main(["lmeval", "--workdir", w]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(["lmeval", "--from-wmdp", "x.jsonl", "--export", str(tmp_path)]) == 2
    assert "--task-name" in capsys.readouterr().err


def test_lmeval_refuses_pickle_weights_before_running(fake_workdir, untrained, tiny_tokenizer, tmp_path, capsys):
    """lm-eval's loader would unpickle pytorch_model.bin (and run what it holds): tueval hands lm-eval safetensors
    folders only, as `tueval evaluate` does, and says so before any task is exported or run."""
    from tueval.cli import main
    from tueval.errors import ModelLoadError
    from tueval.models.load import save_model

    d = save_model(untrained, tiny_tokenizer, tmp_path / "pickled")
    torch.save(untrained.state_dict(), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    before = sorted(p.name for p in fake_workdir.rglob("*"))
    for extra in ([], ["--print-command"]):
        rc = main(["lmeval", "--model", str(d), "--workdir", str(fake_workdir), "--tasks", "tueval_forget_mc",
                   *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and str(d) in err and "pickle" in err, err
    assert sorted(p.name for p in fake_workdir.rglob("*")) == before
    with pytest.raises(ModelLoadError, match="pickle"):
        L.run_lmeval(d, tasks=["tueval_forget_mc"])


def test_lmeval_quiet_prints_nothing_but_its_result(fake_workdir, tmp_path, capfd, monkeypatch):
    """--quiet: no progress bar and no message from the git look-up lm-eval makes (run outside a git checkout);
    without it, lm-eval's bars show and git still stays silent."""
    from tueval.cli import main

    monkeypatch.chdir(tmp_path)  # not a git repository
    argv = ["lmeval", "--model", "target", "--workdir", str(fake_workdir), "--tasks", "tueval_forget_mc",
            "--limit", "2"]
    assert main(argv + ["--quiet"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and "tueval_forget_mc" in out
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "fatal" not in err and "%|" in err
