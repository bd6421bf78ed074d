"""The forget examples under analysis, collated once with both ground truths (annotated spans and the
counterfactual target-vs-retain mask), the fact label of every GT token, and both models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..data.collate import Batch, collate, tokenize_pairs
from ..data.counterfactual import attach_counterfactual
from ..errors import SpecError
from ..scoring.control_scorers import GT_SOURCES

SUBSET_SEED = 20_240_601  # fixed: which forget examples a capped profile uses (independent of the analysis seeds)


@dataclass
class ForgetData:
    """The forget examples under analysis, collated once: the batch (with ``extras['gt_counterfactual']``), the fact
    label of every GT-span token (``labels`` [N, T], '' elsewhere), both models and the tokenizer."""

    examples: list
    batch: Batch
    labels: np.ndarray
    target: Any
    retain: Any
    tokenizer: Any
    n_total: int = 0
    gt_sources: tuple[str, ...] = GT_SOURCES

    @property
    def primary_gt(self) -> str:
        """The ground truth the single-GT analyses (SNR) use: annotated spans where the data has them, else the
        counterfactual ground truth."""
        return self.gt_sources[0]

    def gt(self, source: str = "spans") -> torch.Tensor:
        """The GT mask [N, T] (bool, answer tokens only) of ``spans`` or ``counterfactual``."""
        if source not in GT_SOURCES:
            raise SpecError(f"ground truth '{source}' is not one of {', '.join(GT_SOURCES)}")
        g = self.batch.gt_mask if source == "spans" else self.batch.extras["gt_counterfactual"]
        return g.bool() & self.batch.answer_mask.bool()

    @property
    def ids(self) -> list[str]:
        return list(self.batch.example_ids)


def present_gts(frame) -> tuple[str, ...]:
    """The ground truths a table holds (its ``ground_truth`` column), in the order of ``GT_SOURCES``."""
    have = set(frame["ground_truth"].unique())
    return tuple(g for g in GT_SOURCES if g in have)


def ground_truth_note(data: "ForgetData") -> str:
    """One sentence for a report: which ground truths were used and why."""
    if "spans" in data.gt_sources:
        return "annotated fact spans and the counterfactual ground truth (target vs retain model)"
    return ("the counterfactual ground truth only (answer tokens the target predicts more than the threshold better "
            "than the retain model): this workdir's forget split has no span annotations")


def subset_indices(n: int, max_examples: int | None) -> list[int]:
    """Indices of the examples a capped profile uses: all, or a fixed seeded sample of ``max_examples`` (sorted)."""
    if not max_examples or n <= max_examples:
        return list(range(n))
    return sorted(np.random.default_rng(SUBSET_SEED).choice(n, max_examples, replace=False).tolist())


def token_labels(examples: Sequence, tokenizer, overlap_rule: str = "any") -> np.ndarray:
    """Fact label [N, T] of every answer token inside a span ('' elsewhere), one tokenisation per label."""
    spans = [list(e.spans) for e in examples]
    names = sorted({s.label for sp in spans for s in sp})
    qs, ans = [e.question for e in examples], [e.answer for e in examples]
    out = None
    for name in names:
        b = tokenize_pairs(tokenizer, qs, ans, [[s for s in sp if s.label == name] for sp in spans], overlap_rule)
        if out is None:
            out = np.full(tuple(b.gt_mask.shape), "", dtype=object)
        out[b.gt_mask.numpy()] = name
    if out is None:
        b = tokenize_pairs(tokenizer, qs, ans, None, overlap_rule)
        out = np.full(tuple(b.gt_mask.shape), "", dtype=object)
    return out


def load_forget(wd, max_examples: int | None = None) -> ForgetData:
    """The workdir's forget split (capped to ``max_examples`` by a fixed sample), both models and ground truths."""
    exs = list(wd.benchmark.split(wd.forget_split))
    n_total = len(exs)
    exs = [exs[i] for i in subset_indices(len(exs), max_examples)]
    target, tok = wd.load_model("target")
    retain, _ = wd.load_model("retain")
    target.eval()  # its parameters keep requires_grad: the SNR analysis differentiates them
    retain.eval()
    for p in retain.parameters():
        p.requires_grad_(False)
    batch = collate(exs, tok)
    attach_counterfactual(batch, wd.ground_truth_table())
    gts = tuple(g for g in GT_SOURCES if g in getattr(wd, "ground_truths", GT_SOURCES))
    return ForgetData(exs, batch, token_labels(exs, tok, batch.overlap_rule), target, retain, tok, n_total,
                      gts or GT_SOURCES)
