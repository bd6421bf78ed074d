"""TOFU's per-example evaluation of a causal LM on a list of Examples (the fields of TOFU's eval logs).

As TOFU's ``eval_everything``: the "correct" answer of the truth ratio is the paraphrased answer on the forget and
retain sets and the original answer on real authors / world facts (whose paraphrased fields therefore repeat the
answer fields); real authors / world facts also get ``normalized_gt_loss`` = -log(P̄(a) / (P̄(a) + Σ_j P̄(ã_j))).
``truth_ratio`` is wrong/correct = exp(avg_paraphrased_loss - mean_j average_perturb_loss_j), as TOFU stores it
(see ``tofu_aggregate`` for the aggregates).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..data.format import prompt_text
from ..data.schema import Example
from ..errors import DataError
from .generation import DEFAULT_MAX_NEW_TOKENS, generate_answers, rouge_recall
from .likelihood import PERTURBED, SetJob, SetScores, score_sets, split_flat

KINDS = ("forget", "retain", "real_authors", "world_facts")
ANSWER_IS_CORRECT = ("real_authors", "world_facts")
"""Sets whose truth-ratio "correct" answer is the original answer (TOFU's ``base_answer_key: answer``)."""


def _validate(examples: Sequence[Example], kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown evaluation kind '{kind}'; expected one of {', '.join(KINDS)}")
    for i, e in enumerate(examples):
        if not e.answer:
            raise DataError(None, i, "answer", f"example '{e.id}' has an empty answer")
        if not e.perturbed_answers:
            raise DataError(None, i, "perturbed_answer", f"example '{e.id}' has no perturbed answers "
                                                          "(needed for the truth ratio)")
        if kind not in ANSWER_IS_CORRECT and not e.paraphrased_answer:
            raise DataError(None, i, "paraphrased_answer", f"example '{e.id}' has no paraphrased answer "
                                                            f"(needed for the truth ratio on '{kind}')")


def fields_for(kind: str) -> tuple[str, ...]:
    """The answer fields a set's table needs (real authors / world facts: no separate paraphrase)."""
    return ("answer", PERTURBED) if kind in ANSWER_IS_CORRECT else ("answer", "paraphrased_answer", PERTURBED)


def evaluate_examples(
    model, tokenizer, examples: Sequence[Example], kind: str, batch_size: int = 256,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, generate: bool = True,
) -> pd.DataFrame:
    """One row per example with TOFU's eval-log fields (+ example_id, prob, acc, fact_acc); see module doc.

    With ``generate=False`` no text is generated: ``generated_text`` is None and the ROUGE fields are NaN.
    """
    _validate(examples, kind)
    scores = score_sets(model, tokenizer, {kind: SetJob(examples, fields_for(kind), (), ("answer",))},
                        batch_size)[kind]
    gens = (generate_answers(model, tokenizer, [e.question for e in examples], batch_size, max_new_tokens)
            if generate else None)
    return set_table(examples, kind, scores, gens, tokenizer)


def set_table(examples: Sequence[Example], kind: str, scores: SetScores,
              generations: Sequence[str] | None, tokenizer=None) -> pd.DataFrame:
    """The per-example table of one set from its scores (``score_sets``) and its generations (None: no ROUGE);
    the prompt recorded with each generation is in ``tokenizer``'s format."""
    gt = scores.stats["answer"]
    para = gt if kind in ANSWER_IS_CORRECT else scores.stats["paraphrased_answer"]
    pert, offsets = scores.stats[PERTURBED], scores.offsets
    counts = np.diff(offsets)
    pert_avg = pert.avg_nll
    mean_pert = np.add.reduceat(pert_avg, offsets[:-1]) / counts if len(examples) else np.zeros(0)
    df = pd.DataFrame({"example_id": [e.id for e in examples]})
    df["avg_gt_loss"] = gt.avg_nll
    df["gt_loss"] = gt.sum_nll
    df["num_token_gt"] = gt.n_tokens
    if generations is not None:
        refs = [e.answer for e in examples]
        r1, rl = rouge_recall(generations, refs)
        df["generated_text"] = pd.Series([[prompt_text(e.question, tokenizer), g, r] for e, g, r in
                                          zip(examples, generations, refs)], dtype=object, index=df.index)
    else:
        r1 = rl = np.full(len(examples), np.nan)
        df["generated_text"] = pd.Series([None] * len(examples), dtype=object, index=df.index)
    df["rouge1_recall"] = r1
    df["rougeL_recall"] = rl
    df["avg_paraphrased_loss"] = para.avg_nll
    df["paraphrased_loss"] = para.sum_nll
    df["num_token_paraphrased"] = para.n_tokens
    df["average_perturb_loss"] = pd.Series(split_flat(pert_avg, offsets), dtype=object, index=df.index)
    df["perturb_loss"] = pd.Series(split_flat(pert.sum_nll, offsets), dtype=object, index=df.index)
    df["num_token_perturb"] = pd.Series(split_flat(pert.n_tokens, offsets), dtype=object, index=df.index)
    df["truth_ratio"] = np.exp(para.avg_nll - mean_pert)
    if kind in ANSWER_IS_CORRECT:
        p_true = np.exp(-gt.avg_nll)
        p_all = p_true + np.add.reduceat(np.exp(-pert_avg), offsets[:-1]) if len(examples) else p_true
        df["normalized_gt_loss"] = -np.log(p_true / p_all)
    df["prob"] = np.exp(-gt.avg_nll)
    df["acc"] = gt.acc
    df["fact_acc"] = gt.fact_acc
    return df
