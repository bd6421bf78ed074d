"""Token ids of evaluation prompts and answers, as ``tueval.data.collate.tokenize_pairs`` builds them, memoised
per tokenizer: every run of a process evaluates the same texts, so each text is tokenised once per process."""
from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from ..data.align import span_token_mask
from ..data.format import continuation_text, prompt_text
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
    """The prompt ids (BOS + prompt of ``tueval.data.format``) of each question."""
    memo = memo_for(tokenizer)
    todo = sorted({q for q in questions if ("p", q) not in memo})
    if todo:
        enc = tokenizer([prompt_text(q) for q in todo], add_special_tokens=True)["input_ids"]
        for q, ids in zip(todo, enc):
            memo[("p", q)] = list(ids)
    return [memo[("p", q)] for q in questions]


def encode_answers(tokenizer, answers: Sequence[str], spans: Sequence[Sequence[Span]] | None = None,
                   overlap_rule: str = "any") -> list[tuple[list[int], np.ndarray]]:
    """Per answer: its continuation ids followed by EOS, and the ground-truth mask of those ids (EOS False)."""
    spans = spans if spans is not None else [()] * len(answers)
    memo = memo_for(tokenizer)
    keys = [("a", a, tuple(s), overlap_rule) for a, s in zip(answers, spans)]
    todo = list(dict.fromkeys(k for k in keys if k not in memo))
    if todo:
        enc = tokenizer([continuation_text(k[1]) for k in todo], add_special_tokens=False,
                        return_offsets_mapping=True)
        eos = tokenizer.eos_token_id
        for k, ids, offs in zip(todo, enc["input_ids"], enc["offset_mapping"]):
            # offsets are in continuation characters (" " + answer): shift back by the leading space
            o = np.asarray(offs, dtype=np.int64).reshape(-1, 2) - 1
            gt = span_token_mask(np.clip(o, 0, None), list(k[2]), overlap_rule)
            memo[k] = (list(ids) + [eos], np.concatenate([gt, [False]]).astype(bool))
    return [memo[k] for k in keys]
