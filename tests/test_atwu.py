"""ATWU learns from retain conflict: on a planted benchmark where the retain set shares some answer tokens (in the
same context) with the forget set, the scorer trained alongside GradDiff ranks those tokens below the
forget-specific ones; with a learning rate too small to learn, its weights stay flat."""
from __future__ import annotations

import pytest
import torch

from tueval.data.collate import Batch
from tueval.forward import model_forward
from tueval.objectives import make_objective
from tueval.scoring import ScoringContext, make_scorer, weight_stats
from tueval.weighting import WeightingSpec, apply_weighting

BOS, SEP, K, C, EOS = 1, 2, 3, 4, 5
N = 8
#: answer positions 3, 4: forget-specific fact tokens; 5, 6: the tokens K, C every retain answer ends with too
SPECIFIC, CONFLICT = (3, 4), (5, 6)


def _batch(rows: list[list[int]], prompt_len: int = 3) -> Batch:
    ids = torch.tensor(rows)
    ans = torch.zeros(ids.shape, dtype=torch.bool)
    ans[:, prompt_len:] = True
    return Batch(ids, torch.ones_like(ids), torch.where(ans, ids, torch.full_like(ids, -100)), ans,
                 torch.zeros_like(ans), [f"e{i}" for i in range(len(rows))], torch.full((len(rows),), prompt_len))


def _planted():
    """Forget: question token q_i, answer (x_i, y_i, K, C, EOS); retain: its own question and facts, then the same
    K, C, EOS. A tiny Llama memorises both before unlearning."""
    from transformers import LlamaConfig, LlamaForCausalLM

    forget = _batch([[BOS, 10 + i, SEP, 20 + i, 30 + i, K, C, EOS] for i in range(N)])
    retain = _batch([[BOS, 40 + i, SEP, 50 + i, 56 + i % 4, K, C, EOS] for i in range(N)])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=16, tie_word_embeddings=True)
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg)
    both = _batch(forget.input_ids.tolist() + retain.input_ids.tolist())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        out = model_forward(model, both)
        loss = -(out.logp * both.answer_mask).sum() / both.answer_mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.05  # memorised
    return model, forget, retain


def _unlearn(model, forget, retain, scorer_lr: float, steps: int = 40):
    """GradDiff (alpha 6, gamma 4) with ATWU's soft weights, the scorer updated after every model step."""
    obj = make_objective("graddiff", {"gamma": 4.0, "alpha": 6.0, "normaliser": "tokens"})
    sc = make_scorer("atwu_proto", {"lr": scorer_lr, "every": 1})
    sc.set_run_steps(steps)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ctx = ScoringContext()
    for step in range(steps):
        ctx.step = step
        out = model_forward(model, forget, hidden=True)
        ctx.outputs = out
        w = apply_weighting(WeightingSpec(mode="soft"), sc.score(model, forget, ctx), forget.answer_mask).weights
        loss = obj(model, forget, retain, w, forget_out=out)
        opt.zero_grad()
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sc.update(model, forget, ctx, outputs=out.detach())
    with torch.no_grad():
        out = model_forward(model, forget, hidden=True)
        w = sc.score(model, forget, ScoringContext(outputs=out))
    return w, -out.logp, sc


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    return _planted()


def test_atwu_ranks_retain_conflicting_tokens_lower(planted):
    model, forget, retain = planted
    state = {k: v.clone() for k, v in model.state_dict().items()}
    w, nll, sc = _unlearn(model, forget, retain, scorer_lr=10.0)
    nw = w * forget.answer_mask.sum(-1, keepdim=True)
    spec, conf = nw[:, list(SPECIFIC)].mean(-1), nw[:, list(CONFLICT)].mean(-1)
    # the retain term holds the shared tokens' loss down while the specific ones rise ...
    assert float(nll[:, list(CONFLICT)].mean()) < 1.0 < float(nll[:, list(SPECIFIC)].mean())
    # ... so the scorer, ascending the weighted forget loss, moves weight to the specific tokens
    assert float((spec - conf).mean()) > 0.2
    assert float((spec > conf).float().mean()) >= 0.75
    assert weight_stats(w, forget.answer_mask)["nw_spread"] > 0.2 and sc.n_updates == 40
    # with a learning rate far too small to learn, the weights stay flat (the ranking above is learned)
    model.load_state_dict(state)
    w0, _, _ = _unlearn(model, forget, retain, scorer_lr=1e-4)
    assert weight_stats(w0, forget.answer_mask)["nw_spread"] < 0.01


def test_weight_stats_by_hand():
    m = torch.tensor([[True, True, True, False], [True, True, False, False]])
    w = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0]])
    s = weight_stats(w, m)
    assert s["nw_spread"] == pytest.approx(((1.5 - 0.75) + 0.0) / 2)
    assert (s["nw_min"], s["nw_max"]) == (pytest.approx(0.75), pytest.approx(1.5))
    h0 = -(0.5 * torch.log(torch.tensor(0.5)) + 2 * 0.25 * torch.log(torch.tensor(0.25)))
    assert s["entropy"] == pytest.approx(float((h0 + torch.log(torch.tensor(2.0))) / 2), rel=1e-6)
    assert s["entropy_norm"] == pytest.approx(float((h0 / torch.log(torch.tensor(3.0)) + 1.0) / 2), rel=1e-6)
