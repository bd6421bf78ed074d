"""Objectives: hand-computed TPO/NPO/SimNPO values, training direction on the tiny model, errors."""
import copy
import math
from types import SimpleNamespace

import pytest
import torch

from tueval.data.collate import Batch
from tueval.errors import SpecError
from tueval.objectives import (OBJECTIVES, attach_idk_batch, load_idk_answers, make_objective, model_forward,
                               questions_from_batch)


# ---------------------------------------------------------------------------------------------------------------
# a two-example toy batch with fixed logits, and plain-python expected values
class FixedLogits(torch.nn.Module):
    """A fake causal LM that returns fixed logits (a trainable parameter)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits.clone())

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False):
        return SimpleNamespace(logits=self.logits * 1.0, hidden_states=None)


IDS = [[1, 2, 0, 1, 2], [2, 0, 1, 2, 0]]
ANS = [[0, 0, 1, 1, 1], [0, 0, 1, 1, 0]]  # answer tokens (labels != -100); example 1 has one pad
W = [[0, 0, 1.0, 0.0, 0.5], [0, 0, 0.0, 2.0, 0]]


def _toy():
    ids = torch.tensor(IDS)
    ans = torch.tensor(ANS, dtype=torch.bool)
    labels = torch.where(ans, ids, torch.full_like(ids, -100))
    am = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    batch = Batch(input_ids=ids, attention_mask=am, labels=labels, answer_mask=ans,
                  gt_mask=torch.zeros_like(ans), example_ids=["a", "b"], prompt_lengths=torch.tensor([2, 2]))
    g = torch.Generator().manual_seed(0)
    pol = torch.randn(2, 5, 3, generator=g)
    ref = torch.randn(2, 5, 3, generator=g)
    return batch, pol, ref, torch.tensor(W)


def _lp(logits, i, t):
    """log p(token t | <t) of example i in plain python (logits at t-1 predict t)."""
    row = [float(x) for x in logits[i, t - 1]]
    lse = math.log(sum(math.exp(x) for x in row))
    return row[IDS[i][t]] - lse


def _logsig(x):
    return -math.log1p(math.exp(-x))


def test_npo_masked_sum_by_hand():
    batch, pol, ref, w = _toy()
    beta = 0.1
    r = [sum(W[i][t] * (_lp(pol, i, t) - _lp(ref, i, t)) for t in range(1, 5) if ANS[i][t]) for i in range(2)]
    expect = -(2 / beta) * sum(_logsig(-beta * ri) for ri in r) / 2
    obj = make_objective("npo", {"beta": beta, "retain_loss": "none"})
    out = obj(FixedLogits(pol), batch, None, w, FixedLogits(ref))
    assert math.isclose(float(out.forget.detach()), expect, rel_tol=1e-5)
    assert math.isclose(float(out.total.detach()), expect, rel_tol=1e-5)


def test_npo_tokenwise_by_hand():
    batch, pol, ref, w = _toy()
    beta = 0.1
    num = sum(W[i][t] * -(2 / beta) * _logsig(-beta * (_lp(pol, i, t) - _lp(ref, i, t)))
              for i in range(2) for t in range(1, 5) if ANS[i][t])
    expect = num / sum(sum(r) for r in W)
    out = make_objective("npo", {"beta": beta, "form": "tnpo", "retain_loss": "none"})(
        FixedLogits(pol), batch, None, w, FixedLogits(ref))
    assert math.isclose(float(out.forget.detach()), expect, rel_tol=1e-5)


def test_simnpo_by_hand():
    batch, pol, _, w = _toy()
    beta, delta, gamma = 4.5, 0.1, 0.125
    a = [sum(W[i][t] * -_lp(pol, i, t) for t in range(1, 5) if ANS[i][t]) / sum(W[i]) for i in range(2)]
    expect = -(2 / beta) * sum(_logsig(beta * (ai - delta)) for ai in a) / 2
    out = make_objective("simnpo", {"beta": beta, "delta": delta, "retain_loss": "none"})(
        FixedLogits(pol), batch, None, w)
    assert math.isclose(float(out.forget.detach()), expect, rel_tol=1e-5)
    assert math.isclose(float(out.total.detach()), gamma * expect, rel_tol=1e-5)


@pytest.mark.parametrize("batchmean", [True, False])
def test_tpo_by_hand(batchmean):
    batch, pol, ref, w = _toy()
    beta = 0.2

    def zeta(lg, i):  # weighted mean of the raw ground-truth logits over unwanted tokens
        num = sum(W[i][t] * float(lg[i, t - 1, IDS[i][t]]) for t in range(1, 5) if ANS[i][t])
        return num / sum(W[i])

    d = [zeta(ref, i) - zeta(pol, i) for i in range(2)]
    if batchmean:
        lpl = -(2 / beta) * _logsig(beta * sum(d) / 2)
    else:
        lpl = sum(-(2 / beta) * _logsig(beta * di) for di in d) / 2
    pl = sum(-_lp(pol, i, t) for i in range(2) for t in range(1, 5) if ANS[i][t] and W[i][t] == 0) / 2
    out = make_objective("tpo", {"beta": beta, "tpo_batchmean": batchmean})(
        FixedLogits(pol), batch, None, w, FixedLogits(ref))
    assert math.isclose(float(out.extras["lpl"]), lpl, rel_tol=1e-5)
    assert math.isclose(float(out.extras["pl"]), pl, rel_tol=1e-5)
    assert math.isclose(float(out.total.detach()), lpl + pl, rel_tol=1e-5)


def test_ga_normalisers_by_hand():
    batch, pol, _, w = _toy()
    num = sum(W[i][t] * -_lp(pol, i, t) for i in range(2) for t in range(1, 5) if ANS[i][t])
    ga_w = make_objective("ga")(FixedLogits(pol), batch, None, w)
    ga_t = make_objective("ga", {"normaliser": "tokens"})(FixedLogits(pol), batch, None, w)
    assert math.isclose(float(ga_w.forget), -num / 3.5, rel_tol=1e-5)
    assert math.isclose(float(ga_t.forget), -num / 5, rel_tol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
def _split(batch):
    return batch.select([0, 1, 2, 3]), batch.select([4, 5, 6, 7])


def _forget_nll(model, batch):
    with torch.no_grad():
        lp = model_forward(model, batch).logp
    return float(-(lp * batch.answer_mask).sum() / batch.answer_mask.sum())


@pytest.mark.parametrize("name,params", [("ga", {}), ("graddiff", {}), ("npo", {}),
                                         # beta 4.5 saturates on a random model (NLL ~6/token): shift by delta
                                         ("simnpo", {"alpha": 0.0, "delta": 5.0}),
                                         ("npo", {"form": "tnpo", "alpha": 0.0}),
                                         ("graddiff", {"retain_loss": "kl"})])
def test_steps_increase_forget_nll(name, params, tiny_model, toy_batch):
    forget, retain = _split(toy_batch)
    ref = copy.deepcopy(tiny_model)
    obj = make_objective(name, params)
    opt = torch.optim.Adam(tiny_model.parameters(), lr=1e-2)
    before = _forget_nll(tiny_model, forget)
    for _ in range(4):
        opt.zero_grad()
        out = obj(tiny_model, forget, retain, None, ref)
        assert torch.isfinite(out.total)
        out.total.backward()
        opt.step()
    assert _forget_nll(tiny_model, forget) > before + 0.05


def test_tpo_and_idkpo_train(tiny_model, toy_batch, tiny_tokenizer):
    forget, retain = _split(toy_batch)
    ref = copy.deepcopy(tiny_model)
    w = forget.gt_mask.float()
    # TPO lowers the raw ground-truth logits on the unwanted (gt) tokens
    obj = make_objective("tpo")
    opt = torch.optim.Adam(tiny_model.parameters(), lr=1e-2)
    first = None
    for _ in range(3):
        opt.zero_grad()
        out = obj(tiny_model, forget, None, w, ref)
        first = float(out.extras["logit_gap"]) if first is None else first
        out.total.backward()
        opt.step()
    assert float(obj(tiny_model, forget, None, w, ref).extras["logit_gap"]) > first
    # IdkPO: the refusal batch has the same questions; the loss falls
    attach_idk_batch(forget, tiny_tokenizer, torch.Generator().manual_seed(0))
    idk = forget.extras["idk_batch"]
    assert questions_from_batch(idk, tiny_tokenizer) == questions_from_batch(forget, tiny_tokenizer)
    model = copy.deepcopy(ref)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    obj = make_objective("idkpo", {"alpha": 0.0})
    losses = []
    for _ in range(4):
        opt.zero_grad()
        out = obj(model, forget, retain, w, ref)
        losses.append(float(out.forget.detach()))
        out.total.backward()
        opt.step()
    assert losses[-1] < losses[0]
    assert math.isclose(losses[0], (2 / 0.1) * math.log(2), rel_tol=1e-5)  # model == ref at step 0


def test_forget_out_is_reused(tiny_model, toy_batch):
    """Passing the caller's forward gives the same loss without a second forward."""
    calls = []
    h = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    out = model_forward(tiny_model, toy_batch)
    n0 = len(calls)
    l1 = make_objective("ga")(tiny_model, toy_batch, None, None, forget_out=out)
    assert len(calls) == n0
    l2 = make_objective("ga")(tiny_model, toy_batch, None, None)
    h.remove()
    assert torch.allclose(l1.total, l2.total)
    assert set(l1.extras) >= {"mean_weight", "forget_nll", "frac_weighted"}


def test_forget_term_only(tiny_model, toy_batch):
    obj = make_objective("graddiff", {"alpha": 2.0})
    full = obj(tiny_model, toy_batch, toy_batch, None)
    only = obj(tiny_model, toy_batch, None, None, compute_retain=False)
    assert float(only.retain) == 0.0 and torch.allclose(only.forget, full.forget)
    assert torch.allclose(only.total, full.forget)
    assert torch.allclose(full.total, full.forget + 2.0 * full.retain)


def test_objective_errors(tiny_model, toy_batch):
    with pytest.raises(SpecError) as e:
        make_objective("gradient_ascent")
    for n in ("ga", "graddiff", "npo", "simnpo", "idkpo", "tpo"):
        assert n in str(e.value)
    assert set(OBJECTIVES.names()) >= {"ga", "graddiff", "npo", "simnpo", "idkpo", "tpo"}
    with pytest.raises(SpecError, match="unknown setting"):
        make_objective("npo", {"betta": 0.1})
    with pytest.raises(SpecError, match="retain_loss"):
        make_objective("graddiff", {"retain_loss": "mse"})
    with pytest.raises(SpecError, match="retain batch"):
        make_objective("graddiff")(tiny_model, toy_batch, None, None)
    with pytest.raises(SpecError, match="ref_model"):
        make_objective("npo")(tiny_model, toy_batch, toy_batch, None, None)
    with pytest.raises(SpecError, match="idk_batch"):
        make_objective("idkpo")(tiny_model, toy_batch, toy_batch, None, tiny_model)
    with pytest.raises(SpecError, match="shape"):
        make_objective("ga")(tiny_model, toy_batch, None, torch.ones(2, 3))


def test_idk_answers_shipped():
    a = load_idk_answers()
    assert len(a) == 100 and all(isinstance(x, str) and x for x in a)


def test_rmu_moves_forget_activations_to_control(tiny_model, toy_batch):
    from tueval.objectives import layer_activations, rmu_trainable_parameters

    forget, retain = _split(toy_batch)
    ref = copy.deepcopy(tiny_model)
    obj = make_objective("rmu", {"layer": 0, "steering_coeff": 2.0, "alpha": 10.0})
    assert obj.needs_ref_model
    params = rmu_trainable_parameters(tiny_model, layer=0)
    assert params and all(p is tiny_model.model.layers[0].mlp.down_proj.weight for p in params)
    opt = torch.optim.Adam(params, lr=1e-2)
    first = None
    for _ in range(4):
        opt.zero_grad()
        out = obj(tiny_model, forget, retain, forget.gt_mask.float(), ref)
        first = float(out.forget.detach()) if first is None else first
        out.total.backward()
        opt.step()
    assert float(obj(tiny_model, forget, retain, forget.gt_mask.float(), ref).forget.detach()) < first
    assert torch.equal(layer_activations(tiny_model, forget, -1), layer_activations(tiny_model, forget, 1))
    with pytest.raises(SpecError, match="out of range"):
        layer_activations(tiny_model, forget, 5)


# ---------------------------------------------------------------------------------------------------------------
# reductions: the KL retain term's positions, RMU per sequence then over the batch, what each objective records
def _kl_by_hand(pol, ref, positions):
    """KL(ref || pol) per position in plain python, averaged over ``positions`` (a list of (i, t))."""
    tot = 0.0
    for i, t in positions:
        p = [math.exp(float(x)) for x in ref[i, t]]
        q = [math.exp(float(x)) for x in pol[i, t]]
        zp, zq = sum(p), sum(q)
        tot += sum(pi / zp * (math.log(pi / zp) - math.log(qi / zq)) for pi, qi in zip(p, q))
    return tot / len(positions)


@pytest.mark.parametrize("positions", ["all", "answer"])
def test_kl_retain_term_positions_by_hand(positions):
    batch, pol, ref, _ = _toy()
    obj = make_objective("graddiff", {"retain_loss": "kl", "kl_positions": positions})
    got = float(obj.retain_term(FixedLogits(pol), batch, FixedLogits(ref)))
    if positions == "all":  # open-unlearning: every one of the B*T rows, padding included
        want = _kl_by_hand(pol, ref, [(i, t) for i in range(2) for t in range(5)])
    else:  # the positions predicting answer tokens
        want = _kl_by_hand(pol, ref, [(i, t - 1) for i in range(2) for t in range(1, 5) if ANS[i][t]])
    assert got == pytest.approx(want, rel=1e-5)
    assert obj.get_params()["kl_positions"] == positions
    assert "kl_positions" not in make_objective("graddiff").get_params()  # recorded only where it acts
    with pytest.raises(SpecError, match="kl_positions"):
        make_objective("graddiff", {"retain_loss": "kl", "kl_positions": "some"})


class FixedHidden(torch.nn.Module):
    """A fake causal LM whose block outputs are fixed tensors (trainable)."""

    def __init__(self, hidden):
        super().__init__()
        self.h = torch.nn.Parameter(hidden.clone())

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False):
        return SimpleNamespace(logits=None, hidden_states=(self.h * 0.0, self.h * 1.0, self.h * 2.0))


def test_rmu_reduces_per_sequence_then_over_the_batch():
    batch, _, _, w = _toy()
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, 5, 4, generator=g)
    h_ref = torch.randn(2, 5, 4, generator=g)
    obj = make_objective("rmu", {"layer": 0, "steering_coeff": 2.0, "alpha": 1.0, "normaliser": "weight_sum"})
    cu = obj.control_vector(4, "cpu")
    out = obj(FixedHidden(h), batch, batch, w, FixedHidden(h_ref))
    d = ((h - cu) ** 2).mean(-1)
    want_f = ((1.0 * d[0, 2] + 0.5 * d[0, 4]) / 1.5 + d[1, 3]) / 2  # per sequence sum w d / sum w, then the mean
    assert float(out.forget) == pytest.approx(float(want_f), rel=1e-6)
    r = ((h - h_ref) ** 2).mean(-1)
    want_r = ((r[0, 2] + r[0, 3] + r[0, 4]) / 3 + (r[1, 2] + r[1, 3]) / 2) / 2
    assert float(out.retain) == pytest.approx(float(want_r), rel=1e-6)
    tok = make_objective("rmu", {"layer": 0, "steering_coeff": 2.0, "normaliser": "tokens"})
    want_t = ((1.0 * d[0, 2] + 0.5 * d[0, 4]) / 3 + 2.0 * d[1, 3] / 2) / 2
    assert float(tok(FixedHidden(h), batch, None, w, compute_retain=False).forget) == pytest.approx(float(want_t),
                                                                                                  rel=1e-6)


def test_objectives_record_the_reduction_they_use():
    assert make_objective("npo").get_params()["normaliser"] == "sequence_sum"  # sums: no normaliser
    assert make_objective("npo", {"normaliser": "tokens"}).get_params()["normaliser"] == "sequence_sum"
    assert make_objective("npo", {"form": "tnpo", "normaliser": "tokens"}).get_params()["normaliser"] == "tokens"
    with pytest.raises(SpecError, match="sequence_sum"):
        make_objective("npo", {"form": "tnpo", "normaliser": "sequence_sum"})
    assert make_objective("tpo").get_params()["normaliser"] == "per_sequence"
    assert make_objective("ga").get_params()["normaliser"] == "weight_sum"
    rmu = make_objective("rmu")
    assert rmu.get_params()["trainable"] == "all" and "trainable_span" not in rmu.get_params()
    wmdp = make_objective("rmu", {"trainable": "mlp.down_proj", "trainable_span": 3})
    assert wmdp.get_params()["trainable_span"] == 3
    with pytest.raises(SpecError, match="trainable_span"):
        make_objective("rmu", {"trainable": "mlp.down_proj", "trainable_span": 0})


def test_rmu_trainable_parameters_follow_the_setting(tiny_model):
    assert make_objective("rmu").trainable_parameters(tiny_model) is None
    ps = make_objective("rmu", {"layer": 1, "trainable": "mlp.down_proj", "trainable_span": 2}
                        ).trainable_parameters(tiny_model)
    assert [id(p) for p in ps] == [id(tiny_model.model.layers[i].mlp.down_proj.weight) for i in (0, 1)]
    with pytest.raises(SpecError, match="no module 'mlp.up'"):
        make_objective("rmu", {"trainable": "mlp.up"}).trainable_parameters(tiny_model)
    assert make_objective("ga").trainable_parameters(tiny_model) is None
