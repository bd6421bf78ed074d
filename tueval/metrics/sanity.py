"""Sanity checks for token scorers: cascading model randomisation, knowledge dependence (target vs retain
model), and heuristic control scores (rarity, position, entropy, surprisal).

A scorer is ``scorer_fn(model, batch) -> Tensor[B, T]`` (higher = more relevant; only answer tokens matter).
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from tueval.metrics.alignment import alignment_metrics, masked_ranks
from tueval.metrics.snr import transformer_blocks
from tueval.tokens import forward_logits, token_entropy, token_logprobs

Scorer = Callable[[torch.nn.Module, object], torch.Tensor]


def masked_spearman(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """Per-row Spearman rho of ``a`` and ``b`` over ``mask`` (average ranks for ties; NaN if a row is constant)."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if absolute:
        a, b = a.abs(), b.abs()
    m = torch.as_tensor(mask).bool()
    ra, rb = masked_ranks(a, m).nan_to_num(0.0), masked_ranks(b, m).nan_to_num(0.0)
    n = m.sum(1).clamp_min(1).double()
    ca = (ra - (ra * m).sum(1, keepdim=True) / n[:, None]) * m
    cb = (rb - (rb * m).sum(1, keepdim=True) / n[:, None]) * m
    den = (ca.pow(2).sum(1) * cb.pow(2).sum(1)).sqrt()
    return torch.where(den > 0, (ca * cb).sum(1) / den.clamp_min(1e-300), torch.full_like(den, float("nan")))


def _reinit(model, modules: Sequence[torch.nn.Module]) -> None:
    """Re-initialise ``modules`` (non-recursively) with the model's own init (HF ``_init_weights``)."""
    init = getattr(model, "_init_weights", None)
    with torch.no_grad():
        for m in modules:
            if init is not None:
                init(m)
            elif hasattr(m, "reset_parameters"):
                m.reset_parameters()


def cascading_randomisation(model, scorer_fn: Scorer, batch, seed: int = 0,
                            include_embeddings: bool = True) -> pd.DataFrame:
    """Spearman rho between the scores of the model and of copies with blocks re-initialised top-down.

    Depth 0 is the intact model; depth d re-initialises the top d blocks; the last depth (if
    ``include_embeddings``) also re-initialises every parameter outside the blocks (final norm, embeddings and
    the tied unembedding). Returns one row per (depth, example): ``spearman`` and ``spearman_abs`` (on |scores|)
    over the example's answer tokens, and ``randomised`` (the stage added at that depth)."""
    ans = batch.answer_mask.bool().cpu()
    with torch.no_grad():
        base = torch.as_tensor(scorer_fn(model, batch)).detach().cpu().double()
    work = copy.deepcopy(model).eval()
    blocks = transformer_blocks(work)
    stages: list[tuple[str, list[torch.nn.Module]]] = [("none", [])]
    stages += [(name, list(m.modules())) for name, m in reversed(blocks)]
    if include_embeddings:
        in_blocks = {id(m) for _, b in blocks for m in b.modules()}
        rest = [m for m in work.modules() if id(m) not in in_blocks and m is not work]
        stages.append(("embeddings+rest", rest))
    rows = []
    ids = np.asarray(batch.example_ids, dtype=object)
    for depth, (name, mods) in enumerate(stages):
        if mods:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1009 + depth)
                _reinit(work, mods)
        with torch.no_grad():
            sc = torch.as_tensor(scorer_fn(work, batch)).detach().cpu().double()
        rows.append(pd.DataFrame({
            "depth": depth, "randomised": name, "example_id": ids,
            "spearman": masked_spearman(base, sc, ans).numpy(),
            "spearman_abs": masked_spearman(base, sc, ans, absolute=True).numpy()}))
    return pd.concat(rows, ignore_index=True)


def score_shift(scores_target: torch.Tensor, scores_retain: torch.Tensor, gt_mask: torch.Tensor,
                answer_mask: torch.Tensor, example_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Knowledge dependence per example: how scores change from the target to the retain model, and whether the
    change |delta| concentrates on GT tokens (AP of |delta| vs GT with its chance level and lift)."""
    t, r = torch.as_tensor(scores_target).double().cpu(), torch.as_tensor(scores_retain).double().cpu()
    ans = torch.as_tensor(answer_mask).bool().cpu()
    gt = torch.as_tensor(gt_mask).bool().cpu() & ans
    d = (t - r) * ans
    ad = d.abs()
    rest = ans & ~gt

    def mean_on(x, m):
        c = m.sum(1)
        return torch.where(c > 0, (x * m).sum(1) / c.clamp_min(1), torch.full_like(x[:, 0], float("nan")))

    m = alignment_metrics(ad, gt, ans)
    g_abs, r_abs = mean_on(ad, gt), mean_on(ad, rest)
    ids = list(example_ids) if example_ids is not None else [str(i) for i in range(t.shape[0])]
    return pd.DataFrame({
        "example_id": ids, "mean_delta_gt": mean_on(d, gt).numpy(), "mean_delta_rest": mean_on(d, rest).numpy(),
        "mean_abs_delta_gt": g_abs.numpy(), "mean_abs_delta_rest": r_abs.numpy(),
        "abs_delta_ratio": (g_abs / r_abs).numpy(),
        "ap_abs_delta": m["ap"].numpy(), "ap_chance": m["ap_chance"].numpy(), "ap_lift": m["ap_lift"].numpy(),
        "spearman_target_retain": masked_spearman(t, r, ans).numpy(),
    })


def token_counts_from_ids(input_ids: torch.Tensor, vocab_size: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Token count table [vocab_size] from ids (e.g. the training corpus), counting only ``mask`` positions."""
    ids = torch.as_tensor(input_ids).reshape(-1)
    if mask is not None:
        ids = ids[torch.as_tensor(mask).bool().reshape(-1)]
    return torch.bincount(ids, minlength=vocab_size)[:vocab_size].double()


def heuristic_scores(batch, model=None, token_counts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Heuristic control scores [B, T] on CPU (0 outside answers): ``position`` (distance from the answer start),
    ``rarity`` (-log add-one unigram probability from ``token_counts``; rare tokens score high), and with a model
    ``entropy`` (predictive entropy at the token) and ``surprisal`` (-log p of the token)."""
    ans = batch.answer_mask.bool().cpu()
    T = ans.shape[1]
    out: dict[str, torch.Tensor] = {}
    first = torch.where(ans.any(1), ans.float().argmax(1), torch.zeros(ans.shape[0], dtype=torch.long))
    out["position"] = (torch.arange(T)[None] - first[:, None]).double().clamp_min(0) * ans
    if token_counts is not None:
        c = torch.as_tensor(token_counts).double()
        p = (c + 1) / (c.sum() + c.numel())
        ids = batch.input_ids.cpu().clamp(0, c.numel() - 1)
        out["rarity"] = -torch.log(p[ids]) * ans
    if model is not None:
        with torch.no_grad():
            logits = forward_logits(model, batch)
        out["entropy"] = token_entropy(logits).double().cpu() * ans
        out["surprisal"] = -token_logprobs(logits, batch.input_ids).double().cpu() * ans
    return out
