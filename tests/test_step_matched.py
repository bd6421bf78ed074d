"""The update-matched controls: step_matched takes the method's parameter-step norm (checked against the method's
own AdamW step from copies of the same state), magnitude_matched trains token-normalised, random_k_fixed keeps one
random subset per example."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from tueval import step_matching
from tueval.objectives import make_objective, model_forward
from tueval.spec import RunSpec
from tueval.weighting import WeightingSpec, apply_weighting, fixed_keys, hard_weights

RTOL = 1e-5


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def _ga_step(model, opt, batch, weights, clip=1.0, objective=None):
    """One plain optimiser step of GA with ``weights`` (what the method's own run does)."""
    objective = objective or make_objective("ga", {"normaliser": "weight_sum"})
    opt.zero_grad(set_to_none=True)
    objective(model, batch, None, weights).total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def test_shadow_step_is_the_real_step_and_changes_nothing(tiny_model, toy_batch):
    model, b = tiny_model.train(), toy_batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    w = b.answer_mask.float()
    for _ in range(2):  # a non-trivial optimiser state
        _ga_step(model, opt, b, w)
    ref_model, ref_opt = copy.deepcopy((model, opt))
    state_before = copy.deepcopy(opt.state_dict())
    theta = _flat(model)
    opt.zero_grad(set_to_none=True)
    make_objective("ga", {"normaliser": "weight_sum"})(model, b, None, w).total.backward()
    grads = [p.grad for p in model.parameters()]
    delta = step_matching.shadow_step(opt, grads)
    assert torch.equal(_flat(model), theta)  # the parameters did not move
    after = opt.state_dict()
    assert all(torch.equal(after["state"][k]["exp_avg"], state_before["state"][k]["exp_avg"]) for k in after["state"])
    ref_opt.zero_grad(set_to_none=True)
    for p, g in zip(ref_model.parameters(), grads):
        p.grad = g.clone()
    ref_opt.step()
    real = _flat(ref_model) - theta
    assert torch.allclose(torch.cat([d.reshape(-1).double() for d in delta]), real, rtol=1e-6, atol=1e-9)


def test_step_matched_takes_the_method_step_norm(tiny_model, toy_batch):
    """Each step of the step_matched unit ends with the norm of the step the method takes from the same
    parameters, batch and optimiser state (computed independently on copies), to 1e-5 relative, and the step
    differs from uniform's whenever the method's norm differs from uniform's."""
    model, b = tiny_model.train(), toy_batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ga = make_objective("ga", {"normaliser": "weight_sum"})
    uniform = b.answer_mask.float()
    method_w = hard_weights(torch.rand(b.answer_mask.shape, generator=torch.Generator().manual_seed(0)),
                            b.answer_mask, 0.3)
    for step in range(4):
        theta = _flat(model)
        m_model, m_opt = copy.deepcopy((model, opt))  # the method's own step from the same state
        _ga_step(m_model, m_opt, b, method_w, objective=ga)
        method_norm = float((_flat(m_model) - theta).norm())
        u_model, u_opt = copy.deepcopy((model, opt))  # the plain uniform step from the same state
        _ga_step(u_model, u_opt, b, uniform, objective=ga)
        uniform_norm = float((_flat(u_model) - theta).norm())
        # the step_matched unit, as the trainer runs it
        out = model_forward(model, b)
        target = step_matching.method_step_norm(opt, ga(model, b, None, method_w, forget_out=out).total, 1.0,
                                                model.parameters())
        opt.zero_grad(set_to_none=True)
        ga(model, b, None, uniform, forget_out=out).total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        before = step_matching.snapshot(opt)
        opt.step()
        made = step_matching.rescale_step(opt, before, target)
        realised = float((_flat(model) - theta).norm())
        assert realised == pytest.approx(method_norm, rel=RTOL), step
        assert made == pytest.approx(uniform_norm, rel=1e-5)
        # the direction is uniform's: the rescaled step is parallel to the plain uniform step, so step_matched
        # ends |method norm - uniform norm| away from uniform: non-zero whenever the method's norm differs
        cos = torch.nn.functional.cosine_similarity(_flat(model) - theta, _flat(u_model) - theta, dim=0)
        assert float(cos) == pytest.approx(1.0, abs=1e-5)
        gap = abs(method_norm - uniform_norm)
        assert gap > 0
        assert float((_flat(model) - _flat(u_model)).norm()) == pytest.approx(gap, rel=0.05, abs=1e-7)
        if step:  # past the first Adam step (a sign step of the same norm for both), the norms differ by %
            assert gap > 1e-2 * uniform_norm


def test_magnitude_matched_is_token_normalised_and_differs_from_uniform(toy_batch):
    m = toy_batch.answer_mask
    s = torch.rand(m.shape, generator=torch.Generator().manual_seed(1))
    spec = WeightingSpec(mode="hard", ratio=0.3, control="magnitude_matched")
    assert spec.loss_normaliser == "tokens" and WeightingSpec(mode="hard").loss_normaliser == "weight_sum"
    assert WeightingSpec(mode="hard", control="magnitude_matched", normaliser="weight_sum").loss_normaliser == "tokens"
    res = apply_weighting(spec, s, m)
    ga = make_objective("ga", {"normaliser": res.normaliser})
    # under the token-count normaliser the weights' scale is the loss scale: 0.3-ish of uniform's
    ratio = float(res.weights[m].mean())
    assert 0.25 < ratio < 0.45
    lp = torch.randn(m.shape)
    out = type("Out", (), {"logp": lp})()
    lm = ga.forget_term(out, toy_batch, res.weights, None)[0]
    lu = make_objective("ga", {"normaliser": "tokens"}).forget_term(out, toy_batch, m.float(), None)[0]
    assert float(lm) == pytest.approx(ratio * float(lu), rel=1e-5)


def test_random_k_fixed_keeps_one_subset_per_example(toy_batch):
    m = toy_batch.answer_mask
    s = torch.rand(m.shape, generator=torch.Generator().manual_seed(2))
    spec = WeightingSpec(mode="hard", ratio=0.3, control="random_k_fixed")
    keys = fixed_keys(m.shape, seed=5)
    a = apply_weighting(spec, s, m, generator=torch.Generator().manual_seed(0), keys=keys)
    b = apply_weighting(spec, s, m, generator=torch.Generator().manual_seed(99), keys=keys)
    assert torch.equal(a.weights, b.weights)  # the generator plays no part: the keys fix the subset
    assert torch.equal((a.weights > 0).sum(-1), (a.method_weights > 0).sum(-1))
    assert not torch.equal(a.weights, a.method_weights)
    redraw = apply_weighting(dataclasses.replace(spec, control="random_k"), s, m,
                             generator=torch.Generator().manual_seed(0))
    assert not torch.equal(redraw.weights, a.weights)
    assert torch.equal(fixed_keys(m.shape, 5), keys) and not torch.equal(fixed_keys(m.shape, 6), keys)
    with pytest.raises(Exception):
        apply_weighting(spec, s, m)  # no keys


def _trainer(wd, **kw):
    from tueval.training import Trainer
    from tueval.unlearn import resolve

    spec = RunSpec(**{"objective": "ga", "scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3, "seed": 3,
                      "lr": 1e-3, "epochs": 1, "batch_size": 16, "generate": False, **kw})
    r = resolve(spec, wd)
    scorer, wspec, objective = r["_objects"]
    torch.manual_seed(spec.seed)
    return Trainer.build(spec, wd, scorer, wspec, objective, r["spec"]["forget_split"])


def test_trainer_step_matched_run_matches_the_method_step(small_workdir):
    """In the engine: every step of a step_matched run moves the parameters by the norm of the step the method
    run would take from the same state and batch (a copy of the trainer with the method's weighting), and the run
    ends away from the uniform base."""
    sm = _trainer(small_workdir, control="step_matched")
    base = _trainer(small_workdir, scorer="uniform", mode="none")
    steps = min(3, sm.total_steps)
    for step in range(steps):
        sm.ctx.outputs = None  # last step's forward (a graph, not state): set afresh by every step
        method = copy.deepcopy(sm)
        method.wspec = dataclasses.replace(sm.wspec, control=None)
        theta = _flat(sm.model)
        method(step)
        method_norm = float((_flat(method.model) - theta).norm())
        row = sm(step)
        assert float((_flat(sm.model) - theta).norm()) == pytest.approx(method_norm, rel=RTOL)
        assert row["method_step_norm"] == pytest.approx(method_norm, rel=RTOL)
        base(step)
    assert float((_flat(sm.model) - _flat(base.model)).norm()) > 0


def test_trainer_random_k_fixed_reuses_each_examples_subset(small_workdir):
    t = _trainer(small_workdir, scorer="etw", control="random_k_fixed")
    idx = torch.arange(4)
    k1 = t.fixed_keys(idx, 12)
    assert k1.shape == (4, 12) and torch.equal(t.fixed_keys(idx, 12), k1)
    assert _trainer(small_workdir, scorer="etw", control="random_k").fixed_keys(idx, 12) is None
    t(0)  # a step runs with the fixed keys
