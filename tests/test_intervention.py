"""Intervention curves: operators hide tokens, f is the unperturbed answer log-prob at q=0, and on a toy LM where
the GT tokens carry the signal the oracle's MoRF curve falls fastest and ABPC orders oracle > random > anti."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tueval.data.collate import Batch
from tueval.errors import SpecError
from tueval.metrics.intervention import (
    OPERATORS, PerturbationSpec, answer_logprob, k_for_fraction, perturbation_curves,
)
from tueval.tokens import forward_logits, masked_mean, token_logprobs

V, PAD, BOS = 40, 0, 1
FACTS = torch.arange(20, 40)   # fact (GT) token ids
FILLER = torch.arange(3, 20)   # template token ids


class CacheLM(torch.nn.Module):
    """A toy causal LM that knows the answer template from the position ids: where the next token is a repeated
    fact (absolute positions 11-13), p(next = v) is high if v is a fact token visible in the context
    (attention_mask = 1 at positions <= t); elsewhere it predicts uniformly. Hiding the first occurrence of a fact
    lowers the log-prob of the second; filler tokens carry no information."""

    def __init__(self, strength: float = 4.0):
        super().__init__()
        self.strength = strength
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(pad_token_id=PAD, eos_token_id=2)

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        am = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        onehot = torch.nn.functional.one_hot(input_ids, V).float()
        is_fact = (input_ids >= int(FACTS[0])).float() * am.float()
        seen = torch.cumsum(onehot * is_fact[..., None], dim=1) > 0
        pos = torch.arange(input_ids.shape[1]).expand_as(input_ids) if position_ids is None else position_ids
        repeat_slot = ((pos + 1 >= 11) & (pos + 1 <= 13)).float()[..., None]
        return SimpleNamespace(logits=self.strength * seen.float() * repeat_slot + 0 * self.dummy)


def _cache_batch(B=16, seed=0) -> Batch:
    """Prompt [BOS, filler x2]; answer = 3 facts, filler, the same 3 facts again, filler (16 tokens)."""
    g = torch.Generator().manual_seed(seed)
    rows, gts = [], []
    for _ in range(B):
        f = FACTS[torch.randperm(len(FACTS), generator=g)[:3]]
        fl = FILLER[torch.randint(0, len(FILLER), (10,), generator=g)]
        ans = torch.cat([f, fl[:5], f, fl[5:]])
        rows.append(torch.cat([torch.tensor([BOS]), fl[:2], ans]))
        gts.append(torch.cat([torch.zeros(3, dtype=torch.bool), ans >= int(FACTS[0])]))
    ids = torch.stack(rows)
    ansm = torch.zeros_like(ids, dtype=torch.bool)
    ansm[:, 3:] = True
    return Batch(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.where(ansm, ids, -100),
                 answer_mask=ansm, gt_mask=torch.stack(gts), example_ids=[f"e{i}" for i in range(B)],
                 prompt_lengths=torch.full((B,), 3))


@pytest.fixture(scope="module")
def cache_results():
    batch = _cache_batch()
    g = torch.Generator().manual_seed(1)
    oracle = batch.gt_mask.float() + 0.5 * torch.rand(batch.gt_mask.shape, generator=g)
    scorers = {"oracle": oracle, "random": torch.rand(batch.gt_mask.shape, generator=g), "anti": -oracle}
    spec = PerturbationSpec(n_random=3, seed=0)
    return batch, {k: perturbation_curves(CacheLM(), batch, s, spec) for k, s in scorers.items()}


def test_oracle_morf_falls_faster_than_random(cache_results):
    _, res = cache_results
    c = res["oracle"].curves
    c = c[(c.operator == "attention_mask") & (c.curve == "deletion")].groupby(["order", "q"])["f"].mean()
    inner = [q for q in PerturbationSpec().grid if 0 < q < 1]
    morf, rnd, lerf = (c.loc[o].loc[inner] for o in ("morf", "random", "lerf"))
    assert (morf <= rnd + 1e-9).all() and (morf < rnd - 0.05).any()
    assert (lerf >= rnd - 1e-9).all()
    assert c.loc["morf"].loc[0.0] == pytest.approx(c.loc["random"].loc[0.0])


@pytest.mark.parametrize("op", ["attention_mask", "replace_token"])
def test_abpc_orders_oracle_random_anti(cache_results, op):
    _, res = cache_results
    abpc = {k: r.summary[r.summary.operator == op]["abpc"].mean() for k, r in res.items()}
    assert abpc["oracle"] > abpc["random"] > abpc["anti"]
    assert abpc["oracle"] > 0.1 and abs(abpc["random"]) < abpc["oracle"] / 3
    s = res["oracle"].summary
    s = s[s.operator == op]
    assert (s["comprehensiveness"] > s["comprehensiveness_random"]).mean() > 0.8
    assert (s["aopc_comp"] >= s["aopc_comp_random"] - 1e-9).mean() > 0.8
    assert (s["sufficiency"] < s["sufficiency_random"]).mean() > 0.8


def test_result_tables_and_spec(cache_results):
    batch, res = cache_results
    r = res["oracle"]
    assert r.spec.aopc_normaliser == "1/|B|" and r.spec.operators == ("attention_mask", "replace_token")
    assert set(r.curves.columns) >= {"example_id", "operator", "curve", "order", "q", "k", "f"}
    assert len(r.summary) == 2 * len(batch)
    # with every answer token removed, the order does not matter
    full = r.curves[(r.curves.curve == "deletion") & (r.curves.q == 1.0)].groupby(["operator", "example_id"])["f"]
    assert (full.max() - full.min()).abs().max() < 1e-9


def test_q0_equals_unperturbed_answer_logprob(tiny_model, toy_batch):
    scores = torch.rand(toy_batch.gt_mask.shape)
    spec = PerturbationSpec(grid=(0.0, 0.5, 1.0), aopc_bins=(0.5,), n_random=1)
    r = perturbation_curves(tiny_model, toy_batch, scores, spec)
    with torch.no_grad():
        f0 = masked_mean(token_logprobs(forward_logits(tiny_model, toy_batch), toy_batch.input_ids),
                         toy_batch.answer_mask)
    c = r.curves
    got = c[(c.curve == "deletion") & (c.q == 0.0) & (c.order == "morf")].groupby("operator")["f"].apply(list)
    for op in spec.operators:
        assert torch.allclose(torch.tensor(got[op], dtype=torch.float64), f0.double(), atol=1e-5)
    assert torch.allclose(torch.tensor(r.summary.f_full.values[: len(toy_batch)]), f0.double(), atol=1e-5)
    assert r.curves["f"].notna().all()


def test_attention_mask_operator_makes_removed_tokens_invisible(tiny_model, toy_batch):
    """After removal, f must not depend on the removed tokens' ids (keys masked AND own position blanked)."""
    ans = toy_batch.answer_mask
    remove = ans & (torch.rand(ans.shape, generator=torch.Generator().manual_seed(0)) < 0.3)
    other = toy_batch.input_ids.clone()
    other[remove] = (other[remove] + 7) % 300 + 4
    op = OPERATORS.get("attention_mask")
    fs = []
    for ids in (toy_batch.input_ids, other):
        new_ids, am = op(ids, toy_batch.attention_mask, remove, 0)
        fs.append(answer_logprob(tiny_model, new_ids, am, toy_batch.input_ids, ans))
    assert torch.allclose(fs[0], fs[1], atol=1e-6)
    # masking the key alone would leak the removed token into the prediction made at its own position
    am_only = toy_batch.attention_mask * (~remove)
    leak = [answer_logprob(tiny_model, ids, am_only, toy_batch.input_ids, ans)
            for ids in (toy_batch.input_ids, other)]
    assert not torch.allclose(leak[0], leak[1], atol=1e-6)


def test_k_rule_and_errors(tiny_model, toy_batch):
    assert k_for_fraction(0.25, 10) == 3 and k_for_fraction(0.25, 10, "floor") == 2
    assert k_for_fraction(0.01, 20) == 0 and k_for_fraction(0.01, 20, "ceil") == 1
    assert k_for_fraction(1.0, 17) == 17
    with pytest.raises(SpecError, match="Valid names"):
        perturbation_curves(tiny_model, toy_batch, torch.rand(toy_batch.gt_mask.shape),
                            PerturbationSpec(operators=("blur",)))
    with pytest.raises(SpecError, match="scores must be"):
        perturbation_curves(tiny_model, toy_batch, torch.rand(3, 3))
