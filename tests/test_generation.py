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


def _plant_never_stopping(model, tok, phrase: str, delay: int):
    """A model that never emits EOS: after its first answer token it says ``#`` until step ``delay``, then ``phrase``
    over and over (forced logits on one-token forwards, i.e. generation steps; prompt and teacher-forced passes
    are the model's own)."""
    filler = tok("#", add_special_tokens=False)["input_ids"]
    words = tok(phrase, add_special_tokens=False)["input_ids"]
    assert len(filler) == 1 and tok.eos_token_id not in words
    state = {"t": 0}

    def pre(mod, args, kwargs):
        ids = kwargs.get("input_ids")
        state["t"] = 0 if ids.shape[1] > 1 else state["t"] + 1

    def post(mod, inp, out):
        t = state["t"]
        if t == 0:
            return out
        tok_id = filler[0] if t < delay else words[(t - delay) % len(words)]
        out = out.clone()
        out[:, -1] = -1e4
        out[:, -1, tok_id] = 1e4
        return out

    model.register_forward_pre_hook(pre, with_kwargs=True)
    model.lm_head.register_forward_hook(post)
    return model


def test_model_utility_of_a_model_that_never_stops_uses_200_tokens(tiny_model, tiny_tokenizer, toy_examples):
    """TOFU generates up to 200 new tokens: on a model that never emits EOS and says the answers' words only after
    80 tokens, model utility equals a reference built from transformers' generate with a 200-token cap and
    rouge-score, and a 64-token cap would give another (zero) utility."""
    from tueval.evaluation.generation import DEFAULT_MAX_NEW_TOKENS
    from tueval.evaluation.tofu import evaluate_examples
    from tueval.evaluation.tofu_aggregate import COMPONENTS, model_utility, utility_components
    from scipy.stats import hmean

    assert DEFAULT_MAX_NEW_TOKENS == 200
    model = _plant_never_stopping(tiny_model, tiny_tokenizer, " was born in Lisbon writes novels", delay=80)
    sets = {"retain": toy_examples[4:], "real_authors": toy_examples[:4], "world_facts": toy_examples[2:6]}
    tables = {k: evaluate_examples(model, tiny_tokenizer, v, k) for k, v in sets.items()}
    assert all(len(g[1]) > 0 for t in tables.values() for g in t["generated_text"])
    comps = utility_components(tables)
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    ref = {}
    for k, exs in sets.items():
        texts = [tiny_tokenizer.decode(r, skip_special_tokens=True).strip()
                 for r in _hf_generate(model, tiny_tokenizer, [e.question for e in exs], 200)]
        assert all(len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) >= 190 for t in texts)
        ref[f"{k}_rougeL"] = float(np.mean([sc.score(e.answer, t)["rougeL"].recall for e, t in zip(exs, texts)]))
        ref[f"{k}_prob"], ref[f"{k}_truth_ratio"] = comps[f"{k}_prob"], comps[f"{k}_truth_ratio"]
    assert all(ref[f"{k}_rougeL"] > 0 for k in sets)
    assert model_utility(comps) == pytest.approx(float(hmean([ref[c] for c in COMPONENTS])), rel=1e-12)
    short = {k: evaluate_examples(model, tiny_tokenizer, v, k, max_new_tokens=64) for k, v in sets.items()}
    assert model_utility(utility_components(short)) == 0.0


def test_max_new_tokens_is_a_checked_run_field_outside_the_hash_at_its_default():
    from tueval.errors import SpecError
    from tueval.spec import RunSpec

    assert RunSpec().max_new_tokens == 200
    assert "max_new_tokens" not in RunSpec().hash_dict()
    assert RunSpec(max_new_tokens=64).hash_dict()["max_new_tokens"] == 64
    for bad in (0, -1, 2.5, "64"):
        with pytest.raises(SpecError, match="max_new_tokens"):
            RunSpec(max_new_tokens=bad)
