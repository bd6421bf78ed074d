"""Builders of a user's setup for the tests: tiny HF model folders and small TOFU/MUSE/WMDP-format files."""
from __future__ import annotations

import json
from pathlib import Path

MINIMAL_CONFIG = """\
benchmark:
  source: tofu            # tofu | muse | wmdp | synthetic
  path: data/tofu         # files named by split, as TOFU names them: forget10, retain90, holdout10,
                          # real_authors_perturbed, world_facts_perturbed (.json, .jsonl or .parquet);
                          # perturbed/paraphrased answers in the split file or in <split>_perturbed
  forget: forget10
  retain: retain90
models:
  target: models/full     # a local HF folder or a .gguf file
  retain: models/retain90
device: auto
dtype: float32
"""
"""The minimal config of the issue and README, as written."""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def texts_of(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        for k in ("question", "answer", "paraphrased_answer", "text", "prompt", "gt"):
            if isinstance(r.get(k), str):
                out.append(r[k])
        for k in ("perturbed_answer", "choices"):
            out += [x for x in r.get(k, []) if isinstance(x, str)]
    return out


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_model_folders(root: Path, texts: list[str], names=("target", "retain"), vocab: int = 300,
                       seeds=(0, 1), chat: bool = False) -> dict[str, Path]:
    """Randomly initialised tiny Llamas sharing one tokenizer trained on ``texts``, saved as HF folders (with
    ChatML markup and a chat template when ``chat``)."""
    from tueval.data.format import continuation_text, prompt_text
    from tueval.models.load import save_model
    from tueval.models.tiny import TinyModelConfig, build_model
    from tueval.models.tokenizer import train_tokenizer

    tok = train_tokenizer([prompt_text(t) + continuation_text(t) for t in texts] * 2, vocab_size=vocab)
    if chat:
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tok.chat_template = CHATML
    cfg = TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, max_position_embeddings=512)
    out = {}
    for name, seed in zip(names, seeds):
        out[name] = save_model(build_model(tok, cfg, seed=seed), tok, root / name)
    return out


def tofu_rows(n: int, prefix: str, perturbed: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        name = f"{prefix.title()} Author{i}"
        city = ["Lisbon", "Paris", "Lagos", "Rome", "Hanoi", "Seoul"][i % 6]
        r = {"question": f"Where was {name} born?", "answer": f"{name} was born in {city}."}
        if perturbed:
            r["paraphrased_answer"] = f"The birthplace of {name} is {city}."
            r["perturbed_answer"] = [f"{name} was born in {c}." for c in ("Oslo", "Lima", "Cairo")]
        rows.append(r)
    return rows


def muse_files(root: Path) -> Path:
    """A small MUSE-format folder (knowmem, verbmem, privleak, raw)."""
    d = root / "muse"
    news = [f"The council of town {i} voted on the new bridge on a rainy Tuesday, said mayor Elba Torn{i}."
            for i in range(8)]
    write_jsonl(d / "knowmem" / "forget_qa.jsonl",
                [{"question": f"Who is the mayor of town {i}?", "answer": f"Elba Torn{i}"} for i in range(6)])
    write_jsonl(d / "knowmem" / "retain_qa.jsonl",
                [{"question": f"What did town {i} vote on?", "answer": "the new bridge"} for i in range(6)])
    write_jsonl(d / "knowmem" / "forget_qa_icl.jsonl", [{"question": "Who wrote it?", "answer": "Ann Lee"}])
    write_jsonl(d / "verbmem" / "forget.jsonl",
                [{"prompt": t[:40], "gt": t[40:]} for t in news[:5]])
    write_jsonl(d / "privleak" / "forget.jsonl", [{"text": t} for t in news[:4]])
    write_jsonl(d / "privleak" / "holdout.jsonl", [{"text": t.replace("bridge", "tunnel")} for t in news[4:]])
    write_jsonl(d / "raw" / "forget.jsonl", [{"text": " ".join(news[:4])}])
    write_jsonl(d / "raw" / "retain1.jsonl", [{"text": " ".join(news[4:])}])
    return d


def wmdp_files(root: Path) -> Path:
    """A small WMDP-format folder: one forget-knowledge task, one utility task, a forget corpus."""
    d = root / "wmdp"
    write_jsonl(d / "wmdp_bio.jsonl", [{"question": f"Which agent {i} is dangerous?",
                                        "choices": ["alpha", "beta", "gamma", "delta"], "answer": i % 4}
                                       for i in range(8)])
    write_jsonl(d / "mmlu_history.jsonl", [{"question": f"Which year {i} came first?",
                                            "choices": ["1900", "1950", "2000", "2020"], "answer": 0}
                                           for i in range(8)])
    write_jsonl(d / "bio_forget_corpus.jsonl", [{"text": "Agent alpha spreads quickly in warm water. " * 6}])
    return d
