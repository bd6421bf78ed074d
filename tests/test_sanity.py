"""Sanity checks: rank correlation, cascading randomisation, score shift, heuristic control scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tueval.metrics.sanity import (
    cascading_randomisation, heuristic_scores, masked_spearman, score_shift, token_counts_from_ids,
)


def test_masked_spearman_equals_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 12), generator=g).float()
    b = a + torch.randn(6, 12, generator=g)
    mask = torch.zeros(6, 12, dtype=torch.bool)
    mask[:, 2:11] = True
    rho = masked_spearman(a, b, mask)
    for i in range(6):
        ref = stats.spearmanr(a[i][mask[i]].numpy(), b[i][mask[i]].numpy()).statistic
        assert float(rho[i]) == pytest.approx(ref, abs=1e-12)
    assert torch.isnan(masked_spearman(torch.ones(1, 4), torch.rand(1, 4), torch.ones(1, 4, dtype=torch.bool))).all()


def _entropy_scorer(model, batch):
    return heuristic_scores(batch, model=model)["entropy"]


def test_cascading_randomisation_decays_for_entropy_scorer(tiny_model, toy_batch):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    df = cascading_randomisation(tiny_model, _entropy_scorer, toy_batch, seed=0)
    n_blocks = tiny_model.config.num_hidden_layers
    assert sorted(df.depth.unique()) == list(range(n_blocks + 2))
    assert df[df.depth == 1].randomised.iloc[0] == f"model.layers.{n_blocks - 1}"  # top block first
    by_depth = df.groupby("depth")["spearman"].mean()
    assert by_depth[0] == pytest.approx(1.0)
    assert by_depth.iloc[-1] < by_depth[0] - 0.2
    assert len(df) == (n_blocks + 2) * len(toy_batch)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the caller's model is untouched


def test_score_shift_concentrates_on_gt(toy_batch):
    g = torch.Generator().manual_seed(0)
    retain = torch.rand(toy_batch.gt_mask.shape, generator=g)
    target = retain + 2.0 * toy_batch.gt_mask + 0.01 * torch.rand(retain.shape, generator=g)
    df = score_shift(target, retain, toy_batch.gt_mask, toy_batch.answer_mask, toy_batch.example_ids)
    assert (df["ap_abs_delta"] == 1.0).all() and (df["abs_delta_ratio"] > 50).all()
    assert (df["ap_lift"] > 0).all() and df["example_id"].tolist() == toy_batch.example_ids
    same = score_shift(retain, retain + 0.01 * torch.rand(retain.shape, generator=g), toy_batch.gt_mask,
                       toy_batch.answer_mask)
    assert same["ap_lift"].mean() < df["ap_lift"].mean()


def test_heuristic_scores(tiny_model, toy_batch):
    counts = token_counts_from_ids(toy_batch.input_ids, 400, toy_batch.attention_mask)
    h = heuristic_scores(toy_batch, model=tiny_model, token_counts=counts)
    assert set(h) == {"position", "rarity", "entropy", "surprisal"}
    ans = toy_batch.answer_mask
    for name, s in h.items():
        assert s.shape == ans.shape and (s[~ans] == 0).all(), name
        assert torch.isfinite(s).all(), name
    pos = h["position"][0][ans[0]]
    assert pos.tolist() == list(range(int(ans[0].sum())))
    # rarity is -log of an add-one unigram probability: a more frequent token scores lower
    ids = toy_batch.input_ids[0][ans[0]]
    r = h["rarity"][0][ans[0]]
    c = counts[ids]
    i, j = int(torch.argmax(c)), int(torch.argmin(c))
    assert r[i] < r[j]
    assert h["entropy"][ans].min() > 0 and (h["surprisal"][ans] > 0).all()
    assert np.isclose(float(counts.sum()), float(toy_batch.attention_mask.sum()))
