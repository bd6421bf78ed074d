"""Collation of examples into a Batch: input_ids, attention_mask, labels, answer_mask, gt_mask, example_ids."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import torch

from .align import span_token_mask
from .format import (SPECIAL_TOKEN_POLICIES, continuation_text, encode_prompts, end_ids, format_of,
                     question_token_mask, special_token_ids)
from .schema import Example, Span

ANSWER_FIELDS = ("answer", "paraphrased_answer")


@dataclass
class Batch:
    """A tokenised batch. All [B, T] tensors are aligned with input positions (HF convention):
    ``labels[b, t] == input_ids[b, t]`` on answer tokens (incl. the final EOS) and -100 on prompt and padding;
    the model's logits at t-1 predict token t. ``answer_mask`` is ``labels != -100``; ``gt_mask`` marks answer
    tokens that overlap a ground-truth span (rule in ``overlap_rule``)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    answer_mask: torch.Tensor
    gt_mask: torch.Tensor
    example_ids: list[str]
    prompt_lengths: torch.Tensor  # [B] number of prompt tokens incl. BOS (answer starts here when right-padded)
    overlap_rule: str = "any"
    extras: dict[str, Any] = field(default_factory=dict)

    _TENSORS = ("input_ids", "attention_mask", "labels", "answer_mask", "gt_mask", "prompt_lengths")

    def __getitem__(self, key: str) -> Any:
        if key in self.extras:
            return self.extras[key]
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "extras"] + list(self.extras)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: str | torch.device) -> "Batch":
        """Move every tensor to ``device``."""
        kw = {k: (getattr(self, k).to(device) if k in self._TENSORS else getattr(self, k))
              for k in [f.name for f in fields(self)]}
        kw["extras"] = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self.extras.items()}
        return Batch(**kw)

    def select(self, idx: Sequence[int] | torch.Tensor) -> "Batch":
        """The sub-batch of rows ``idx``."""
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        kw = {k: getattr(self, k)[idx_t] for k in self._TENSORS}
        ids = [self.example_ids[i] for i in idx_t.tolist()]
        extras = {k: (v[idx_t] if torch.is_tensor(v) and v.shape[:1] == self.input_ids.shape[:1] else v)
                  for k, v in self.extras.items()}
        return Batch(example_ids=ids, overlap_rule=self.overlap_rule, extras=extras, **kw)

    def trim(self) -> "Batch":
        """The batch without trailing columns that are padding in every row."""
        T = int(self.attention_mask.sum(1).max())
        kw = {k: getattr(self, k)[:, :T] for k in self._TENSORS if k != "prompt_lengths"}
        extras = {k: (v[:, :T] if torch.is_tensor(v) and v.dim() == 2 else v) for k, v in self.extras.items()}
        return Batch(example_ids=self.example_ids, prompt_lengths=self.prompt_lengths,
                     overlap_rule=self.overlap_rule, extras=extras, **kw)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for a HF causal LM forward."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def tokenize_pairs(
    tokenizer, questions: Sequence[str], answers: Sequence[str], spans: Sequence[Sequence[Span]] | None = None,
    overlap_rule: str = "any", max_length: int | None = None, example_ids: Sequence[str] | None = None,
    special_tokens: str = "include",
) -> Batch:
    """Tokenise (question, answer) pairs into a right-padded Batch with ground-truth masks.

    The prompt format is the tokenizer's (``tueval.data.format``); an empty question is raw text. With
    ``special_tokens='exclude'`` the answer's special tokens (EOS, end-of-turn, chat markup) keep their labels but
    leave ``answer_mask``; ``auto`` follows the tokenizer's format."""
    n = len(questions)
    if len(answers) != n:
        raise ValueError("questions and answers differ in length")
    policy = format_of(tokenizer).special_tokens if special_tokens == "auto" else special_tokens
    if policy not in SPECIAL_TOKEN_POLICIES:
        raise ValueError(f"special_tokens must be auto or one of {', '.join(SPECIAL_TOKEN_POLICIES)}, "
                         f"got {special_tokens!r}")
    spans = spans if spans is not None else [[] for _ in range(n)]
    p_enc = encode_prompts(tokenizer, questions)
    q_rows = question_token_mask(tokenizer, questions, p_enc)
    conts = [continuation_text(a, tokenizer, raw=not q) for q, a in zip(questions, answers)]
    shifts = [len(c) - len(a) for c, a in zip(conts, answers)]
    a_enc = tokenizer(conts, add_special_tokens=False, return_offsets_mapping=True)
    end = end_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows, lab_rows, gt_rows, plen, cut = [], [], [], [], []
    for p_ids, a_ids, offs, sp, shift in zip(p_enc, a_enc["input_ids"], a_enc["offset_mapping"], spans, shifts):
        # offsets are in continuation characters (prefix + answer): shift back by the prefix
        offs = np.asarray(offs, dtype=np.int64).reshape(-1, 2) - shift
        gt = span_token_mask(np.clip(offs, 0, None), sp, overlap_rule)
        ids = list(p_ids) + list(a_ids) + end
        lab = [-100] * len(p_ids) + list(a_ids) + end
        if not p_ids:
            lab[0] = -100  # nothing predicts the first token of a text without BOS
        g = [False] * len(p_ids) + gt.tolist() + [False] * len(end)
        cut.append(max_length is not None and len(ids) > max_length)
        if cut[-1]:
            ids, lab, g = ids[:max_length], lab[:max_length], g[:max_length]
        rows.append(ids)
        lab_rows.append(lab)
        gt_rows.append(g)
        plen.append(len(p_ids))
    T = max(len(r) for r in rows)
    input_ids = torch.full((n, T), pad, dtype=torch.long)
    labels = torch.full((n, T), -100, dtype=torch.long)
    attn = torch.zeros((n, T), dtype=torch.long)
    gt_mask = torch.zeros((n, T), dtype=torch.bool)
    for i, (r, l, g) in enumerate(zip(rows, lab_rows, gt_rows)):
        input_ids[i, : len(r)] = torch.tensor(r)
        labels[i, : len(l)] = torch.tensor(l)
        attn[i, : len(r)] = 1
        gt_mask[i, : len(g)] = torch.tensor(g, dtype=torch.bool)
    answer_mask = labels != -100
    if policy == "exclude":
        answer_mask &= ~torch.isin(input_ids, torch.tensor(special_token_ids(tokenizer), dtype=torch.long))
        # the end-of-turn markup by position, even where its pieces are ordinary tokens (cut rows have none)
        lengths = torch.tensor([len(r) for r in rows])
        whole = ~torch.tensor(cut)
        pos = torch.arange(T)[None]
        answer_mask &= ~(whole[:, None] & (pos >= (lengths - len(end))[:, None]) & (pos < lengths[:, None]))
        gt_mask &= answer_mask
    ids = list(example_ids) if example_ids is not None else [str(i) for i in range(n)]
    extras = {}
    if q_rows is not None:
        qm = torch.zeros((n, T), dtype=torch.bool)
        for i, r in enumerate(q_rows):
            qm[i, : min(len(r), T)] = torch.tensor(r[:T], dtype=torch.bool)
        qm[:, 0] = False  # the first position is never hidden (BOS, or the template's first token)
        extras["question_mask"] = qm
    return Batch(input_ids=input_ids, attention_mask=attn, labels=labels, answer_mask=answer_mask,
                 gt_mask=gt_mask, example_ids=ids, prompt_lengths=torch.tensor(plen), overlap_rule=overlap_rule,
                 extras=extras)


def answer_variants(ex: Example, field_name: str) -> tuple[str, list[Span]]:
    """The answer text and its spans for ``answer``, ``paraphrased_answer`` or ``perturbed_answer:K``."""
    if field_name == "answer":
        return ex.answer, ex.spans
    if field_name == "paraphrased_answer":
        return ex.paraphrased_answer, ex.paraphrased_spans
    if field_name.startswith("perturbed_answer:"):
        k = int(field_name.split(":")[1])
        sp = ex.perturbed_spans[k] if k < len(ex.perturbed_spans) else []
        return ex.perturbed_answers[k], sp
    raise ValueError(f"unknown answer field '{field_name}'")


def collate(
    examples: Sequence[Example], tokenizer, field_name: str = "answer", overlap_rule: str = "any",
    max_length: int | None = None, special_tokens: str = "auto",
) -> Batch:
    """Collate examples into a Batch on one of their answer variants (special tokens: the tokenizer's policy
    unless ``special_tokens`` is ``include`` or ``exclude``)."""
    texts, spans = zip(*(answer_variants(e, field_name) for e in examples)) if examples else ((), ())
    return tokenize_pairs(tokenizer, [e.question for e in examples], list(texts), list(spans), overlap_rule,
                          max_length, [e.id for e in examples], special_tokens)
