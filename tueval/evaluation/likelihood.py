"""Per-sequence answer likelihoods of a causal LM: summed/average NLL (incl. EOS, as TOFU), token counts,
teacher-forced answer-token and fact-token accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..data.collate import Batch, answer_variants, tokenize_pairs
from ..data.schema import Example, Span
from ..forward import eval_mode, model_device
from ..tokens import forward_logits, masked_mean, token_logprobs


@dataclass
class SequenceStats:
    """Per-sequence answer statistics ([N] arrays); ``avg_nll = sum_nll / n_tokens`` (TOFU's avg loss)."""

    sum_nll: np.ndarray
    n_tokens: np.ndarray
    acc: np.ndarray
    fact_acc: np.ndarray  # NaN where the answer has no ground-truth (fact) tokens
    n_fact: np.ndarray

    @property
    def avg_nll(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.sum_nll / self.n_tokens

    def __len__(self) -> int:
        return len(self.sum_nll)


def batch_answer_stats(logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
    """Per-row answer stats of one batch from its logits: sum_nll, n_tokens, acc, fact_acc (NaN if no facts), n_fact."""
    lp = token_logprobs(logits, batch.input_ids)
    m = batch.answer_mask
    g = batch.gt_mask & m
    pred = torch.nn.functional.pad(logits[:, :-1].argmax(-1), (1, 0), value=-1)
    correct = (pred == batch.input_ids).float()
    n_fact = g.sum(1)
    fact_acc = masked_mean(correct, g)
    return {
        "sum_nll": -(lp * m).sum(1),
        "n_tokens": m.sum(1),
        "acc": masked_mean(correct, m),
        "fact_acc": torch.where(n_fact > 0, fact_acc, torch.full_like(fact_acc, float("nan"))),
        "n_fact": n_fact,
    }


def sequence_stats(
    model, tokenizer, questions: Sequence[str], answers: Sequence[str],
    spans: Sequence[Sequence[Span]] | None = None, batch_size: int = 32,
) -> SequenceStats:
    """Answer statistics of each (question, answer) pair, batched by length (order of the inputs is kept)."""
    n = len(questions)
    spans = spans if spans is not None else [[] for _ in range(n)]
    out = {k: np.zeros(n, dtype=float) for k in ("sum_nll", "n_tokens", "acc", "fact_acc", "n_fact")}
    order = np.argsort([len(q) + len(a) for q, a in zip(questions, answers)], kind="stable")
    device = model_device(model)
    with eval_mode(model):
        for start in range(0, n, batch_size):
            idx = order[start: start + batch_size]
            batch = tokenize_pairs(tokenizer, [questions[i] for i in idx], [answers[i] for i in idx],
                                   [spans[i] for i in idx]).to(device)
            stats = batch_answer_stats(forward_logits(model, batch), batch)
            for k, v in stats.items():
                out[k][idx] = v.double().cpu().numpy()
    return SequenceStats(sum_nll=out["sum_nll"], n_tokens=out["n_tokens"].astype(np.int64), acc=out["acc"],
                         fact_acc=out["fact_acc"], n_fact=out["n_fact"].astype(np.int64))


def field_stats(model, tokenizer, examples: Sequence[Example], field_name: str = "answer",
                batch_size: int = 32) -> SequenceStats:
    """Answer statistics of every example on one answer variant (``answer`` or ``paraphrased_answer``)."""
    texts, spans = zip(*(answer_variants(e, field_name) for e in examples)) if examples else ((), ())
    return sequence_stats(model, tokenizer, [e.question for e in examples], list(texts), list(spans), batch_size)


def perturbed_stats(model, tokenizer, examples: Sequence[Example],
                    batch_size: int = 32) -> tuple[SequenceStats, np.ndarray]:
    """Statistics of all perturbed answers of all examples, computed together; returns (flat stats, offsets).

    Example i's perturbed answers are rows ``offsets[i]:offsets[i+1]`` of the flat stats.
    """
    counts = np.array([len(e.perturbed_answers) for e in examples], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    qs = [e.question for e in examples for _ in e.perturbed_answers]
    pairs = [answer_variants(e, f"perturbed_answer:{k}") for e in examples for k in range(len(e.perturbed_answers))]
    return sequence_stats(model, tokenizer, qs, [p[0] for p in pairs], [p[1] for p in pairs], batch_size), offsets


def split_flat(values: np.ndarray, offsets: np.ndarray) -> list[list[float]]:
    """Per-example lists from a flat array and its offsets."""
    return [values[offsets[i]: offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


# ---------------------------------------------------------------------------------------------------------------
PERTURBED = "perturbed"
"""The field name of all perturbed answers of each example (rows ``offsets[i]:offsets[i+1]`` for example i)."""


@dataclass
class SetJob:
    """What to score on one set of examples: answer ``fields`` (``answer``, ``paraphrased_answer``, ``perturbed``),
    the fields whose rows also get the MIA distribution statistics (``dist``) and those that get greedy-token
    accuracies (``acc``; None: every field; elsewhere they are NaN)."""

    examples: Sequence[Example]
    fields: tuple[str, ...]
    dist: tuple[str, ...] = ()
    acc: tuple[str, ...] | None = None


@dataclass
class SetScores:
    """Per field, the statistics of every example's answer variant (``perturbed``: flat, with ``offsets``), and
    for the ``dist`` fields the per-token log-probs, Min-K%++ z-scores and valid mask ([N, L] each)."""

    stats: dict[str, SequenceStats]
    offsets: np.ndarray
    dist: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _field_rows(examples: Sequence[Example], name: str) -> tuple[list[str], list, np.ndarray]:
    """Texts, spans and owning example of the rows of one field."""
    if name == PERTURBED:
        keys = [(i, f"perturbed_answer:{k}") for i, e in enumerate(examples) for k in range(len(e.perturbed_answers))]
    else:
        keys = [(i, name) for i in range(len(examples))]
    pairs = [answer_variants(examples[i], f) for i, f in keys]
    return [p[0] for p in pairs], [p[1] for p in pairs], np.array([i for i, _ in keys], dtype=np.int64)


def score_sets(model, tokenizer, jobs: dict[str, SetJob], batch_size: int = 256,
               max_tokens: int | None = None, accuracy: bool = True,
               share: bool | None = None) -> dict[str, SetScores]:
    """Teacher-forced statistics of every job's answer fields, all in one pass of ``tueval.evaluation.prefix``: each
    question's prompt is encoded once, and all its answer variants are scored from it (``accuracy``, ``share``: see
    ``score_continuations``)."""
    from .encoding import encode_answers, encode_prompts
    from .prefix import Continuations, score_continuations

    prompts, tokens, gts, owner, dist, acc, where = [], [], [], [], [], [], {}
    for name, job in jobs.items():
        base = len(prompts)
        prompts += encode_prompts(tokenizer, [e.question for e in job.examples])
        for f in job.fields:
            texts, spans, own = _field_rows(job.examples, f)
            enc = encode_answers(tokenizer, texts, spans)
            where[name, f] = (len(tokens), len(tokens) + len(enc))
            tokens += [t for t, _ in enc]
            gts += [g for _, g in enc]
            owner.append(own + base)
            dist.append(np.full(len(enc), f in job.dist))
            acc.append(np.full(len(enc), job.acc is None or f in job.acc))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    req = Continuations(prompts, tokens, np.concatenate(owner) if owner else np.zeros(0, np.int64), gts,
                        np.concatenate(dist) if dist else np.zeros(0, bool),
                        np.concatenate(acc) if acc else np.zeros(0, bool))
    sc = score_continuations(model, req, pad, batch_size=batch_size, max_tokens=max_tokens, accuracy=accuracy,
                             share=share)
    dist_at = np.full(len(tokens), -1, dtype=np.int64)
    dist_at[sc.dist_rows] = np.arange(len(sc.dist_rows))
    out = {}
    for name, job in jobs.items():
        counts = np.array([len(e.perturbed_answers) for e in job.examples], dtype=np.int64)
        stats, dists = {}, {}
        for f in job.fields:
            a, b = where[name, f]
            stats[f] = SequenceStats(sum_nll=sc.sum_nll[a:b], n_tokens=sc.n_tokens[a:b], acc=sc.acc[a:b],
                                     fact_acc=sc.fact_acc[a:b], n_fact=sc.n_fact[a:b])
            if f in job.dist:
                at = torch.as_tensor(dist_at[a:b])
                L = int(sc.n_tokens[a:b].max()) if b > a else 0
                dists[f] = (sc.dist_lp[at, :L], sc.dist_z[at, :L], sc.dist_mask[at, :L])
        out[name] = SetScores(stats, np.concatenate([[0], np.cumsum(counts)]), dists)
    return out
