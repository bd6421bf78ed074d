"""TOFU-style per-example evaluation of the tiny random model on the toy examples."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tueval.data.format import continuation_text, prompt_text
from tueval.data.schema import Example
from tueval.errors import DataError
from tueval.evaluation.eval_log import read_eval_log, write_eval_log
from tueval.evaluation.generation import cut_at_eos, generate_answers, left_pad, rouge_recall
from tueval.evaluation.likelihood import batch_answer_stats
from tueval.evaluation.tofu_aggregate import truth_ratios
from tueval.evaluation.summary import SUMMARY_KEYS, summarise
from tueval.evaluation.tofu import evaluate_examples

FIELDS = ["example_id", "avg_gt_loss", "gt_loss", "num_token_gt", "generated_text", "rouge1_recall",
          "rougeL_recall", "avg_paraphrased_loss", "paraphrased_loss", "num_token_paraphrased",
          "average_perturb_loss", "perturb_loss", "num_token_perturb", "truth_ratio", "prob", "acc", "fact_acc"]


def direct_answer_nll(model, tok, question: str, answer: str) -> tuple[float, int]:
    """Summed NLL of ' answer' + EOS after the prompt, one example, no padding (independent of collate)."""
    p = tok(prompt_text(question))["input_ids"]
    a = tok(continuation_text(answer), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    nll = F.cross_entropy(logits[len(p) - 1:-1], ids[0, len(p):], reduction="sum")
    return float(nll), len(a)


@pytest.fixture()
def forget_df(tiny_model, tiny_tokenizer, toy_examples):
    return evaluate_examples(tiny_model, tiny_tokenizer, toy_examples[:4], "forget", batch_size=3, max_new_tokens=6)


def test_fields_and_shapes(forget_df, toy_examples):
    df = forget_df
    assert df.columns.tolist() == FIELDS and len(df) == 4
    assert df["example_id"].tolist() == [e.id for e in toy_examples[:4]]
    assert all(len(x) == 3 for x in df["average_perturb_loss"]) and all(len(x) == 3 for x in df["num_token_perturb"])
    assert np.isfinite(df["truth_ratio"]).all() and (df["truth_ratio"] > 0).all()
    np.testing.assert_allclose(df["truth_ratio"], truth_ratios(df), rtol=1e-12)
    np.testing.assert_allclose(df["avg_gt_loss"], df["gt_loss"] / df["num_token_gt"], rtol=1e-12)
    np.testing.assert_allclose(df["prob"], np.exp(-df["avg_gt_loss"]), rtol=1e-12)
    assert df["acc"].between(0, 1).all() and df["fact_acc"].between(0, 1).all()
    assert df["rougeL_recall"].between(0, 1).all()
    g = df["generated_text"].iloc[0]
    assert g[0] == prompt_text(toy_examples[0].question) and g[2] == toy_examples[0].answer


def test_losses_match_direct_per_example(forget_df, tiny_model, tiny_tokenizer, toy_examples):
    for i, e in enumerate(toy_examples[:4]):
        nll, n = direct_answer_nll(tiny_model, tiny_tokenizer, e.question, e.answer)
        assert forget_df["num_token_gt"].iloc[i] == n
        assert forget_df["avg_gt_loss"].iloc[i] == pytest.approx(nll / n, abs=1e-5)
        nll_p, n_p = direct_answer_nll(tiny_model, tiny_tokenizer, e.question, e.paraphrased_answer)
        assert forget_df["avg_paraphrased_loss"].iloc[i] == pytest.approx(nll_p / n_p, abs=1e-5)
        nll_k, n_k = direct_answer_nll(tiny_model, tiny_tokenizer, e.question, e.perturbed_answers[2])
        assert forget_df["perturb_loss"].iloc[i][2] == pytest.approx(nll_k, abs=1e-4)
        assert forget_df["num_token_perturb"].iloc[i][2] == n_k


def test_batch_size_invariance(tiny_model, tiny_tokenizer, toy_examples):
    a = evaluate_examples(tiny_model, tiny_tokenizer, toy_examples[:5], "retain", batch_size=1, generate=False)
    b = evaluate_examples(tiny_model, tiny_tokenizer, toy_examples[:5], "retain", batch_size=5, generate=False)
    np.testing.assert_allclose(a["avg_gt_loss"], b["avg_gt_loss"], atol=1e-5)
    np.testing.assert_allclose(np.stack(a["average_perturb_loss"]), np.stack(b["average_perturb_loss"]), atol=1e-5)
    assert a["rougeL_recall"].isna().all() and a["generated_text"].isna().all()


def test_real_authors_use_answer_as_correct(tiny_model, tiny_tokenizer, toy_examples):
    exs = [Example(e.id, e.subject, e.question, e.answer, "", e.perturbed_answers, e.spans) for e in toy_examples[4:]]
    df = evaluate_examples(tiny_model, tiny_tokenizer, exs, "real_authors", generate=False)
    np.testing.assert_array_equal(df["avg_paraphrased_loss"], df["avg_gt_loss"])
    np.testing.assert_array_equal(df["num_token_paraphrased"], df["num_token_gt"])
    p = np.exp(-df["avg_gt_loss"].to_numpy())
    all_p = p + np.exp(-np.stack(df["average_perturb_loss"])).sum(1)
    np.testing.assert_allclose(df["normalized_gt_loss"], -np.log(p / all_p), rtol=1e-10)
    with pytest.raises(DataError, match="paraphrased_answer"):
        evaluate_examples(tiny_model, tiny_tokenizer, exs, "forget", generate=False)


def test_bad_examples(tiny_model, tiny_tokenizer, toy_examples):
    e = toy_examples[0]
    bad = Example(e.id, e.subject, e.question, e.answer, e.paraphrased_answer, [])
    with pytest.raises(DataError, match="row 1.*perturbed_answer"):
        evaluate_examples(tiny_model, tiny_tokenizer, [e, bad], "forget")
    with pytest.raises(ValueError, match="unknown evaluation kind"):
        evaluate_examples(tiny_model, tiny_tokenizer, [e], "holdout")


def test_accuracy_on_hand_batch(toy_batch):
    # logits that put all mass on the true next token everywhere: acc = fact_acc = 1, NLL ~ 0
    B, T = toy_batch.input_ids.shape
    logits = torch.full((B, T, 400), -30.0)
    logits[:, :-1].scatter_(-1, toy_batch.input_ids[:, 1:, None], 30.0)
    s = batch_answer_stats(logits, toy_batch)
    assert torch.all(s["acc"] == 1) and torch.all(s["fact_acc"] == 1)
    assert torch.all(s["sum_nll"] < 1e-6) and torch.equal(s["n_tokens"], toy_batch.answer_mask.sum(1))
    # shift the predictions by one token: every answer token wrong
    s2 = batch_answer_stats(torch.roll(logits, 1, dims=2), toy_batch)
    assert torch.all(s2["acc"] == 0)


def test_rouge_recall():
    ans = "Ana Lopez was born in Lisbon in 1950, and writes mystery novels."
    r1, rl = rouge_recall([ans, "Ana Lopez was born in Paris.", ""], [ans, ans, ans])
    assert r1[0] == 1.0 and rl[0] == 1.0
    assert 0 < rl[1] < 1 and r1[1] == pytest.approx(5 / 12)
    assert r1[2] == 0.0


def test_left_pad_and_cut_at_eos():
    ids, attn = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and attn.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert cut_at_eos(torch.tensor([[4, 2, 9], [2, 5, 5], [7, 8, 9]]), eos_id=2) == [[4], [], [7, 8, 9]]


def test_batched_generation_matches_single(tiny_model, tiny_tokenizer, toy_examples):
    torch.manual_seed(1)
    with torch.no_grad():  # sharpen the random model so that generations differ between prompts
        for p in tiny_model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    qs = [e.question for e in toy_examples] + ["Who?", "Where and when was the mystery novelist Ana Lopez born?"]
    assert len({len(tiny_tokenizer(prompt_text(q))["input_ids"]) for q in qs}) > 1  # padding really happens
    batched = generate_answers(tiny_model, tiny_tokenizer, qs, batch_size=8, max_new_tokens=8)
    single = [generate_answers(tiny_model, tiny_tokenizer, [q], batch_size=1, max_new_tokens=8)[0] for q in qs]
    assert batched == single and len(set(batched)) > 1


def test_training_flag_restored(tiny_model, tiny_tokenizer, toy_examples):
    tiny_model.train()
    evaluate_examples(tiny_model, tiny_tokenizer, toy_examples[:2], "forget", max_new_tokens=2)
    assert tiny_model.training
    tiny_model.eval()


def test_round_trip_and_summary(tmp_path, tiny_model, tiny_tokenizer, toy_examples):
    tables = {k: evaluate_examples(tiny_model, tiny_tokenizer, toy_examples, k, max_new_tokens=2)
              for k in ("forget", "retain", "real_authors", "world_facts")}
    path = write_eval_log(tmp_path / "eval_log_aggregated.json", tables)
    back = read_eval_log(path)
    for k, df in tables.items():
        assert back[k].columns.tolist() == df.columns.tolist()
        for col in df.columns:
            a, b = df[col].tolist(), back[k][col].tolist()
            if col in ("example_id", "generated_text", "num_token_perturb"):
                assert a == b
            else:
                np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12)
    s = summarise(back, tables["forget"])
    assert set(SUMMARY_KEYS) <= set(s) and s["forget_quality"] == 1.0
    assert len(s["components"]) == 9 and all(0 <= v <= 1 for v in s["components"].values())
    assert s["model_utility"] is not None and 0 <= s["model_utility"] <= 1
    assert math.isfinite(s["forget_truth_ratio"])


def test_nan_round_trips_as_null(tmp_path):
    df = pd.DataFrame({"example_id": ["a"], "avg_gt_loss": [1.0], "avg_paraphrased_loss": [1.0],
                       "average_perturb_loss": [[2.0]], "rougeL_recall": [float("nan")], "fact_acc": [np.nan]})
    path = write_eval_log(tmp_path / "log.json", {"retain": df})
    assert '"rougeL_recall": {\n      "a": null' in path.read_text()
    back = read_eval_log(path)["retain"]
    assert math.isnan(back["rougeL_recall"].iloc[0]) and back["avg_gt_loss"].iloc[0] == 1.0


# ---- the shared-prefix engine against the one-sequence-per-forward reference ---------------------------------
def test_shared_prefix_scores_equal_plain_forwards(tiny_model, tiny_tokenizer, toy_examples):
    """Every answer variant scored from its question's cached prompt equals the plain forward of prompt + answer
    (sequence_stats), whatever the block size and the tokens per forward."""
    from tueval.evaluation.likelihood import PERTURBED, SetJob, field_stats, perturbed_stats, score_sets

    _sharpen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in tiny_model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=_sharpen) * 0.2)
    ref_gt = field_stats(tiny_model, tiny_tokenizer, toy_examples, "answer")
    ref_para = field_stats(tiny_model, tiny_tokenizer, toy_examples, "paraphrased_answer")
    ref_pert, offs = perturbed_stats(tiny_model, tiny_tokenizer, toy_examples)
    assert np.isfinite(ref_gt.fact_acc).all() and len(set(ref_gt.acc)) > 1
    job = {"x": SetJob(toy_examples, ("answer", "paraphrased_answer", PERTURBED))}
    for bs, mt in ((256, None), (3, 40), (1, 1)):
        s = score_sets(tiny_model, tiny_tokenizer, job, batch_size=bs, max_tokens=mt)["x"]
        np.testing.assert_array_equal(s.offsets, offs)
        for got, want in ((s.stats["answer"], ref_gt), (s.stats["paraphrased_answer"], ref_para),
                          (s.stats[PERTURBED], ref_pert)):
            np.testing.assert_allclose(got.sum_nll, want.sum_nll, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(got.n_tokens, want.n_tokens)
            np.testing.assert_array_equal(got.n_fact, want.n_fact)
            np.testing.assert_allclose(got.acc, want.acc, atol=1e-6)
            np.testing.assert_allclose(got.fact_acc, want.fact_acc, atol=1e-6)


def test_scores_without_accuracy_keep_every_likelihood_bit_for_bit(tiny_model, tiny_tokenizer, toy_examples):
    """``accuracy=False`` (the checkpoint evaluation) skips the greedy-token argmax: the accuracies are NaN and
    every summed NLL and token count equals the scoring with accuracies, bit for bit."""
    from tueval.evaluation.likelihood import PERTURBED, SetJob, score_sets

    job = {"x": SetJob(toy_examples, ("answer", "paraphrased_answer", PERTURBED))}
    full = score_sets(tiny_model, tiny_tokenizer, job, batch_size=3, max_tokens=40)["x"]
    lean = score_sets(tiny_model, tiny_tokenizer, job, batch_size=3, max_tokens=40, accuracy=False)["x"]
    for f in ("answer", "paraphrased_answer", PERTURBED):
        np.testing.assert_array_equal(lean.stats[f].sum_nll, full.stats[f].sum_nll)
        np.testing.assert_array_equal(lean.stats[f].n_tokens, full.stats[f].n_tokens)
        assert np.isnan(lean.stats[f].acc).all() and np.isnan(lean.stats[f].fact_acc).all()
        assert np.isfinite(full.stats[f].acc).all()


def test_accuracies_of_the_answer_rows_only_leave_the_table_bit_for_bit(tiny_model, tiny_tokenizer, toy_examples):
    """``SetJob.acc=("answer",)`` (the full evaluation: only the answer rows' accuracies are read) takes the argmax
    on those rows alone: their accuracies, every NLL, token and fact-token count, and the set's table equal the
    scoring with every row's accuracies, bit for bit; the other rows' accuracies are NaN."""
    import pandas as pd

    from tueval.evaluation.likelihood import PERTURBED, SetJob, score_sets
    from tueval.evaluation.tofu import set_table

    fields = ("answer", "paraphrased_answer", PERTURBED)
    full = score_sets(tiny_model, tiny_tokenizer, {"x": SetJob(toy_examples, fields)}, batch_size=3,
                      max_tokens=40)["x"]
    lean = score_sets(tiny_model, tiny_tokenizer, {"x": SetJob(toy_examples, fields, (), ("answer",))},
                      batch_size=3, max_tokens=40)["x"]
    for f in fields:
        for k in ("sum_nll", "n_tokens", "n_fact"):
            np.testing.assert_array_equal(getattr(lean.stats[f], k), getattr(full.stats[f], k))
    np.testing.assert_array_equal(lean.stats["answer"].acc, full.stats["answer"].acc)
    np.testing.assert_array_equal(lean.stats["answer"].fact_acc, full.stats["answer"].fact_acc)
    assert np.isfinite(full.stats["answer"].acc).all() and np.isfinite(full.stats[PERTURBED].acc).all()
    assert np.isnan(lean.stats[PERTURBED].acc).all() and np.isnan(lean.stats["paraphrased_answer"].acc).all()
    pd.testing.assert_frame_equal(set_table(toy_examples, "forget", lean, None),
                                  set_table(toy_examples, "forget", full, None), check_exact=True)


def test_shared_prefix_distribution_stats_equal_logit_scores(tiny_model, tiny_tokenizer, toy_examples):
    """The MIA rows' per-token statistics give the scores of ``scores_from_logits`` on the plain forward."""
    from tueval.data.collate import collate
    from tueval.evaluation.likelihood import SetJob, score_sets
    from tueval.evaluation.mia import scores_from_logits, scores_from_token_stats

    s = score_sets(tiny_model, tiny_tokenizer, {"x": SetJob(toy_examples, ("answer",), ("answer",))},
                   batch_size=3, max_tokens=50)["x"]
    lp, z, mask = s.dist["answer"]
    got = scores_from_token_stats(lp, z, mask)
    b = collate(toy_examples, tiny_tokenizer)
    with torch.no_grad():
        want = scores_from_logits(tiny_model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits,
                                  b.input_ids, b.answer_mask)
    for k in ("loss", "min_k"):
        np.testing.assert_allclose(got[k].double().numpy(), want[k].double().numpy(), atol=1e-5)
    # z-scores divide by the per-token spread of the (near-uniform, random) model: float32 noise is amplified
    np.testing.assert_allclose(got["min_k_plus_plus"].double().numpy(), want["min_k_plus_plus"].double().numpy(),
                               rtol=1e-3)
    assert got["n_tokens"].tolist() == want["n_tokens"].tolist()


def test_share_plan_groups_rows_by_their_first_tokens():
    """Rows of one prompt that begin with the same two tokens share with the lexicographically first of them (or
    the first preferred one), as far as they agree (at most up to the row's last token); other prompts' rows and
    shorter agreements share nothing."""
    from tueval.evaluation.share import padded, share_plan

    rows = [[5, 6, 7, 2], [5, 6, 8, 9, 2], [5, 6, 7, 2], [5, 9, 2], [5, 6, 7, 3, 2], [5, 6, 7, 2], [2], [5, 6, 2]]
    owner = np.array([0, 0, 0, 0, 0, 1, 0, 0])
    lens = np.array([len(r) for r in rows])
    plan = share_plan(padded(rows, lens, 0, np.int64), lens, owner)
    # prompt 0, sorted: [2] | [5,6,2] < [5,6,7,2] = [5,6,7,2] < [5,6,7,3,2] < [5,6,8,9,2] | [5,9,2]
    assert plan.parent.tolist() == [7, 7, 7, -1, 7, -1, -1, -1]
    assert plan.share.tolist() == [2, 2, 2, 0, 2, 0, 0, 0]
    rows2 = [[5, 6, 7, 8, 2], [5, 6, 7, 8, 9, 2], [5, 6, 7, 8, 2]]
    lens2 = np.array([len(r) for r in rows2])
    plan2 = share_plan(padded(rows2, lens2, 0, np.int64), lens2, np.zeros(3, dtype=np.int64))
    # a duplicate keeps its last token to run; the longer row shares the root's four tokens
    assert plan2.parent.tolist() == [-1, 0, 0] and plan2.share.tolist() == [0, 4, 4]
    assert plan2.reused.tolist() == [0, 3, 3] and plan2.wave.tolist() == [0, 1, 1]
    # a preferred row (one whose accuracies are read) is its group's root
    plan3 = share_plan(padded(rows2, lens2, 0, np.int64), lens2, np.zeros(3, dtype=np.int64),
                       prefer=np.array([False, True, False]))
    assert plan3.parent.tolist() == [1, -1, 1] and plan3.share.tolist() == [4, 0, 4]


def _sharing_examples(toy_examples) -> list[Example]:
    """The toy examples with duplicated, empty and prefix-sharing answer variants (the rows prefix sharing is for)."""
    import dataclasses

    out = []
    for i, e in enumerate(toy_examples):
        pert = [e.answer, e.perturbed_answers[0], e.answer + " Also more.", "", e.perturbed_answers[1][:12]]
        out.append(dataclasses.replace(e, paraphrased_answer=e.answer if i % 2 else e.paraphrased_answer,
                                       paraphrased_spans=e.spans if i % 2 else e.paraphrased_spans,
                                       perturbed_answers=pert, perturbed_spans=[e.spans, e.perturbed_spans[0],
                                                                                e.spans, [], []]))
    return out


def test_shared_continuations_equal_unshared_scoring(tiny_model, tiny_tokenizer, toy_examples):
    """Scoring answer variants from the rows they begin like (``share``) gives every per-row value of the scoring
    from the prompt alone: summed NLLs to 1e-6 relative, token and fact-token counts and greedy-token accuracies
    exactly, MIA log-probs to 1e-5, whatever the block size, tokens per forward and rows asking for accuracies
    or MIA statistics."""
    from tueval.evaluation.likelihood import PERTURBED, SetJob, score_sets
    from tueval.evaluation.share import padded, share_plan

    exs = _sharing_examples(toy_examples)
    fields = ("answer", "paraphrased_answer", PERTURBED)
    toks = [tiny_tokenizer(e.answer)["input_ids"] for e in exs]
    assert len({len(t) for t in toks}) > 1
    for acc, dist in ((None, ()), (("answer",), ("answer",)), ((PERTURBED,), (PERTURBED,))):
        job = {"x": SetJob(exs, fields, dist, acc)}
        for bs, mt in ((256, None), (3, 40), (1, 1)):
            a = score_sets(tiny_model, tiny_tokenizer, job, batch_size=bs, max_tokens=mt, share=False)["x"]
            b = score_sets(tiny_model, tiny_tokenizer, job, batch_size=bs, max_tokens=mt, share=True)["x"]
            for f in fields:
                x, y = a.stats[f], b.stats[f]
                np.testing.assert_allclose(y.sum_nll, x.sum_nll, rtol=1e-6, atol=1e-6)
                for k in ("n_tokens", "n_fact", "acc", "fact_acc"):
                    np.testing.assert_array_equal(getattr(y, k), getattr(x, k))
            for f in dist:
                (lp_a, z_a, m_a), (lp_b, z_b, m_b) = a.dist[f], b.dist[f]
                assert torch.equal(m_a, m_b)
                np.testing.assert_allclose(lp_b.numpy(), lp_a.numpy(), atol=1e-5)
                # z divides by the per-token spread of the near-uniform random model: float32 noise is amplified
                np.testing.assert_allclose(z_b.numpy(), z_a.numpy(), rtol=1e-3, atol=1e-4)
    # the examples do share: most variant rows have a parent
    from tueval.evaluation.encoding import encode_answers
    from tueval.evaluation.likelihood import _field_rows

    enc, own = [], []
    for f in fields:
        texts, spans, o = _field_rows(exs, f)
        enc += [t for t, _ in encode_answers(tiny_tokenizer, texts, spans)]
        own.append(o)
    lens = np.array([len(t) for t in enc])
    plan = share_plan(padded(enc, lens, 0, np.int64), lens, np.concatenate(own))
    assert (plan.parent >= 0).mean() > 0.5 and lens.min() <= 2 and plan.share.max() >= 3


def test_encodings_equal_tokenize_pairs(tiny_tokenizer, toy_examples):
    from tueval.data.collate import collate
    from tueval.evaluation.encoding import encode_answers, encode_prompts

    b = collate(toy_examples, tiny_tokenizer, "paraphrased_answer")
    prompts = encode_prompts(tiny_tokenizer, [e.question for e in toy_examples])
    answers = encode_answers(tiny_tokenizer, [e.paraphrased_answer for e in toy_examples],
                             [e.paraphrased_spans for e in toy_examples])
    for i, (p, (a, g)) in enumerate(zip(prompts, answers)):
        n = int(b.attention_mask[i].sum())
        assert p + a == b.input_ids[i, :n].tolist() and len(p) == int(b.prompt_lengths[i])
        assert g.tolist() == b.gt_mask[i, len(p):n].tolist() and g.any()
    assert encode_prompts(tiny_tokenizer, [toy_examples[0].question])[0] is prompts[0]  # memoised
