"""Token ids of evaluation prompts and answers, as ``tueval.data.collate.tokenize_pairs`` builds them, memoised
per tokenizer: every run of a process evaluates the same texts, so each text is tokenised once per process."""
from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from ..data.align import span_token_mask
from ..data.format import continuation_text, end_ids, format_of
from ..data.format import encode_prompts as _encode_prompts
from ..data.schema import Span

_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
MAX_MEMO = 200_000
"""Texts remembered per tokenizer (beyond that the memo is cleared: it only saves time)."""


def memo_for(tokenizer) -> dict:
    """The per-process memo of ``tokenizer`` (what was built from its output, keyed by the caller)."""
    try:
        d = _MEMO.get(tokenizer)
        if d is None:
            d = _MEMO[tokenizer] = {}
    except TypeError:  # a tokenizer that cannot be weakly referenced is not memoised
        d = {}
    if len(d) > MAX_MEMO:
        d.clear()
    return d


def encode_prompts(tokenizer, questions: Sequence[str]) -> list[list[int]]:
    """The prompt ids of each question in the tokenizer's prompt format (``tueval.data.format.encode_prompts``)."""
    memo, fmt = memo_for(tokenizer), format_of(tokenizer)
    todo = sorted({q for q in questions if ("p", fmt, q) not in memo})
    for q, ids in zip(todo, _encode_prompts(tokenizer, todo)):
        memo[("p", fmt, q)] = list(ids)
    return [memo[("p", fmt, q)] for q in questions]


def encode_answers(tokenizer, answers: Sequence[str], spans: Sequence[Sequence[Span]] | None = None,
                   overlap_rule: str = "any") -> list[tuple[list[int], np.ndarray]]:
    """Per answer: its continuation ids (the tokenizer's prompt format) followed by the end ids (EOS, or a chat
    template's end-of-turn markup), and the ground-truth mask of those ids (the end False), as ``tokenize_pairs``
    builds them."""
    spans = spans if spans is not None else [()] * len(answers)
    memo, fmt = memo_for(tokenizer), format_of(tokenizer)
    keys = [("a", fmt, a, tuple(s), overlap_rule) for a, s in zip(answers, spans)]
    todo = list(dict.fromkeys(k for k in keys if k not in memo))
    if todo:
        conts = [continuation_text(k[2], tokenizer) for k in todo]
        enc = tokenizer(conts, add_special_tokens=False, return_offsets_mapping=True)
        end = end_ids(tokenizer)
        for k, cont, ids, offs in zip(todo, conts, enc["input_ids"], enc["offset_mapping"]):
            # offsets are in continuation characters (prefix + answer): shift back by the prefix
            o = np.asarray(offs, dtype=np.int64).reshape(-1, 2) - (len(cont) - len(k[2]))
            gt = span_token_mask(np.clip(o, 0, None), list(k[3]), overlap_rule)
            memo[k] = (list(ids) + list(end), np.concatenate([gt, [False] * len(end)]).astype(bool))
    return [memo[k] for k in keys]
