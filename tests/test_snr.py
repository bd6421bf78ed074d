"""Per-example gradients (vmap == loop), the signal/noise split, and SNR metric properties."""
from __future__ import annotations

import pytest
import torch

from tueval.errors import SpecError
from tueval.metrics.snr import (
    per_example_grads, per_example_grads_loop, select_params, snr_from_grads, snr_report,
)


def _weights(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch.answer_mask.shape, generator=g) * batch.answer_mask


def test_vmap_equals_loop(tiny_model, toy_batch):
    batch = toy_batch.select([0, 3, 5, 6])
    w = _weights(batch)
    v = per_example_grads(tiny_model, batch, w, chunk_size=3)
    loop = per_example_grads_loop(tiny_model, batch, w)
    n_params = sum(p.numel() for p in tiny_model.parameters())
    assert v.shape == loop.shape == (len(batch), n_params)
    assert float((v - loop).abs().max()) < 1e-5
    assert float(loop.norm(dim=1).min()) > 0


def test_signal_plus_noise_equals_total(tiny_model, toy_batch):
    w, gt = _weights(toy_batch, 1), toy_batch.gt_mask.float()
    s, n, g = per_example_grads(tiny_model, toy_batch, torch.stack([w * gt, w * (1 - gt), w]), params="last_block")
    assert float((s + n - g).abs().max()) < 1e-5
    assert float(s.norm(dim=1).min()) > 0 and float(n.norm(dim=1).min()) > 0


def test_param_selection(tiny_model):
    names = select_params(tiny_model, "last_block")
    assert names and all(n.startswith("model.layers.1.") for n in names)
    assert select_params(tiny_model, r"embed_tokens") == ["model.embed_tokens.weight"]
    with pytest.raises(SpecError):
        select_params(tiny_model, "no_such_param")


@pytest.fixture(scope="module")
def report(tiny_tokenizer, toy_examples):
    from tueval.data.collate import collate
    from tueval.models.tiny import TinyModelConfig, build_model

    model = build_model(tiny_tokenizer, TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                                                        max_position_embeddings=128), seed=0).eval()
    batch = collate(toy_examples, tiny_tokenizer)
    ev, ref = batch.select([0, 1, 2, 3, 4]), batch.select([5, 6, 7])
    ans, gt = ev.answer_mask.float(), ev.gt_mask.float()
    w = _weights(ev, 2)
    weights = {"uniform": ans, "oracle": gt, "soft_oracle": ans + 4 * gt, "w": w, "w_x3": 3 * w}
    return snr_report(model, ev, ref, weights, params="last_block", chunk_size=2).set_index("weighting")


def test_snr_metrics_invariant_to_rescaling_weights(report):
    a, b = report.loc["w"], report.loc["w_x3"]
    for k in ("snr_dir", "inv_b_simple", "composition_ratio", "cos_mean_u"):
        assert b[k] == pytest.approx(a[k], rel=1e-4), k
    assert b["g_sq_unbiased"] == pytest.approx(9 * a["g_sq_unbiased"], rel=1e-4)


def test_oracle_weighting_has_higher_composition_than_uniform(report):
    assert report.loc["oracle", "composition_ratio"] == float("inf")  # no noise tokens at all
    assert report.loc["soft_oracle", "composition_db"] > report.loc["uniform", "composition_db"]
    assert report.loc["uniform", "n_examples"] == 5 and report.loc["uniform", "n_params"] > 0


def test_snr_from_grads_hand_example():
    u = torch.tensor([1.0, 0.0])
    s = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    n = torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0]])
    m = snr_from_grads(s, n, u)
    assert m["snr_dir"] == pytest.approx(4.0)             # projections 1, 2, 3: mean^2 / var = 4 / 1
    assert m["composition_ratio"] == pytest.approx(36.0)  # ||(6, 0)||^2 / ||(0, 1)||^2
    g = s + n                                             # unbiased |G|^2 and tr(Sigma) vs direct formulas
    gbar = g.mean(0)
    tr = float(((g - gbar) ** 2).sum(1).sum() / 2)
    assert m["tr_sigma"] == pytest.approx(tr)
    assert m["g_sq_unbiased"] == pytest.approx(float(gbar @ gbar) - tr / 3)
    assert m["cos_mean_u"] == pytest.approx(6 / 37 ** 0.5)


def test_planted_oracle_selection_has_the_best_directional_snr():
    """Planted: GT-token gradients share a direction u, the other tokens' gradients are isotropic noise. Selecting
    the GT tokens (oracle) must give the highest directional SNR, a random half less, the reversed mask (anti) ~0."""
    g = torch.Generator().manual_seed(0)
    n_ex, dim = 400, 50
    u = torch.zeros(dim)
    u[0] = 1.0
    s = u * (1.0 + 0.3 * torch.randn(n_ex, 1, generator=g))  # signal along u, modest spread
    n = 2.0 * torch.randn(n_ex, dim, generator=g)              # noise, no preferred direction
    half = torch.rand(n_ex, 1, generator=g)
    snr = {"oracle": snr_from_grads(s, torch.zeros_like(n), u)["snr_dir"],
           "random_k": snr_from_grads(half * s, (1 - half) * n, u)["snr_dir"],
           "anti": snr_from_grads(torch.zeros_like(s), n, u)["snr_dir"]}
    assert snr["oracle"] > snr["random_k"] > snr["anti"]
    assert snr["oracle"] > 5 and snr["anti"] < 0.05
