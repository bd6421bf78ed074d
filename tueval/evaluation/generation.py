"""Batched greedy generation from left-padded prompts, cut at EOS, and ROUGE recall against the answers."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from rouge_score import rouge_scorer

from ..data.format import encode_prompts
from ..forward import eval_mode, model_device


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input_ids and attention_mask ([B, T]) from token-id lists."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, T - len(r):] = torch.as_tensor(list(r), dtype=torch.long)
            attn[i, T - len(r):] = 1
    return ids, attn


def cut_at_eos(tokens: torch.Tensor, eos_id: int | None) -> list[list[int]]:
    """Token lists of each row up to (excluding) its first EOS."""
    if eos_id is None:
        return tokens.tolist()
    keep = (tokens == eos_id).long().cumsum(1) == 0
    lengths = keep.sum(1).tolist()
    return [row[:n] for row, n in zip(tokens.tolist(), lengths)]


def generate_answers(
    model, tokenizer, questions: Sequence[str], batch_size: int = 32, max_new_tokens: int = 64,
) -> list[str]:
    """Greedy answers to ``questions`` (the tokenizer's prompt format, ``tueval.data.format``), decoded and cut
    at EOS."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    enc = encode_prompts(tokenizer, questions)
    order = np.argsort([len(e) for e in enc], kind="stable")
    out: list[str] = [""] * len(questions)
    device = model_device(model)
    with eval_mode(model):
        for start in range(0, len(enc), batch_size):
            idx = order[start: start + batch_size]
            ids, attn = left_pad([enc[i] for i in idx], pad)
            gen = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos)
            new = cut_at_eos(gen[:, ids.shape[1]:].cpu(), eos)
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, t in zip(idx, texts):
                out[i] = t.strip()
    return out


_SCORER: rouge_scorer.RougeScorer | None = None


def rouge_recall(generations: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """ROUGE-1 and ROUGE-L recall of each generation against its reference (rouge-score, Porter stemmer)."""
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    scores = [_SCORER.score(ref, gen) for gen, ref in zip(generations, references)]
    return (np.array([s["rouge1"].recall for s in scores], dtype=float),
            np.array([s["rougeL"].recall for s in scores], dtype=float))
