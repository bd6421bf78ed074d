"""MUSE's metrics (open-unlearning's definitions, research notes §3.3) on a workdir of the ``muse`` source.

- VerbMem: greedy continuation (<= 128 new tokens) of each ``verbmem/forget`` prompt; ROUGE-L F1 against ``gt``.
- KnowMem (forget and retain): greedy answer (<= 32 new tokens) after the in-context examples, cut at a blank line
  or the next ``Question``; ROUGE-L F1 against the answer.
- PrivLeak: Min-K% (k = 0.4) AUC of ``privleak/forget`` vs ``privleak/holdout`` texts, relative to the retain
  model's AUC: ((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain) x 100 (about 0 is ideal).
- Extraction strength and exact memorisation on the verbmem pairs, teacher-forced (EOS excluded): ES = the longest
  correctly predicted suffix over the answer length (at least 1/L, as open-unlearning's loop), EM = the share of
  answer tokens predicted at top-1.
ROUGE uses rouge-score with the Porter stemmer, as open-unlearning (MUSE's own code does not stem, scales by 100).
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from rouge_score import rouge_scorer

from ..data.collate import collate
from ..data.format import PromptFormat, format_of, set_format
from ..data.schema import Example
from ..forward import eval_mode, model_device
from ..tokens import forward_logits
from .mia import drop_last_token, mia_summary, mia_table

STOPS = ("\n\n", "\nQuestion", "Question:")
KNOWMEM_PROMPT = "Question: {question}\nAnswer:"
SUMMARY_KEYS = ("forget_verbmem_rougeL", "forget_knowmem_rougeL", "retain_knowmem_rougeL", "privleak",
                "extraction_strength", "exact_memorization")
_SCORER: rouge_scorer.RougeScorer | None = None


def rouge_l_f1(generations: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F1 of each generation against its reference (Porter stemmer)."""
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([_SCORER.score(r, g)["rougeL"].fmeasure for g, r in zip(generations, references)], dtype=float)


def raw_tokenizer(tokenizer):
    """A copy of ``tokenizer`` whose prompt is the text itself (MUSE's prompts carry their own format)."""
    policy = format_of(tokenizer).special_tokens
    return set_format(copy.copy(tokenizer), PromptFormat(template="{question}", answer_prefix="",
                                                         special_tokens=policy))


def cut_at_stops(text: str, stops: Sequence[str] = STOPS) -> str:
    """``text`` up to the first stop string."""
    cut = min([i for i in (text.find(s) for s in stops) if i >= 0] + [len(text)])
    return text[:cut].strip()


def greedy(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy continuations of raw prompt texts (batched, left-padded: ``tueval.evaluation.generation``)."""
    from .generation import generate_answers

    return generate_answers(model, raw_tokenizer(tokenizer), list(prompts), batch_size, max_new_tokens)


def knowmem_prompts(examples: Sequence[Example], icl: Sequence[Example]) -> list[str]:
    """Each question after the in-context question/answer pairs, in MUSE's knowmem format."""
    shots = "".join(KNOWMEM_PROMPT.format(question=e.question) + " " + e.answer + "\n\n" for e in icl)
    return [shots + KNOWMEM_PROMPT.format(question=e.question) for e in examples]


@torch.no_grad()
def extraction_scores(model, tokenizer, examples: Sequence[Example], batch_size: int) -> pd.DataFrame:
    """Teacher-forced extraction strength and exact memorisation of each prompt -> continuation pair."""
    tok = raw_tokenizer(tokenizer)
    es, em = np.zeros(len(examples)), np.zeros(len(examples))
    dev = model_device(model)
    with eval_mode(model):
        for i in range(0, len(examples), batch_size):
            b = collate(list(examples[i: i + batch_size]), tok, special_tokens="include").to(dev)
            logits = forward_logits(model, b)
            pred = torch.nn.functional.pad(logits[:, :-1].argmax(-1), (1, 0), value=-1)
            m = drop_last_token(b.answer_mask)
            hit = (pred == b.input_ids) & m
            L = m.sum(1)
            # the correct suffix: answer positions from the last miss on (reverse cumulative product of hits)
            wrong = (m & ~hit).flip(1).long().cumsum(1).flip(1) > 0
            suffix = (m & ~wrong).sum(1)
            es[i: i + len(b)] = torch.where(L > 0, suffix.clamp_min(1) / L.clamp_min(1), 0).double().cpu().numpy()
            em[i: i + len(b)] = (hit.sum(1) / L.clamp_min(1)).double().cpu().numpy()
    return pd.DataFrame({"example_id": [e.id for e in examples], "extraction_strength": es,
                         "exact_memorization": em})


def evaluate_muse(model, tokenizer, wd, retain_forget: pd.DataFrame | None, retain_aucs: dict | None, *,
                  generate: bool = True, batch_size: int = 32, is_reference: bool = False
                  ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """MUSE's tables and summary of ``model`` on the workdir's MUSE benchmark (no files written)."""
    del retain_forget  # MUSE compares with the retain model through the privleak AUC only
    b = wd.benchmark
    opts = b.config if isinstance(b.config, dict) else {}
    n_verb = int(opts.get("max_new_tokens_verbmem") or 128)
    n_know = int(opts.get("max_new_tokens_knowmem") or 32)
    n_icl = opts.get("icl")
    was_training = model.training
    model.eval()
    tables: dict[str, pd.DataFrame] = {}
    try:
        verb = b.split("verbmem_forget")
        t = extraction_scores(model, tokenizer, verb, batch_size)
        if generate:
            gens = greedy(model, tokenizer, [e.question for e in verb], n_verb, batch_size)
            t["generation"], t["rougeL_f1"] = gens, rouge_l_f1(gens, [e.answer for e in verb])
        else:
            t["generation"], t["rougeL_f1"] = None, np.nan
        tables["forget"] = t
        for which in ("forget", "retain"):
            qa = b.split(f"knowmem_{which}")
            icl = b.split(f"knowmem_{which}_icl") if b.has_split(f"knowmem_{which}_icl") else []
            icl = icl if n_icl is None else icl[:int(n_icl)]
            kt = pd.DataFrame({"example_id": [e.id for e in qa]})
            if generate:
                raw = greedy(model, tokenizer, knowmem_prompts(qa, icl), n_know, batch_size)
                gens = [cut_at_stops(g) for g in raw]
                kt["generation"], kt["rougeL_f1"] = gens, rouge_l_f1(gens, [e.answer for e in qa])
            else:
                kt["generation"], kt["rougeL_f1"] = None, np.nan
            tables[f"knowmem_{which}"] = kt
        mia_t = mia_table(model, tokenizer, b.split("privleak_forget"), b.split("privleak_holdout"),
                          batch_size=batch_size)
    finally:
        model.train(was_training)
    tables["mia"] = mia_t
    if is_reference:
        retain_aucs = {k: v for k, v in mia_summary(mia_t).items() if k.startswith("mia_")}
    mia = mia_summary(mia_t, retain_aucs)

    def mean(x: np.ndarray) -> float | None:
        return float(np.nanmean(x)) if len(x) and not np.isnan(x).all() else None

    summary = {"metrics": "muse",
               "forget_verbmem_rougeL": mean(tables["forget"]["rougeL_f1"].to_numpy(float)),
               "forget_knowmem_rougeL": mean(tables["knowmem_forget"]["rougeL_f1"].to_numpy(float)),
               "retain_knowmem_rougeL": mean(tables["knowmem_retain"]["rougeL_f1"].to_numpy(float)),
               "privleak": float(mia["privleak"]),
               "extraction_strength": mean(tables["forget"]["extraction_strength"].to_numpy(float)),
               "exact_memorization": mean(tables["forget"]["exact_memorization"].to_numpy(float)),
               "mia": mia, "n_examples": {k: int(len(v)) for k, v in tables.items()}, "notes": []}
    return tables, summary
