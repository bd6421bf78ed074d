"""Greedy generation (a KV-cache loop that drops finished rows) against transformers' generate, and ROUGE against
rouge-score."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer

from tueval.data.format import prompt_text
from tueval.evaluation.generation import (cut_at_eos, generate_answers, greedy_tokens, lcs_length, left_pad,
                                          rouge_recall, rouge_tokens)


def _sharpen(model, seed: int = 1, scale: float = 0.3) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():  # a random model with peaked distributions: generations differ between prompts
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, scale)


def _hf_generate(model, tok, questions, max_new_tokens):
    enc = tok([prompt_text(q) for q in questions], add_special_tokens=True)["input_ids"]
    ids, attn = left_pad(enc, tok.pad_token_id)
    with torch.no_grad():
        g = model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=max_new_tokens,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return cut_at_eos(g[:, ids.shape[1]:], tok.eos_token_id)


def _questions(toy_examples):
    return [e.question for e in toy_examples] + ["Who?", "Where and when was the mystery novelist Ana Lopez born?"]


def test_greedy_equals_transformers_generate(tiny_model, tiny_tokenizer, toy_examples):
    _sharpen(tiny_model)
    qs = _questions(toy_examples)
    enc = tiny_tokenizer([prompt_text(q) for q in qs], add_special_tokens=True)["input_ids"]
    ours = greedy_tokens(tiny_model, enc, tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id, 12)
    assert ours == _hf_generate(tiny_model, tiny_tokenizer, qs, 12)


def test_rows_leave_the_batch_when_they_stop(tiny_model, tiny_tokenizer, toy_examples):
    """A model whose EOS logit is boosted for some prompts stops those rows early; the others go on unchanged."""
    _sharpen(tiny_model, seed=3)
    eos = tiny_tokenizer.eos_token_id
    with torch.no_grad():
        tiny_model.lm_head.weight[eos] *= 0  # then raise EOS only where the hidden state's first unit is high
        tiny_model.lm_head.weight[eos, 0] = 4.0
    qs = _questions(toy_examples)
    enc = tiny_tokenizer([prompt_text(q) for q in qs], add_special_tokens=True)["input_ids"]
    ours = greedy_tokens(tiny_model, enc, eos, tiny_tokenizer.pad_token_id, 16, batch_size=4)
    ref = _hf_generate(tiny_model, tiny_tokenizer, qs, 16)
    assert ours == ref
    lengths = {len(r) for r in ref}
    assert len(lengths) > 1 and max(lengths) == 16  # some rows stopped, some ran to the cap


def test_batching_does_not_change_generations(tiny_model, tiny_tokenizer, toy_examples):
    _sharpen(tiny_model)
    qs = _questions(toy_examples)
    assert len({len(tiny_tokenizer(prompt_text(q))["input_ids"]) for q in qs}) > 1  # padding really happens
    batched = generate_answers(tiny_model, tiny_tokenizer, qs, batch_size=8, max_new_tokens=8)
    single = [generate_answers(tiny_model, tiny_tokenizer, [q], batch_size=1, max_new_tokens=8)[0] for q in qs]
    assert batched == single and len(set(batched)) > 1


def test_zero_new_tokens(tiny_model, tiny_tokenizer):
    assert generate_answers(tiny_model, tiny_tokenizer, ["Who?"], max_new_tokens=0) == [""]


def _dp_lcs(a, b) -> int:
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t[-1][-1]


def test_lcs_length_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _dp_lcs(a, b)


def test_rouge_equals_rouge_score():
    rng = random.Random(1)
    words = ["Ana", "Lopez", "was", "born", "in", "Lisbon", "1950", "writes", "writing", "mystery", "novels", "novel",
             "the", "and", "awarded", "awards", "Paris", "!", ",", "running", "runs"]
    pairs = [(" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))),
              " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))) for _ in range(300)]
    pairs += [("", "Ana"), ("Ana", ""), ("", ""), ("!!", "Ana Lopez")]
    gens, refs = [g for g, _ in pairs], [r for _, r in pairs]
    r1, rl = rouge_recall(gens, refs)
    sc = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    want = [sc.score(r, g) for g, r in pairs]
    np.testing.assert_array_equal(r1, [s["rouge1"].recall for s in want])
    np.testing.assert_array_equal(rl, [s["rougeL"].recall for s in want])
    assert list(rouge_tokens("Running, runs!")) == sc._tokenizer.tokenize("Running, runs!")


@pytest.mark.parametrize("cap", [5, 9])
def test_cap_is_honoured(tiny_model, tiny_tokenizer, toy_examples, cap):
    _sharpen(tiny_model)
    eos = tiny_tokenizer.eos_token_id
    tiny_model.lm_head.register_forward_hook(lambda mod, inp, out: out.index_fill(-1, torch.tensor([eos]), -1e9))
    enc = tiny_tokenizer([prompt_text(e.question) for e in toy_examples], add_special_tokens=True)["input_ids"]
    out = greedy_tokens(tiny_model, enc, eos, tiny_tokenizer.pad_token_id, cap)
    assert all(len(r) == cap for r in out)
