"""Scorers: the contract for every registered scorer, TokenUnlearn's batched masking, ETW, ATWU, TIF,
probability scorers and controls."""
import copy
import json
import re
from types import SimpleNamespace

import pytest
import torch

from tueval.data.collate import collate
from tueval.errors import DataError, SpecError
from tueval.objectives import model_forward
from tueval.scoring import (SCORERS, ScoringContext, TokenUnlearnScorer, check_scorer, knowledge_signal,
                            make_scorer, minmax_per_sequence, question_mask, tif_annotations)
from tueval.tokens import token_entropy
from tueval.weighting import soft_weights


@pytest.fixture()
def ctx(tiny_model, tiny_tokenizer):
    from tueval.models.tiny import TinyModelConfig, build_model

    retain = build_model(tiny_tokenizer, TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                                                         max_position_embeddings=128), seed=1).eval()
    return ScoringContext(ref_model=copy.deepcopy(tiny_model), retain_model=retain, tokenizer=tiny_tokenizer,
                          generator=torch.Generator().manual_seed(0))


def test_every_registered_scorer_conforms(tiny_model, toy_batch, ctx):
    names = SCORERS.names()
    assert set(names) >= {"tokenunlearn", "etw", "etw_static", "atwu_proto", "atwu_sat", "tif", "wga", "satimp",
                          "tnpo", "uniform", "random", "oracle", "anti"}
    variants = [(n, {}) for n in names] + [
        ("tokenunlearn", {"mask": "prompt", "dynamic": True}), ("tif", {"identifier": "ref_masked"}),
        ("atwu_proto", {"normaliser": "sigmoid_mean1"}), ("atwu_proto", {"normaliser": "softmax_logit"}),
        ("anti", {"base": "tokenunlearn", "base_params": {"alpha": 1.0}})]
    for n, params in variants:
        sc = make_scorer(n, params)
        check_scorer(sc, tiny_model, toy_batch, context=ctx)  # shape [B, T], finite on answers, deterministic
        d = sc.describe()
        assert d["name"] == n and d["params"].items() >= params.items() and isinstance(d["static"], bool)


def test_question_mask_hides_only_question_content(toy_batch, tiny_tokenizer, toy_examples):
    hide = question_mask(toy_batch, tiny_tokenizer)
    for i, e in enumerate(toy_examples):
        assert tiny_tokenizer.decode(toy_batch.input_ids[i][hide[i]]).strip() == e.question
        assert not hide[i, 0]  # BOS stays visible
        assert not (hide[i] & toy_batch.answer_mask[i]).any()
    prompt = question_mask(toy_batch, None, "prompt")
    assert (prompt.sum(-1) == toy_batch.prompt_lengths - 1).all()
    assert (hide.sum(-1) < prompt.sum(-1)).all()  # template tokens stay visible
    with pytest.raises(SpecError, match="tokenizer"):
        question_mask(toy_batch, None, "question")


def test_knowledge_signal_batched_equals_one_at_a_time(tiny_model, toy_batch, toy_examples, tiny_tokenizer):
    full = knowledge_signal(tiny_model, toy_batch, question_mask(toy_batch, tiny_tokenizer))
    assert (full[toy_batch.answer_mask] > 0).any()
    for i, e in enumerate(toy_examples):
        single = collate([e], tiny_tokenizer)  # no padding at all
        one = knowledge_signal(tiny_model, single, question_mask(single, tiny_tokenizer))
        n = single.input_ids.shape[1]
        assert torch.equal(single.input_ids[0], toy_batch.input_ids[i, :n])
        assert torch.allclose(one[0], full[i, :n], rtol=0, atol=1e-5), e.id


def test_tokenunlearn_combination_and_minmax(tiny_model, toy_batch, tiny_tokenizer):
    m = toy_batch.answer_mask
    c = ScoringContext(tokenizer=tiny_tokenizer)
    delta, H = TokenUnlearnScorer().signals(tiny_model, toy_batch, c)
    for a in (0.0, 0.5, 1.0):
        phi = TokenUnlearnScorer(alpha=a).score(tiny_model, toy_batch, c)
        expect = a * minmax_per_sequence(delta, m) + (1 - a) * minmax_per_sequence(H, m)
        assert torch.allclose(phi, expect)
        assert phi[m].min() >= 0 and phi[m].max() <= 1
    const = minmax_per_sequence(torch.ones(m.shape), m)
    assert torch.equal(const[m], torch.full_like(const[m], 0.5)) and (const[~m] == 0).all()
    assert TokenUnlearnScorer().static and not TokenUnlearnScorer(dynamic=True).static
    with pytest.raises(SpecError, match="ref_model"):
        TokenUnlearnScorer(dynamic=True).score(tiny_model, toy_batch, c)


def test_etw_entropy_and_weights(tiny_model, toy_batch):
    m = toy_batch.answer_mask
    for T in (1.0, 2.0):
        s = make_scorer("etw", {"temperature": T}).score(tiny_model, toy_batch)
        with torch.no_grad():
            H = token_entropy(model_forward(tiny_model, toy_batch).logits, T)
        assert torch.allclose(s[m], H[m], atol=1e-6)
        w = soft_weights(s, m)
        n = m.sum(-1, keepdim=True)
        assert torch.allclose(w[m], (n * s / (s * m).sum(-1, keepdim=True))[m], rtol=1e-5)
    assert not make_scorer("etw").static and make_scorer("etw_static").static


def test_atwu_learns_and_checkpoints(tiny_model, toy_batch):
    m = toy_batch.answer_mask
    sc = make_scorer("atwu_proto", {"every": 2})
    s0 = sc.score(tiny_model, toy_batch)
    assert torch.allclose(s0.sum(-1), torch.ones(len(m)), atol=1e-5)  # softmax per sequence
    assert torch.allclose(s0[m], (1.0 / m.sum(-1, keepdim=True).float()).expand_as(m)[m])  # zero-init: uniform
    out = model_forward(tiny_model, toy_batch, hidden=True)
    assert not sc.update(tiny_model, toy_batch, ScoringContext(step=1), out)  # only every 2 steps
    for step in (0, 2, 4):
        assert sc.update(tiny_model, toy_batch, ScoringContext(step=step), out)
    s1 = sc.score(tiny_model, toy_batch, ScoringContext(outputs=out))
    assert not torch.allclose(s0, s1)
    nll = -out.logp.detach()
    # ascent moves weight towards high-loss tokens
    assert (s1 * nll * m).sum() > (s0 * nll * m).sum()
    clone = make_scorer("atwu_proto", {"every": 2})
    clone.load_state_dict(sc.state_dict())
    assert torch.equal(clone.score(tiny_model, toy_batch), sc.score(tiny_model, toy_batch))
    sat = make_scorer("atwu_sat").score(tiny_model, toy_batch)
    p5 = out.logp.detach().exp() ** 5
    assert torch.allclose(sat[m], (s0 * p5)[m], rtol=1e-5)


class _PerfectExceptGT(torch.nn.Module):
    """Predicts every next token at top-1 except ground-truth tokens (a model lacking the facts)."""

    def __init__(self, batch, vocab):
        super().__init__()
        self.gt, self.vocab = batch.gt_mask, vocab

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False):
        B, T = input_ids.shape
        nxt = torch.cat([input_ids[:, 1:], input_ids[:, :1]], 1)
        wrong = (nxt + 1) % self.vocab
        gt_next = torch.cat([self.gt[:, 1:], torch.zeros_like(self.gt[:, :1])], 1)
        tgt = torch.where(gt_next, wrong, nxt)
        return SimpleNamespace(logits=torch.nn.functional.one_hot(tgt, self.vocab).float() * 10)


def test_tif_retain_identifier_marks_fact_words(tiny_model, toy_batch, tiny_tokenizer, toy_examples):
    c = ScoringContext(retain_model=_PerfectExceptGT(toy_batch, len(tiny_tokenizer)), tokenizer=tiny_tokenizer)
    s = make_scorer("tif", {"identifier": "retain"}).score(tiny_model, toy_batch, c)
    m = toy_batch.answer_mask
    assert set(s[m].tolist()) <= {0.0, 1.0}
    assert (s[toy_batch.gt_mask] == 1).all()
    last = m.sum(-1) + toy_batch.prompt_lengths - 1
    assert (s[torch.arange(len(m)), last] == 0).all()  # the EOS is general
    for i, e in enumerate(toy_examples):  # unwanted = the whitespace words that contain a fact
        txt = tiny_tokenizer.decode(toy_batch.input_ids[i][s[i] > 0])
        want = [mt.group() for mt in re.finditer(r"\S+", e.answer)
                if any(mt.start() < sp.end and sp.start < mt.end() for sp in e.spans)]
        assert txt.split() == want


def test_tif_annotations_file(tmp_path, toy_examples, tiny_tokenizer, tiny_model):
    e0, e1 = toy_examples[0], toy_examples[1]
    city0 = e0.answer.index("Lisbon")
    words1 = [json.dumps({"word": w, "start": e1.answer.index(w), "end": e1.answer.index(w) + len(w)})
              for w in ("was", "born", "in")]
    rows = [{"question": e0.question, "answer": e0.answer,
             "target_words": [{"word": "Lisbon", "start": city0, "end": city0 + 6}]},
            {"question": e1.question, "answer": e1.answer, "target_words": [], "common_words": words1}]
    p = tmp_path / "forget_tif.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ann = tif_annotations(p)
    assert [(s.start, s.end) for s in ann[0].target_spans] == [(city0, city0 + 6)]
    assert ann[0].common_spans is None and len(ann[1].common_spans) == 3
    batch = collate([e0, e1], tiny_tokenizer)
    s = make_scorer("tif", {"identifier": "annotations", "annotations": str(p)}).score(
        tiny_model, batch, ScoringContext(tokenizer=tiny_tokenizer))
    assert tiny_tokenizer.decode(batch.input_ids[0][s[0] > 0]).strip() == "Lisbon"
    general1 = tiny_tokenizer.decode(batch.input_ids[1][batch.answer_mask[1] & (s[1] == 0)])
    assert general1.replace("</s>", " ").split() == ["was", "born", "in"]  # + the EOS
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"question": "q", "answer": "a b",
                                                             "target_words": [{"word": "c", "start": 5,
                                                                               "end": 9}]}) + "\n")
    with pytest.raises(DataError) as err:
        tif_annotations(bad)
    assert err.value.row == 1 and err.value.field == "target_words" and "bad.jsonl" in str(err.value)


def test_probability_scorers(tiny_model, toy_batch, ctx):
    m = toy_batch.answer_mask
    with torch.no_grad():
        p = model_forward(tiny_model, toy_batch).logp.exp()
    assert torch.allclose(make_scorer("wga").score(tiny_model, toy_batch)[m], p[m], rtol=1e-5)
    sat = make_scorer("satimp", {"beta1": 2.0, "beta2": 1.0}).score(tiny_model, toy_batch)
    assert torch.allclose(sat[m], (p ** 2 * (1 - p))[m], rtol=1e-5)
    # reference == model: w = 2p^b / (2p^b + 1e-5)
    tn = make_scorer("tnpo", {"beta": 1.0}).score(tiny_model, toy_batch, ctx)
    assert torch.allclose(tn[m], (2 * p / (2 * p + 1e-5))[m], rtol=1e-4)
    with pytest.raises(SpecError, match="ref_model"):
        make_scorer("tnpo").score(tiny_model, toy_batch, ScoringContext())


def test_control_scorers(tiny_model, toy_batch):
    m, gt = toy_batch.answer_mask, toy_batch.gt_mask
    assert torch.equal(make_scorer("uniform").score(tiny_model, toy_batch), m.float())
    g = lambda s: ScoringContext(generator=torch.Generator().manual_seed(s))  # noqa: E731
    r = make_scorer("random")
    assert torch.equal(r.score(tiny_model, toy_batch, g(1)), r.score(tiny_model, toy_batch, g(1)))
    assert not torch.equal(r.score(tiny_model, toy_batch, g(1)), r.score(tiny_model, toy_batch, g(2)))
    assert r.static and not make_scorer("random", {"redraw": True}).static
    assert torch.equal(make_scorer("oracle").score(tiny_model, toy_batch), gt.float())
    with pytest.raises(SpecError, match="gt_counterfactual"):
        make_scorer("oracle", {"gt": "counterfactual"}).score(tiny_model, toy_batch)
    cf = m & ~gt
    b2 = copy.copy(toy_batch)
    b2.extras = {"gt_counterfactual": cf}
    assert torch.equal(make_scorer("oracle", {"gt": "counterfactual"}).score(tiny_model, b2), cf.float())
    anti = make_scorer("anti").score(tiny_model, toy_batch)
    assert torch.equal(anti, (m & ~gt).float())
    neg = make_scorer("anti", {"flip": "negate"}).score(tiny_model, toy_batch)
    assert torch.equal(neg[m], -gt[m].float())
    a2 = make_scorer("anti", {"base": "wga"})
    assert not a2.static
    w = make_scorer("wga").score(tiny_model, toy_batch)
    s2 = a2.score(tiny_model, toy_batch)
    i = 0
    assert torch.argmax(torch.where(m[i], s2[i], -1.0)) == torch.argmin(torch.where(m[i], w[i], 2.0))


def test_model_needs_are_declared():
    assert make_scorer("tnpo").needs_ref_model and not make_scorer("wga").needs_ref_model
    assert make_scorer("tokenunlearn", {"dynamic": True}).needs_ref_model
    assert not make_scorer("tokenunlearn").needs_ref_model  # static: the engine passes the reference as model
    assert make_scorer("tif", {"identifier": "retain"}).needs_retain_model
    assert not make_scorer("tif").needs_retain_model  # the default identifier is not privileged
    assert not make_scorer("tif", {"identifier": "annotations", "annotations": "x.jsonl"}).needs_retain_model
    assert make_scorer("anti", {"base": "tnpo"}).needs_ref_model
    assert make_scorer("tif", {"identifier": "retain"}).describe()["needs_retain_model"] is True


def test_unknown_scorer_and_setting():
    with pytest.raises(SpecError) as e:
        make_scorer("tokenunlearning")
    assert "tokenunlearn" in str(e.value) and "etw" in str(e.value)
    with pytest.raises(SpecError, match="unknown setting"):
        make_scorer("etw", {"temp": 2.0})
    with pytest.raises(SpecError, match="alpha"):
        make_scorer("tokenunlearn", {"alpha": 2.0})


def test_static_score_cache_round_trip(tiny_model, toy_batch, toy_examples, tiny_tokenizer):
    from tueval.scoring import gather_answer_scores, split_answer_scores

    c = ScoringContext(tokenizer=tiny_tokenizer)
    sc = make_scorer("tokenunlearn")
    cache = split_answer_scores(sc.score(tiny_model, toy_batch, c), toy_batch)
    sub = collate([toy_examples[5], toy_examples[2]], tiny_tokenizer)  # other order, other padding
    got = gather_answer_scores(cache, sub)
    assert torch.allclose(got, sc.score(tiny_model, sub, c), atol=1e-4)
    assert (got[~sub.answer_mask] == 0).all()
    with pytest.raises(SpecError, match="no cached scores"):
        gather_answer_scores({}, sub)
