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
