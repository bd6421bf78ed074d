"""Alignment metrics: agreement with sklearn, chance levels, oracle/random/anti, hand examples, permutation null."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from tueval.errors import DataError
from tueval.metrics.alignment import (
    METRICS, alignment_metrics, alignment_table, average_precision, average_precision_chance, gt_permutation_null,
    masked_ranks, precision_recall_f1_at_k, roc_auc, summarise_alignment,
)


def _synthetic(B=400, T=40, seed=0, p=0.3):
    """Right-padded-like batch: a prompt prefix, answers of random length, GT tokens at random (>= 1 of each)."""
    g = torch.Generator().manual_seed(seed)
    ans = torch.zeros(B, T, dtype=torch.bool)
    lens = torch.randint(8, 30, (B,), generator=g)
    start = torch.randint(2, 8, (B,), generator=g)
    for b in range(B):
        ans[b, start[b]: start[b] + lens[b]] = True
    gt = (torch.rand(B, T, generator=g) < p) & ans
    first = ans.float().argmax(1)
    gt[torch.arange(B), first] = True          # at least one GT token
    gt[torch.arange(B), first + 1] = False     # at least one non-GT token
    return gt, ans, g


@pytest.mark.parametrize("ties", [False, True])
def test_ap_and_auc_equal_sklearn_per_example(ties):
    gt, ans, g = _synthetic(B=60, seed=1)
    scores = torch.randint(0, 4, gt.shape, generator=g).float() if ties else torch.randn(gt.shape, generator=g)
    ap, auc = average_precision(scores, gt, ans), roc_auc(scores, gt, ans)
    for b in range(gt.shape[0]):
        y, x = gt[b][ans[b]].numpy(), scores[b][ans[b]].numpy()
        assert float(ap[b]) == pytest.approx(average_precision_score(y, x), abs=1e-12)
        assert float(auc[b]) == pytest.approx(roc_auc_score(y, x), abs=1e-12)


def test_masked_ranks_equal_scipy():
    gt, ans, g = _synthetic(B=20, seed=2)
    x = torch.randint(0, 5, gt.shape, generator=g).float()
    r = masked_ranks(x, ans)
    for b in range(20):
        np.testing.assert_allclose(r[b][ans[b]].numpy(), stats.rankdata(x[b][ans[b]].numpy()))
    assert torch.isnan(r[~ans]).all()


def test_ap_chance_formula_is_exact_by_enumeration():
    n, P = 7, 3
    scores = torch.arange(n, 0, -1).float()[None]
    aps = []
    for pos in itertools.combinations(range(n), P):
        gt = torch.zeros(1, n, dtype=torch.bool)
        gt[0, list(pos)] = True
        aps.append(float(average_precision(scores, gt, torch.ones(1, n, dtype=torch.bool))[0]))
    assert float(average_precision_chance(torch.tensor(n), torch.tensor(P))) == pytest.approx(np.mean(aps), abs=1e-12)
    assert np.mean(aps) > P / n  # the prevalence underestimates chance on short answers


def test_oracle_gets_ap_one():
    gt, ans, g = _synthetic(B=50, seed=3)
    oracle = gt.float() + 0.1 * torch.rand(gt.shape, generator=g)
    m = alignment_metrics(oracle, gt, ans)
    assert torch.allclose(m["ap"], torch.ones(50, dtype=torch.float64))
    assert torch.allclose(m["ap_lift_prevalence"], 1 - m["prevalence"])
    assert torch.allclose(m["ap_lift"], 1 - m["ap_chance"])
    assert torch.allclose(m["ap_lift_norm"], torch.ones(50, dtype=torch.float64))
    for k in ("roc_auc", "f1_at_k", "precision_at_k", "recall_at_k", "iou_f1", "pointing_game"):
        assert torch.allclose(m[k], torch.ones(50, dtype=torch.float64)), k
    assert (m["relevance_mass"] > m["prevalence"]).all()
    exact = alignment_metrics(gt.float(), gt, ans)["relevance_mass"]
    assert torch.allclose(exact, torch.ones(50, dtype=torch.float64))


def test_random_mean_lift_is_zero_and_anti_is_worst():
    gt, ans, g = _synthetic(B=600, seed=4)
    oracle = gt.float() + 0.5 * torch.rand(gt.shape, generator=g)
    rand = torch.rand(gt.shape, generator=g)
    m_o, m_r, m_a = (alignment_metrics(s, gt, ans) for s in (oracle, rand, -oracle))
    lift = m_r["ap_lift"].numpy()
    lo, hi = stats.t.interval(0.95, len(lift) - 1, loc=lift.mean(), scale=stats.sem(lift))
    assert lo < 0 < hi, (lo, hi)
    # the conventional lift (AP - prevalence) is biased upwards for random scores on short answers
    assert m_r["ap_lift_prevalence"].mean() > 0.03
    auc = m_r["roc_auc"].numpy()
    lo, hi = stats.t.interval(0.95, len(auc) - 1, loc=auc.mean(), scale=stats.sem(auc))
    assert lo < 0.5 < hi
    for k in ("ap_lift", "roc_auc", "f1_at_k", "pointing_game"):
        assert m_o[k].mean() > m_r[k].mean() > m_a[k].mean(), k
    assert m_o["relevance_mass"].mean() > m_r["relevance_mass"].mean()
    assert torch.isnan(m_a["relevance_mass"]).all()  # no positive score mass at all
    assert float(m_a["roc_auc"].max()) == 0.0


def test_gt_permutation_null_brings_oracle_to_chance():
    gt, ans, g = _synthetic(B=40, seed=5)
    oracle = gt.float() + 0.1 * torch.rand(gt.shape, generator=g)
    observed = float(torch.nanmean(alignment_metrics(oracle, gt, ans)["ap_lift"]))
    null = gt_permutation_null(oracle, gt, ans, n_perm=300, generator=torch.Generator().manual_seed(0))
    assert null.shape == (300,)
    assert abs(float(null.mean())) < 0.01
    assert observed > 0.4 and observed > float(null.max())


def test_precision_recall_f1_at_k_hand_example():
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.1, 0.7, 0.2]])
    gt = torch.tensor([[0, 1, 0, 1, 0, 0]], dtype=torch.bool)
    ans = torch.tensor([[0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    p, r, f = precision_recall_f1_at_k(scores, gt, ans)  # k = |GT| = 2: picks 0.9 (GT) and 0.8 (not)
    assert (float(p), float(r), float(f)) == pytest.approx((0.5, 0.5, 0.5))
    p, r, f = precision_recall_f1_at_k(scores, gt, ans, k=3)  # adds 0.7 (not GT)
    assert (float(p), float(r), float(f)) == pytest.approx((1 / 3, 1 / 2, 0.4))


@pytest.mark.parametrize("top,expected", [
    ([2, 3, 6, 7, 8], (1.0, 1.0, 1.0)),   # runs {2,3} IoU 2/3 and {6,7,8} IoU 2/3: both hits
    ([0, 1, 2, 8, 9], (0.0, 0.0, 0.0)),   # {0,1,2} IoU 1/5 and {8,9} IoU 1/3: misses
    ([2, 3, 4, 5, 6], (1.0, 0.5, 2 / 3)),  # one run {2..6}, IoU 3/5 with {2,3,4}: 1 hit of 1 pred, of 2 GT spans
])
def test_iou_f1_hand_examples(top, expected):
    T = 10
    gt = torch.zeros(1, T, dtype=torch.bool)
    gt[0, [2, 3, 4, 7, 8]] = True
    scores = torch.zeros(1, T)
    scores[0, top] = torch.linspace(1.0, 0.5, len(top))
    m = alignment_metrics(scores, gt, torch.ones(1, T, dtype=torch.bool))
    got = (float(m["iou_precision"]), float(m["iou_recall"]), float(m["iou_f1"]))
    assert got == pytest.approx(expected)


def test_pointing_game_ties_and_relevance_mass():
    scores = torch.tensor([[1.0, 1.0, 0.5, -2.0], [3.0, -1.0, 1.0, 0.0]])
    gt = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    m = alignment_metrics(scores, gt, torch.ones(2, 4, dtype=torch.bool))
    assert m["pointing_game"].tolist() == pytest.approx([0.5, 0.0])  # tied top pair, half of it GT
    assert m["relevance_mass"].tolist() == pytest.approx([1 / 2.5, 1 / 4])


def test_single_class_examples_are_flagged_and_excluded():
    scores = torch.rand(3, 5)
    gt = torch.tensor([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 1, 0]], dtype=torch.bool)
    df = alignment_table(scores, gt, torch.ones(3, 5, dtype=torch.bool), ["a", "b", "c"])
    assert df["single_class"].tolist() == [True, True, False]
    assert df["ap"].isna().tolist() == [True, True, False]
    assert df["roc_auc"].isna().tolist() == [True, True, False]
    summ = summarise_alignment(df).set_index("metric")
    assert summ.loc["ap", "n"] == 1 and summ.loc["ap", "mean"] == pytest.approx(df["ap"].iloc[2])


def test_per_label_breakdown():
    # answer of 8 tokens: label A at 1,2 (scored top), label B at 5 (scored below the background)
    scores = torch.tensor([[0.5, 0.9, 0.8, 0.4, 0.3, 0.1, 0.2, 0.35]])
    labels = np.array([[None, "A", "A", None, None, "B", None, None]], dtype=object)
    gt = torch.tensor([[v is not None for v in labels[0]]])
    df = alignment_table(scores, gt, torch.ones(1, 8, dtype=torch.bool), ["x"], labels=labels)
    assert set(df["label"]) == {"all", "A", "B"}
    a, b = df.set_index("label").loc["A"], df.set_index("label").loc["B"]
    assert a["ap"] == pytest.approx(1.0) and a["recall_at_k"] == pytest.approx(1.0)
    assert b["ap"] == pytest.approx(1 / 6) and b["recall_at_k"] == pytest.approx(0.0)  # B ranked last of 6
    assert a["n_tokens"] == 7 and b["n_tokens"] == 6  # positives + the 5 background tokens


def test_oracle_on_real_batch(toy_batch):
    oracle = toy_batch.gt_mask.float() + 0.01 * torch.rand(toy_batch.gt_mask.shape)
    df = alignment_table(oracle, toy_batch.gt_mask, toy_batch.answer_mask, toy_batch.example_ids)
    assert len(df) == len(toy_batch) and (df["ap"] == 1.0).all()
    assert (df["prevalence"] > 0).all() and (df["prevalence"] < 1).all()


def test_nan_score_names_the_row():
    scores = torch.zeros(2, 4)
    scores[1, 2] = float("nan")
    with pytest.raises(DataError, match="row 1"):
        average_precision(scores, torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool))


def test_metric_metadata():
    assert METRICS["ap"].chance == "ap_chance" and METRICS["roc_auc"].chance == 0.5
    assert all(m.higher_is_better for m in METRICS.values())


# ---------------------------------------------------------------------------------------------------------------
# "is it just the subject's name?": tokens copied from the question, values by token class, the variant without them
def _ids_batch(rows, prompt_lens, question):
    from tueval.data.collate import Batch

    ids = torch.tensor(rows)
    pos = torch.arange(ids.shape[1])[None]
    plen = torch.tensor(prompt_lens)[:, None]
    ans = pos >= plen
    q = torch.tensor(question, dtype=torch.bool)
    return Batch(ids, torch.ones_like(ids), torch.where(ans, ids, torch.full_like(ids, -100)), ans,
                 torch.zeros_like(ans), [f"e{i}" for i in range(len(rows))], torch.tensor(prompt_lens)), q


def test_copied_from_question_by_hand():
    from tueval.scoring import copied_from_question

    # prompt: BOS q q q SEP | answer; row 0 copies the run (7, 8) and the lone 9 (a single token is not a run)
    rows = [[1, 7, 8, 9, 2, 7, 8, 5, 9, 6], [1, 3, 4, 5, 2, 4, 3, 5, 4, 5]]
    question = [[0, 1, 1, 1, 0, 0, 0, 0, 0, 0]] * 2
    batch, q = _ids_batch(rows, [5, 5], question)
    c = copied_from_question(batch, hide=q)
    assert c[0].tolist() == [False] * 5 + [True, True, False, False, False]
    assert c[1].tolist() == [False] * 8 + [True, True]  # (4, 5) occurs in the question; (4, 3), (3, 5) do not
    assert (copied_from_question(batch, hide=q, min_len=1) >= c).all()
    assert copied_from_question(batch, hide=q, min_len=3).sum() == 0
    assert not (c & ~batch.answer_mask).any()


def test_copied_from_question_finds_the_subject_name(toy_batch, tiny_tokenizer, toy_examples):
    from tueval.scoring import copied_from_question

    c = copied_from_question(toy_batch, tiny_tokenizer)
    for i, e in enumerate(toy_examples):
        text = tiny_tokenizer.decode(toy_batch.input_ids[i][c[i]])
        assert e.subject.split()[-1] in text  # the name the question asks about
        assert e.answer.split(" in ")[1].split()[0].strip(",") not in text  # the birthplace is not in the question


def test_values_by_class_and_the_variant_without_copied_tokens(toy_batch, tiny_tokenizer, toy_examples):
    from tueval.analysis.alignment_tables import (alignment_rows, span_copy_counts, token_classes,
                                                  values_by_class)
    from tueval.analysis.forget import ForgetData, token_labels
    from tueval.analysis.scores import ScoreSet
    from tueval.scoring import copied_from_question

    data = ForgetData(list(toy_examples), toy_batch, token_labels(toy_examples, tiny_tokenizer), None, None,
                      tiny_tokenizer)
    copied = copied_from_question(toy_batch, tiny_tokenizer)
    cls = token_classes(data, copied)
    ans, gt = toy_batch.answer_mask, toy_batch.gt_mask.bool() & toy_batch.answer_mask
    assert torch.equal(cls["copied fact"] | cls["fact, not copied"], gt)
    assert torch.equal(cls["copied"] | cls["fact, not copied"] | cls["not fact, not copied"], ans)
    v = torch.arange(ans.numel(), dtype=torch.float32).reshape(ans.shape)
    t = values_by_class({"x": v}, cls).set_index("tokens")
    m = cls["copied"]
    want = float(np.mean([float(v[i][m[i]].mean()) for i in range(len(m)) if m[i].any()]))
    assert t.loc["copied", "mean_over_examples"] == pytest.approx(want)
    assert t.loc["copied", "pooled_mean"] == pytest.approx(float(v[m].mean()))
    assert t.loc["copied", "n_tokens"] == int(m.sum())
    counts = span_copy_counts(data).set_index("label")
    assert counts.loc["name", "in_question"] == counts.loc["name", "spans"] == len(toy_examples)
    assert counts.loc["birthplace", "in_question"] == 0
    # leaving the copied tokens out equals scoring on the reduced masks; the names' rows disappear
    ss = ScoreSet({("oracle", None): gt.float() + 0.01 * v}, seeds=(0,))
    full, nc = alignment_rows(ss, data, "spans"), alignment_rows(ss, data, "spans", drop=copied)
    want = alignment_metrics(gt.float() + 0.01 * v, gt & ~copied, ans & ~copied)["ap"].numpy()
    np.testing.assert_allclose(nc[nc.label == "all"].ap.to_numpy(float), want)
    assert "name" in set(full.label) and "name" not in set(nc.label)
