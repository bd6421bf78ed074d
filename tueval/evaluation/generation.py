"""Batched greedy generation from left-padded prompts, cut at EOS, and ROUGE recall against the answers.

Generation is transformers' greedy decoding (argmax of the float32 next-token logits, position ids from the
attention mask) written as one loop over a KV cache: rows that have emitted EOS leave the batch, and the loop
stops when every row has, or after ``max_new_tokens`` (default ``DEFAULT_MAX_NEW_TOKENS`` = 200, TOFU's and
open-unlearning's generation length: a collapsed model that never emits EOS is scored on 200 tokens, as there). ROUGE is rouge-score's (Porter stemmer), with its tokenisation memoised and the
longest common subsequence computed bit-parallel: the same numbers, at a fraction of the cost."""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from ..forward import eval_mode, model_device
from .encoding import encode_prompts
from .prefix import cache_kwarg, left_positions, new_cache, pad_rows

DEFAULT_MAX_NEW_TOKENS = 200
"""TOFU's and open-unlearning's generation length for the ROUGE metrics (``max_new_tokens`` of a RunSpec)."""


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input_ids and attention_mask ([B, T]) from token-id lists."""
    return pad_rows(rows, pad_id, left=True)


def cut_at_eos(tokens: torch.Tensor, eos_id: int | None) -> list[list[int]]:
    """Token lists of each row up to (excluding) its first EOS."""
    if eos_id is None:
        return tokens.tolist()
    keep = (tokens == eos_id).long().cumsum(1) == 0
    lengths = keep.sum(1).tolist()
    return [row[:n] for row, n in zip(tokens.tolist(), lengths)]


@torch.no_grad()
def greedy_tokens(model, prompts: Sequence[Sequence[int]], eos_id: int | None, pad_id: int,
                  max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int = 256) -> list[list[int]]:
    """Greedy continuation ids of each prompt (ids incl. BOS), cut before the first EOS; prompts are batched by
    length, ``batch_size`` at a time."""
    out: list[list[int]] = [[] for _ in prompts]
    if max_new_tokens <= 0 or not len(prompts):
        return out
    device = model_device(model)
    order = np.argsort([len(p) for p in prompts], kind="stable")
    kw = cache_kwarg(model)
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            ids, attn = left_pad([prompts[i] for i in idx], pad_id)
            ids, attn = ids.to(device), attn.to(device)
            pos = left_positions(attn)[:, -1:]
            cache = new_cache(model)
            logits = model(input_ids=ids, attention_mask=attn, position_ids=left_positions(attn), use_cache=True,
                           **{kw: cache}).logits[:, -1]
            steps = torch.zeros((len(idx), max_new_tokens), dtype=torch.long, device=device)
            row = torch.arange(len(idx), device=device)  # each alive row's place in ``steps``
            lengths = torch.full((len(idx),), max_new_tokens, dtype=torch.long, device=device)
            for t in range(max_new_tokens):
                nxt = logits.float().argmax(-1)
                steps[row, t] = nxt
                done = nxt == eos_id if eos_id is not None else torch.zeros_like(nxt, dtype=torch.bool)
                lengths[row[done]] = t
                if t == max_new_tokens - 1 or bool(done.all()):
                    break
                if bool(done.any()):  # finished rows leave the batch (their cache rows too)
                    keep = (~done).nonzero().squeeze(1)
                    cache.batch_select_indices(keep)
                    row, nxt, attn, pos = row[keep], nxt[keep], attn[keep], pos[keep]
                attn = torch.cat([attn, attn.new_ones((len(row), 1))], dim=1)
                pos = pos + 1
                logits = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos, use_cache=True,
                               **{kw: cache}).logits[:, -1]
            for i, r, n in zip(idx.tolist(), steps.tolist(), lengths.tolist()):
                out[i] = r[:n]
    return out


def generate_answers(
    model, tokenizer, questions: Sequence[str], batch_size: int = 256,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[str]:
    """Greedy answers to ``questions`` (the tokenizer's prompt format, ``tueval.data.format``), decoded and cut
    at EOS."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    new = greedy_tokens(model, encode_prompts(tokenizer, questions), eos, pad, max_new_tokens, batch_size)
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


# ------------------------------------------------------------------------------------------------------- ROUGE
@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import porter

    return porter.PorterStemmer()


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stem(word) if len(word) > 3 else word


@lru_cache(maxsize=50_000)
def rouge_tokens(text: str) -> tuple[str, ...]:
    """rouge-score's tokens of ``text`` with its Porter stemmer (lower case, alphanumeric words, words of more
    than 3 characters stemmed)."""
    from rouge_score import tokenize

    return tuple(x for x in (_stem(w) for w in tokenize.SPACES_RE.split(
        tokenize.NON_ALPHANUM_RE.sub(" ", text.lower()))) if tokenize.VALID_TOKEN_RE.match(x))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, Hyyrö 2004)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_recall(generations: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """ROUGE-1 and ROUGE-L recall of each generation against its reference (rouge-score's definitions, Porter
    stemmer)."""
    r1 = np.zeros(len(generations))
    rl = np.zeros(len(generations))
    for i, (gen, ref) in enumerate(zip(generations, references)):
        t, p = rouge_tokens(ref), rouge_tokens(gen)
        if not t:
            continue
        tc, pc = Counter(t), Counter(p)
        r1[i] = sum(min(c, pc[g]) for g, c in tc.items()) / max(len(t), 1)
        rl[i] = lcs_length(t, p) / len(t) if p else 0.0
    return r1, rl
