"""TIF's targeted-information identifier (methods.md §5.1), offline: answer words are GENERAL (kept) or
UNWANTED (forgotten). Score 1 = unwanted, 0 = general; the first EOS is general (TIF's code).

Words are whitespace-delimited words of the answer, mapped to tokens by character offsets; a token is general
iff it overlaps a general word, every other answer token (punctuation not covered by a general word included)
is unwanted. Identifiers:
  ``ref_masked`` (default): a word is general if the scored model (the reference, before unlearning) predicts
      every one of its tokens at top-1 under teacher forcing with the question hidden (as TokenUnlearn): words
      the model can produce without knowing who the question is about. Non-privileged: it uses only the model
      being unlearned, as TIF's identifiers (an external LLM or masked LM) do;
  ``annotations``: TIF's word-list files (``annotations`` = path): general = ``common_words`` when present,
      else every word outside ``target_words``;
  ``retain`` (an ORACLE, never a paper row): the same top-1 test with the retain model (``context.retain_model``),
      the gold model forget quality is measured against, so its unwanted words are the facts that model lacks.
Needs ``context.tokenizer`` (for character offsets). Static: computed once; cost 1 forward per example.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.schema import Span
from ..errors import DataError, SpecError
from ..forward import model_forward
from .base import SCORERS, Scorer, ScoringContext, require
from .tokenunlearn import MASK_MODES, question_mask

IDENTIFIERS = ("ref_masked", "annotations", "retain")
#: identifiers that read privileged information (the retain model): oracle variants only
ORACLE_IDENTIFIERS = ("retain",)


@dataclass
class TIFAnnotation:
    """One annotated QA pair: unwanted (``target_spans``) and, when given, general (``common_spans``) word spans
    in answer characters."""

    question: str
    answer: str
    target_spans: list[Span]
    common_spans: list[Span] | None

    def general_spans(self) -> list[Span] | None:
        """Spans of general words (None: derive them as the words outside ``target_spans``)."""
        return self.common_spans


def _parse_words(items, answer: str, file: str, row: int, field: str) -> list[Span]:
    if items is None:
        return []
    if isinstance(items, str):
        try:
            items = json.loads(items)
        except json.JSONDecodeError:
            items = [items]
    if not isinstance(items, list):
        raise DataError(file, row, field, f"expected a list of words, got {type(items).__name__}")
    spans, cursor = [], 0
    for it in items:
        if isinstance(it, str):
            try:
                parsed = json.loads(it)
                it = parsed if isinstance(parsed, dict) else it
            except json.JSONDecodeError:
                pass
        if isinstance(it, dict):
            word = it.get("word", it.get("text"))
            if "start" in it and "end" in it:
                s, e = int(it["start"]), int(it["end"])
                if not (0 <= s < e <= len(answer)):
                    raise DataError(file, row, field, f"offsets [{s}, {e}) fall outside the answer "
                                                      f"(length {len(answer)})")
                if word is None or answer[s:e] == word:
                    spans.append(Span(s, e, "tif"))
                    continue
            if word is None:
                raise DataError(file, row, field, f"entry {it!r} has neither offsets nor a word")
            it = str(word)
        if not isinstance(it, str):
            raise DataError(file, row, field, f"entry {it!r} is neither a word nor {{word, start, end}}")
        k = answer.find(it, cursor)
        if k < 0:
            k = answer.find(it)
        if k < 0:
            raise DataError(file, row, field, f"word {it!r} does not occur in the answer")
        spans.append(Span(k, k + len(it), "tif"))
        cursor = k + len(it)
    return spans


def tif_annotations(path: str | Path) -> list[TIFAnnotation]:
    """Read TIF word-list annotations: JSON lines (or a JSON list) with question, answer, target_words and/or
    common_words; words are {word, start, end} dicts (or JSON strings of them, or bare words located in the
    answer). Bad rows raise DataError naming the file, the row and the field."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(str(p), None, None, f"invalid JSON: {e}") from e
        numbered = list(enumerate(rows))
    else:
        numbered = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    numbered.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(str(p), i, None, f"invalid JSON: {e}") from e
    out = []
    for i, r in numbered:
        if not isinstance(r, dict):
            raise DataError(str(p), i, None, "expected a JSON object")
        for f in ("question", "answer"):
            if not isinstance(r.get(f), str):
                raise DataError(str(p), i, f, "missing or not a string")
        if "target_words" not in r and "common_words" not in r:
            raise DataError(str(p), i, "target_words", "a row needs target_words or common_words")
        tgt = _parse_words(r.get("target_words"), r["answer"], str(p), i, "target_words")
        com = (_parse_words(r["common_words"], r["answer"], str(p), i, "common_words")
               if "common_words" in r else None)
        out.append(TIFAnnotation(r["question"], r["answer"], tgt, com))
    return out


_WORD = re.compile(r"\S+")


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n, m] overlap of character ranges a [n,2] and b [m,2] (zero-width ranges never overlap)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=bool)
    return ((a[:, None, 0] < b[None, :, 1]) & (a[:, None, 1] > b[None, :, 0])
            & (a[:, None, 1] > a[:, None, 0]) & (b[None, :, 1] > b[None, :, 0]))


@SCORERS.register("tif")
class TIFScorer(Scorer):
    """TIF identifier (see module doc): 1 = unwanted, 0 = general. Settings: ``identifier`` (ref_masked |
    annotations | retain, the oracle), ``annotations`` (path, for identifier='annotations'), ``mask`` (question |
    prompt, for ref_masked)."""

    name = "tif"
    static = True
    cost = 1.0

    def __init__(self, identifier: str = "ref_masked", annotations: str | None = None, mask: str = "question"):
        self.identifier, self.annotations, self.mask = identifier, annotations, mask
        if identifier not in IDENTIFIERS:
            raise SpecError(f"scorer 'tif': identifier '{identifier}' is not one of {', '.join(IDENTIFIERS)}")
        if identifier == "annotations" and not annotations:
            raise SpecError("scorer 'tif': identifier='annotations' needs annotations=<path to a TIF word-list file>")
        if mask not in MASK_MODES:
            raise SpecError(f"scorer 'tif': mask '{mask}' is not one of {', '.join(MASK_MODES)}")
        self._lookup: dict | None = None

    @property
    def needs_retain_model(self) -> bool:  # type: ignore[override]
        return self.identifier == "retain"

    def _answer_offsets(self, batch, tokenizer):
        """Per example: continuation text, answer-token positions (EOS excluded) and their char offsets."""
        plen = batch.prompt_lengths.tolist()
        n_ans = batch.answer_mask.sum(-1).tolist()
        eos = tokenizer.eos_token_id
        rows = []
        for i in range(len(plen)):
            ids = batch.input_ids[i, plen[i]: plen[i] + n_ans[i]].tolist()
            if ids and ids[-1] == eos:
                ids = ids[:-1]
            rows.append(ids)
        texts = tokenizer.batch_decode(rows, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for i, (ids, offs) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):
            if list(ids) != rows[i]:
                raise SpecError(f"scorer 'tif': example {batch.example_ids[i]}: the answer does not re-tokenise to "
                                "the same ids, so character offsets are unavailable")
            out.append((texts[i], np.arange(plen[i], plen[i] + len(ids)),
                        np.asarray(offs, dtype=np.int64).reshape(-1, 2)))
        return out

    def _annotation_lookup(self) -> dict:
        if self._lookup is None:
            self._lookup = {}
            for a in tif_annotations(self.annotations):
                self._lookup[(a.question.strip(), a.answer.strip())] = a
                self._lookup.setdefault(("", a.answer.strip()), a)
        return self._lookup

    def _top1_correct(self, model, batch, ctx: ScoringContext) -> torch.Tensor:
        """[B, T] bool: the identifier model's top-1 prediction equals the token at t."""
        if self.identifier == "retain":
            lm = require(ctx.retain_model, "context.retain_model (a model that lacks the forget facts)", self.name)
            am = None
        else:
            lm = model
            hide = question_mask(batch, ctx.tokenizer, self.mask)
            am = batch.attention_mask * (~hide).to(batch.attention_mask.dtype)
        with torch.no_grad():
            logits = model_forward(lm, batch, attention_mask=am).logits
        pred = logits[:, :-1].argmax(-1)
        return torch.nn.functional.pad(pred == batch.input_ids[:, 1:], (1, 0))

    def general_mask(self, model, batch, context: ScoringContext | None = None) -> torch.Tensor:
        """[B, T] bool: general answer tokens (the first EOS included)."""
        ctx = context or ScoringContext()
        tok = require(ctx.tokenizer, "context.tokenizer (for character offsets)", self.name)
        rows = self._answer_offsets(batch, tok)
        general = np.zeros(tuple(batch.input_ids.shape), dtype=bool)
        if self.identifier == "annotations":
            from ..objectives.idkpo import questions_from_batch

            lookup, qs = self._annotation_lookup(), questions_from_batch(batch, tok)
            for i, (text, pos, offs) in enumerate(rows):
                ans = text[1:] if text.startswith(" ") else text
                a = lookup.get((qs[i].strip(), ans.strip())) or lookup.get(("", ans.strip()))
                if a is None:
                    raise SpecError(f"scorer 'tif': example {batch.example_ids[i]} has no entry in {self.annotations}")
                lead = len(text) - len(ans)  # continuation characters before the answer (the leading space)
                gs = a.general_spans()
                if gs is not None:
                    g = np.asarray([[s.start + lead, s.end + lead] for s in gs], dtype=np.int64).reshape(-1, 2)
                    general[i, pos] = _overlap(offs, g).any(1)
                else:
                    words = np.asarray([m.span() for m in _WORD.finditer(text)], dtype=np.int64).reshape(-1, 2)
                    t = np.asarray([[s.start + lead, s.end + lead] for s in a.target_spans],
                                   dtype=np.int64).reshape(-1, 2)
                    gw = words[~_overlap(words, t).any(1)]
                    general[i, pos] = _overlap(offs, gw).any(1)
        else:
            correct = self._top1_correct(model, batch, ctx).cpu().numpy()
            for i, (text, pos, offs) in enumerate(rows):
                words = np.asarray([m.span() for m in _WORD.finditer(text)], dtype=np.int64).reshape(-1, 2)
                ov = _overlap(offs, words)  # [n_tok, n_words]
                ok = correct[i, pos]
                word_general = ov.any(0) & ~(ov & ~ok[:, None]).any(0)
                general[i, pos] = (ov & word_general[None]).any(1)
        g = torch.from_numpy(general).to(batch.answer_mask.device)
        eos = (batch.input_ids == tok.eos_token_id) & batch.answer_mask
        first_eos = eos & (eos.long().cumsum(-1) == 1)
        return (g | first_eos) & batch.answer_mask

    def score(self, model, batch, context: ScoringContext | None = None) -> torch.Tensor:
        """1 on unwanted answer tokens, 0 on general ones (and off-answer)."""
        g = self.general_mask(model, batch, context)
        return (batch.answer_mask & ~g).float()
