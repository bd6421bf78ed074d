"""Span-to-token alignment through tokenizer offset mappings, with a declared overlap rule."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .schema import Span

OVERLAP_RULES = ("any", "majority")
"""``any``: a token is a ground-truth token if its characters overlap a span at all.
``majority``: if at least half of its (non-space) characters lie inside spans."""


def span_token_mask(
    offsets: np.ndarray, spans: Sequence[Span], rule: str = "any", valid: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask [n_tokens] of tokens overlapping ``spans`` (offsets: [n_tokens, 2] char offsets)."""
    if rule not in OVERLAP_RULES:
        raise ValueError(f"unknown overlap rule '{rule}'; valid: {', '.join(OVERLAP_RULES)}")
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    n = offsets.shape[0]
    if n == 0 or not spans:
        return np.zeros(n, dtype=bool)
    sp = np.asarray([[s.start, s.end] for s in spans], dtype=np.int64)  # [S, 2]
    ts, te = offsets[:, 0:1], offsets[:, 1:2]  # [n, 1]
    inter = np.clip(np.minimum(te, sp[None, :, 1]) - np.maximum(ts, sp[None, :, 0]), 0, None)  # [n, S]
    width = (te - ts)[:, 0]
    if rule == "any":
        mask = inter.sum(1) > 0
    else:
        mask = (width > 0) & (2 * inter.sum(1) >= width)
    mask &= width > 0
    if valid is not None:
        mask &= valid
    return mask
