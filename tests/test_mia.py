"""MIA scores (LOSS, ZLib, Min-K%, Min-K%++), AUC and privleak."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tueval.evaluation.likelihood import field_stats
from tueval.evaluation.mia import (bottom_k_mean, drop_last_token, example_scores, mia_auc, mia_summary, mia_table,
                                   min_k, privleak, scores_from_logits, zlib_length)


def test_min_k_hand_computed():
    lp = torch.tensor([[-1.0, -2.0, -3.0, -4.0, -5.0],
                       [-0.5, -9.0, -0.1, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    s = min_k(lp, mask, k=0.4)
    # row 0: floor(5*0.4)=2 lowest -> -mean(-5,-4) = 4.5; row 1: floor(3*0.4)=1 -> 9.0; row 2: no tokens -> 0
    assert s.tolist() == pytest.approx([4.5, 9.0, 0.0])
    assert min_k(lp, mask, k=1.0)[0].item() == pytest.approx(3.0)
    assert min_k(lp, mask, k=0.01)[0].item() == pytest.approx(5.0)  # at least one token
    # padding values outside the mask never enter, even when they are the smallest
    lp2 = lp.clone()
    lp2[1, 3:] = -100.0
    assert min_k(lp2, mask, k=0.4)[1].item() == pytest.approx(9.0)


def test_drop_last_token():
    m = torch.tensor([[0, 1, 1, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert drop_last_token(m).long().tolist() == [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]


def _reference_scores(logits, ids, mask, k):
    """Per-example reference in the style of open-unlearning: lists of label positions, EOS dropped, numpy sort."""
    out = []
    lp_all = torch.log_softmax(logits.double(), -1)
    for b in range(ids.shape[0]):
        pos = mask[b].nonzero().flatten().tolist()
        loss = -np.mean([lp_all[b, t - 1, ids[b, t]].item() for t in pos])
        pos = pos[:-1]
        tok = np.array([lp_all[b, t - 1, ids[b, t]].item() for t in pos])
        p = lp_all[b, [t - 1 for t in pos]].exp()
        mu = (p * lp_all[b, [t - 1 for t in pos]]).sum(-1).numpy()
        var = np.maximum((p * lp_all[b, [t - 1 for t in pos]] ** 2).sum(-1).numpy() - mu ** 2, 1e-6)
        z = (tok - mu) / np.sqrt(var)
        kk = max(1, int(len(tok) * k))
        out.append((loss, -np.mean(np.sort(tok)[:kk]), -np.mean(np.sort(z)[:kk])))
    return np.array(out)


def test_scores_from_logits_match_reference():
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 9, 11
    logits = torch.randn(B, T, V, generator=g) * 2
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 3:9] = True
    mask[1, 2:5] = True
    mask[2, 4:9] = True
    s = scores_from_logits(logits, ids, mask, k=0.4)
    ref = _reference_scores(logits, ids, mask, 0.4)
    np.testing.assert_allclose(s["loss"].numpy(), ref[:, 0], atol=1e-5)
    np.testing.assert_allclose(s["min_k"].numpy(), ref[:, 1], atol=1e-5)
    np.testing.assert_allclose(s["min_k_plus_plus"].numpy(), ref[:, 2], atol=1e-4)
    assert s["n_tokens"].tolist() == [6, 3, 5]


def test_bottom_k_mean_all_masked_rows():
    v = torch.tensor([[3.0, 1.0], [2.0, 2.0]])
    assert bottom_k_mean(v, torch.zeros(2, 2, dtype=torch.bool)).tolist() == [0.0, 0.0]


def test_mia_auc_and_privleak():
    assert mia_auc([0.1, 0.2, 0.3], [0.5, 0.6]) == 1.0
    assert mia_auc([0.5, 0.6], [0.1, 0.2, 0.3]) == 0.0
    assert mia_auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert privleak(0.7, 0.7) == pytest.approx(0.0)
    # model AUC 1 (fully memorised) vs retain 0.5: (0 - 0.5) / 0.5 * 100 = -100
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)
    assert privleak(0.25, 0.5) == pytest.approx(50.0)


def test_mia_table_on_tiny_model(tiny_model, tiny_tokenizer, toy_examples):
    forget, holdout = toy_examples[:4], toy_examples[4:]
    t = mia_table(tiny_model, tiny_tokenizer, forget, holdout)
    assert len(t) == 8 and t["label"].tolist() == [0] * 4 + [1] * 4
    assert t["split"].tolist() == ["forget"] * 4 + ["holdout"] * 4
    for col in ("loss", "zlib", "min_k", "min_k_plus_plus"):
        assert np.isfinite(t[col]).all()
    # LOSS is TOFU's average NLL incl. EOS; ZLib divides it by the compressed answer length
    st = field_stats(tiny_model, tiny_tokenizer, forget, "answer")
    np.testing.assert_allclose(t["loss"].iloc[:4], st.avg_nll, atol=1e-5)
    np.testing.assert_allclose(t["zlib"].iloc[:4], st.avg_nll / [zlib_length(e.answer) for e in forget], atol=1e-6)
    # scores do not depend on the batch composition
    single = example_scores(tiny_model, tiny_tokenizer, forget, batch_size=1)
    np.testing.assert_allclose(single["min_k_plus_plus"], t["min_k_plus_plus"].iloc[:4], atol=1e-4)
    s = mia_summary(t)
    assert set(s) >= {"mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "privleak"}
    assert all(0.0 <= s[k] <= 1.0 for k in ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus"))
    assert s["privleak"] == pytest.approx(privleak(s["mia_min_k"], 0.5))
    assert mia_summary(t, {"mia_min_k": s["mia_min_k"]})["privleak"] == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(s["privleak"])
