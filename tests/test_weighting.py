"""Weighting: hard/soft/raw weights, the controls, exact-zero gradients and spec validation."""
import math

import pytest
import torch

from tueval.errors import SpecError
from tueval.objectives import make_objective, model_forward
from tueval.weighting import (WeightingSpec, apply_weighting, bottom_k, grad_norm_matched_scale, hard_weights,
                              keep_count, magnitude_matched, permuted, random_k, soft_weights)


def _scores(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch.answer_mask.shape, generator=g)


def test_hard_weights_count_and_top(toy_batch):
    m = toy_batch.answer_mask
    s = _scores(toy_batch)
    w = hard_weights(s, m, 0.3)
    n = m.sum(-1)
    expect = torch.tensor([max(1, math.ceil(0.3 * int(k) - 1e-9)) for k in n])
    assert torch.equal(w.sum(-1).long(), expect)
    assert (w[~m] == 0).all()
    # every selected token scores at least as high as every unselected answer token
    for i in range(len(n)):
        sel, uns = s[i][(w[i] > 0)], s[i][m[i] & (w[i] == 0)]
        assert sel.min() >= uns.max()


def test_keep_count_exact_ratio_and_minimum():
    m = torch.zeros(3, 12, dtype=torch.bool)
    m[0, :10] = True
    m[1, :1] = True
    m[2, :3] = True
    assert keep_count(m, 0.3).tolist() == [3, 1, 1]  # 0.3 * 10 is 3, not 4
    assert keep_count(m, 1.0).tolist() == [10, 1, 3]


def test_hard_weights_give_exactly_zero_gradient_off_selection(tiny_model, toy_batch):
    b = toy_batch
    w = hard_weights(_scores(b), b.answer_mask, 0.3)
    ga = make_objective("ga")
    out = model_forward(tiny_model, b)
    out.logp.retain_grad()
    ga(tiny_model, b, None, w, forget_out=out).total.backward()
    g_lp = out.logp.grad
    assert (g_lp[w == 0] == 0).all(), "unselected tokens must contribute exactly zero gradient"
    assert (g_lp[w > 0] != 0).all()
    grads = [p.grad.clone() for p in tiny_model.parameters()]
    tiny_model.zero_grad()
    # the same loss restricted to the selected tokens
    lp = model_forward(tiny_model, b).logp
    (lp[w > 0].sum() / (w > 0).sum()).backward()
    for g1, p in zip(grads, tiny_model.parameters()):
        assert torch.allclose(g1, p.grad, rtol=1e-5, atol=1e-7)


def test_soft_weights_mean_one_and_fallback(toy_batch):
    m = toy_batch.answer_mask
    w = soft_weights(_scores(toy_batch), m)
    mean = (w * m).sum(-1) / m.sum(-1)
    assert torch.allclose(mean, torch.ones_like(mean), atol=1e-5)
    assert (w[~m] == 0).all()
    z = soft_weights(torch.zeros(m.shape), m)
    assert torch.equal(z, m.float())
    neg = soft_weights(-torch.ones(m.shape), m)  # clamped to 0 -> uniform
    assert torch.equal(neg, m.float())


def test_controls_preserve_what_they_claim(toy_batch):
    m = toy_batch.answer_mask
    s = _scores(toy_batch)
    w = hard_weights(s, m, 0.3)
    g = torch.Generator().manual_seed(1)
    rk = random_k(w, m, g)
    assert torch.equal((rk > 0).sum(-1), (w > 0).sum(-1))
    assert (rk[~m] == 0).all()
    assert not torch.equal(rk, w)
    ws = soft_weights(s, m)
    mm = magnitude_matched(ws * 0.7, m)
    assert torch.allclose(mm.sum(), (ws * 0.7).sum(), rtol=1e-6)
    vals = mm[m]
    assert torch.allclose(vals, vals[0].expand_as(vals))
    pm = permuted(ws, m, g)
    for i in range(len(m)):
        assert torch.allclose(torch.sort(pm[i][m[i]]).values, torch.sort(ws[i][m[i]]).values)
    assert (pm[~m] == 0).all()
    assert not torch.equal(pm, ws)


def test_bottom_k_disjoint_from_top_k(toy_batch):
    m = toy_batch.answer_mask
    s = _scores(toy_batch)
    top = hard_weights(s, m, 0.3)
    bot = bottom_k(s, top, m)
    assert torch.equal((bot > 0).sum(-1), (top > 0).sum(-1))
    assert not ((bot > 0) & (top > 0)).any()
    # ties (constant scores) still give disjoint sets
    c = torch.zeros(m.shape)
    top_c = hard_weights(c, m, 0.4)
    assert (2 * (top_c > 0).sum(-1) <= m.sum(-1)).all()
    assert not ((bottom_k(c, top_c, m) > 0) & (top_c > 0)).any()
    # the least-scored tokens are taken
    for i in range(len(m)):
        assert s[i][bot[i] > 0].max() <= s[i][m[i] & (bot[i] == 0)].min()


def test_random_controls_are_seeded(toy_batch):
    m = toy_batch.answer_mask
    w = soft_weights(_scores(toy_batch), m)
    spec = WeightingSpec(mode="hard", control="random_k")
    a = apply_weighting(spec, _scores(toy_batch), m, torch.Generator().manual_seed(5)).weights
    b = apply_weighting(spec, _scores(toy_batch), m, torch.Generator().manual_seed(5)).weights
    c = apply_weighting(spec, _scores(toy_batch), m, torch.Generator().manual_seed(6)).weights
    assert torch.equal(a, b) and not torch.equal(a, c)
    p1 = permuted(w, m, torch.Generator().manual_seed(3))
    p2 = permuted(w, m, torch.Generator().manual_seed(3))
    assert torch.equal(p1, p2)
    gen = torch.Generator().manual_seed(3)
    wh = hard_weights(_scores(toy_batch), m, 0.3)
    assert not torch.equal(random_k(wh, m, gen), random_k(wh, m, gen)), "drawn afresh each call"


@pytest.mark.parametrize("ratio", [0, 0.0, 1.5, -0.1])
def test_bad_ratio_raises(ratio, toy_batch):
    with pytest.raises(SpecError, match="ratio"):
        WeightingSpec(mode="hard", ratio=ratio)
    with pytest.raises(SpecError, match="ratio"):
        hard_weights(_scores(toy_batch), toy_batch.answer_mask, ratio)


def test_spec_validation_and_normaliser_rule():
    with pytest.raises(SpecError, match="mode"):
        WeightingSpec(mode="medium")
    with pytest.raises(SpecError, match="control"):
        WeightingSpec(control="shuffle")
    assert WeightingSpec(mode="hard").loss_normaliser == "weight_sum"
    assert WeightingSpec(mode="soft").loss_normaliser == "tokens"
    assert WeightingSpec(mode="none").loss_normaliser == "tokens"
    assert WeightingSpec(mode="soft", normaliser="weight_sum").loss_normaliser == "weight_sum"
    p = WeightingSpec(mode="hard", ratio=0.2, control="bottom_k").params()
    assert p == {"mode": "hard", "ratio": 0.2, "control": "bottom_k", "normaliser": "auto", "scope": "sequence",
                 "loss_normaliser": "weight_sum"}


def test_batch_scope_uses_one_threshold(toy_batch):
    m = toy_batch.answer_mask
    s = _scores(toy_batch)
    w = apply_weighting(WeightingSpec(mode="hard", ratio=0.25, scope="batch"), s, m).weights
    assert int(w.sum()) == math.ceil(0.25 * int(m.sum()) - 1e-9)
    assert s[w > 0].min() >= s[m & (w == 0)].max()
    ws = apply_weighting(WeightingSpec(mode="soft", scope="batch"), s, m).weights
    assert torch.isclose(ws.sum() / m.sum(), torch.tensor(1.0))


def test_grad_norm_matched_scale(tiny_model, toy_batch):
    b = toy_batch
    spec = WeightingSpec(mode="hard", control="magnitude_matched_grad")
    res = apply_weighting(spec, _scores(b), b.answer_mask)
    assert res.needs_grad_scale and torch.equal(res.weights, b.answer_mask.float())
    ga = make_objective("ga", {"normaliser": res.normaliser})
    out = model_forward(tiny_model, b)
    lm = ga(tiny_model, b, None, res.method_weights, forget_out=out).forget
    lu = ga(tiny_model, b, None, res.weights, forget_out=out).forget
    c = grad_norm_matched_scale(tiny_model, lm, lu)
    params = list(tiny_model.parameters())

    def gnorm(loss):
        gs = torch.autograd.grad(loss, params, retain_graph=True)
        return float(torch.sqrt(sum((g ** 2).sum() for g in gs)))

    assert c > 0
    assert math.isclose(gnorm(c * lu), gnorm(lm), rel_tol=1e-4)
