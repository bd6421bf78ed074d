"""Input interventions on answer tokens: deletion/insertion curves (MoRF, LeRF, random), comprehensiveness,
sufficiency, AOPC and ABPC of a token scorer.

The output functional (the same for every operator):

    f(x) = (1/n) * sum over ALL n answer tokens s of log p_theta(y_s | R(x, r)_{<s})

The answer tokens are both context and targets. A removal r hides tokens **as context only**: every answer token
is still scored, always as its ORIGINAL token y_s, so f has the same support at every removal fraction and a
curve compares like with like. Because p(y_s | x_{<s}) never sees x_s, removing token s leaves its own term
unchanged; f measures how much the removed tokens serve as evidence for the rest of the answer (e.g. the first
piece of a multi-token fact predicts the rest of it, the name predicts the birthplace). Scoring only the kept
tokens would change the support of f with q, and scoring only a GT-free continuation would make the test
circular. How much of the answer's loss sits on a token (the target side) is additive and needs no intervention;
the alignment and SNR analyses cover it.

Replacement operators R (registry ``OPERATORS``; position ids are always kept as ``arange(T)``):
* ``attention_mask``: the removed token is invisible. Its key/value is masked for every query
  (``attention_mask = 0``), and its input id is replaced by a content-free placeholder (``replacement_id``,
  default the pad id) so that the prediction made AT its position (of the next token) does not see it through
  the residual stream either. Masking the key alone would leak x_t into the prediction of y_{t+1}.
* ``replace_token``: the input id is replaced by ``replacement_id`` (default the pad id, e.g. use the unk id);
  the token stays attended to.

Orders: ``morf`` (descending score), ``lerf`` (ascending score), ``random`` (``n_random`` seeded draws, the curve
averaged over draws); ties are broken by position (earlier first). At fraction q, k_i = rule(q * n_i) tokens
(``k_rule``: round half up, floor or ceil). Curves: ``deletion`` removes the first k tokens of the order;
``insertion`` keeps only them (all other answer tokens removed). Summary per example and operator:
* comprehensiveness = f(x) - f(x minus top-|GT|) and sufficiency = f(x) - f(only top-|GT| kept) (+ the random
  order's values at the same k);
* AOPC_comp / AOPC_suff = mean over the bins B of those differences at fraction q (code convention 1/|B|, not the
  paper's 1/(|B|+1));
* ABPC (primary) = (1/(L+1)) * sum over the L+1 grid points of f(LeRF deletion) - f(MoRF deletion); higher means
  the high-scored tokens matter more than the low-scored ones; the OOD effect of removal itself cancels;
* deletion AUCs of each order = mean of f over the grid points (lower is better for MoRF).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from tueval.errors import SpecError
from tueval.metrics.catalogue import Metric, family
from tueval.registry import Registry
from tueval.tokens import masked_mean, token_logprobs

Operator = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
OPERATORS: Registry[Operator] = Registry("replacement operator", "tueval.replacement_operators")

METRICS: dict[str, Metric] = family("intervention")


@OPERATORS.register("attention_mask")
def attention_mask_removal(input_ids: torch.Tensor, attention_mask: torch.Tensor, remove: torch.Tensor,
                           replacement_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide removed tokens: key masked for every query, input id replaced by a content-free placeholder."""
    return (torch.where(remove, torch.as_tensor(replacement_id, dtype=input_ids.dtype), input_ids),
            attention_mask * (~remove).to(attention_mask.dtype))


@OPERATORS.register("replace_token")
def replace_token(input_ids: torch.Tensor, attention_mask: torch.Tensor, remove: torch.Tensor,
                  replacement_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace removed tokens' input ids by ``replacement_id``; they stay visible."""
    return torch.where(remove, torch.as_tensor(replacement_id, dtype=input_ids.dtype), input_ids), attention_mask


@dataclass(frozen=True)
class PerturbationSpec:
    """Every convention behind a perturbation result (attach it to the result; papers disagree on all of them)."""

    operators: tuple[str, ...] = ("attention_mask", "replace_token")
    replacement_id: int | None = None  # None: the model's pad id (config.pad_token_id), else its eos id
    grid: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    aopc_bins: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
    aopc_normaliser: str = "1/|B|"  # released ERASER code; the paper writes 1/(|B|+1)
    abpc_normaliser: str = "1/(L+1)"  # mean over all grid points, q=0 and q=1 included
    k_rule: str = "round"  # k = round-half-up(q*n) | floor | ceil
    n_random: int = 4
    seed: int = 0
    tie_break: str = "position"
    f_definition: str = ("mean over all answer tokens of log p(original token | perturbed context); "
                         "removed tokens are hidden as context only")
    position_ids: str = "kept (arange(T))"
    chunk_size: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class InterventionResult:
    """Tidy curves (example_id, operator, curve, order, q, k, f), per-example summary, and the spec used."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    spec: PerturbationSpec = field(default_factory=PerturbationSpec)


def _k(q: float, n: torch.Tensor, rule: str) -> torch.Tensor:
    x = q * n.to(torch.float64)
    if rule == "round":
        k = torch.floor(x + 0.5 + 1e-9)
    elif rule == "floor":
        k = torch.floor(x + 1e-9)
    elif rule == "ceil":
        k = torch.ceil(x - 1e-9)
    else:
        raise SpecError(f"k_rule must be round, floor or ceil; got '{rule}'")
    return torch.minimum(k.long(), n)


def _ranks(key: torch.Tensor, ans: torch.Tensor) -> torch.Tensor:
    """Rank (0 = first removed) of each answer token when sorted by ascending ``key``; T outside answers."""
    T = key.shape[-1]
    k = key.to(torch.float64).masked_fill(~ans, float("inf"))
    order = torch.argsort(k, dim=-1, stable=True)
    rank = torch.argsort(order, dim=-1, stable=True)
    return torch.where(ans, rank, torch.full_like(rank, T))


def _replacement_id(model, spec: PerturbationSpec) -> int:
    if spec.replacement_id is not None:
        return int(spec.replacement_id)
    cfg = getattr(model, "config", None)
    for name in ("pad_token_id", "eos_token_id"):
        v = getattr(cfg, name, None)
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return int(v)
    raise SpecError("PerturbationSpec.replacement_id is None and the model config has no pad or eos id")


@torch.no_grad()
def answer_logprob(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor,
                   answer_mask: torch.Tensor, chunk_size: int = 256) -> torch.Tensor:
    """f per row: mean log p(targets_s | input_ids_<s) over answer tokens, position ids kept ([N])."""
    out = []
    T = input_ids.shape[1]
    pos = torch.arange(T, device=input_ids.device)
    for c in range(0, input_ids.shape[0], chunk_size):
        sl = slice(c, c + chunk_size)
        ids = input_ids[sl]
        logits = model(input_ids=ids, attention_mask=attention_mask[sl],
                       position_ids=pos.expand(ids.shape[0], T)).logits
        out.append(masked_mean(token_logprobs(logits, targets[sl]), answer_mask[sl]).double())
    return torch.cat(out).cpu()


def _evaluate(model, batch, removes: torch.Tensor, op: Operator, rid: int, chunk: int, baseline=None) -> torch.Tensor:
    """f for every removal mask in ``removes`` [M, B, T] -> [M, B]; identical variants are evaluated once.
    With ``baseline``, f is the knowledge margin f_model - f_baseline on the same perturbed inputs."""
    M, B, T = removes.shape
    key = torch.cat([torch.arange(B).repeat(M)[:, None], removes.reshape(M * B, T).long()], dim=1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    dev = batch.input_ids.device
    rows = uniq[:, 0].to(dev)
    ids = batch.input_ids[rows]
    new_ids, new_am = op(ids, batch.attention_mask[rows], uniq[:, 1:].bool().to(dev), rid)
    f = answer_logprob(model, new_ids, new_am, ids, batch.answer_mask[rows], chunk)
    if baseline is not None:
        f = f - answer_logprob(baseline, new_ids, new_am, ids, batch.answer_mask[rows], chunk)
    return f[inv].reshape(M, B)


def perturbation_curves(model, batch, scores: torch.Tensor, spec: PerturbationSpec = PerturbationSpec(),
                        gt_mask: torch.Tensor | None = None, baseline=None) -> InterventionResult:
    """Deletion and insertion curves of f for MoRF, LeRF and random orders, and their summary metrics.

    ``scores`` [B, T] rank the answer tokens (``batch.answer_mask``); ``gt_mask`` (default ``batch.gt_mask``) only
    sets k = |GT| for comprehensiveness and sufficiency. One forward per chunk of ``spec.chunk_size`` variants.
    ``baseline``: a model lacking the knowledge (e.g. the retain model); f becomes the knowledge margin
    f_model - f_baseline on the same perturbed input, so removing context that both models need cancels out."""
    for name in spec.operators:
        OPERATORS.get(name)
    ans = batch.answer_mask.bool().cpu()
    B, T = ans.shape
    scores = torch.as_tensor(scores).detach().cpu().to(torch.float64)
    if scores.shape != (B, T):
        raise SpecError(f"scores must be [B, T] = {(B, T)}; got {tuple(scores.shape)}")
    if torch.isnan(scores[ans]).any():
        raise SpecError("scores contain NaN on answer tokens")
    gt = (batch.gt_mask if gt_mask is None else gt_mask).bool().cpu() & ans
    n, n_gt = ans.sum(1), gt.sum(1)
    gen = torch.Generator().manual_seed(spec.seed)
    rand_keys = torch.rand(spec.n_random, B, T, generator=gen, dtype=torch.float64)
    orders = {"morf": _ranks(-scores, ans)[None], "lerf": _ranks(scores, ans)[None], "random": _ranks(rand_keys, ans)}
    qs = sorted(set(spec.grid) | set(spec.aopc_bins))
    ks = [_k(q, n, spec.k_rule) for q in qs] + [n_gt]  # last point: k = |GT|
    # variants: for each curve, order (and draw), point -> removal mask
    meta, masks = [], []
    for curve in ("deletion", "insertion"):
        for order, rk in orders.items():
            for d in range(rk.shape[0]):
                for j, k in enumerate(ks):
                    top = rk[d] < k[:, None]
                    masks.append((top if curve == "deletion" else ~top) & ans)
                    meta.append((curve, order, d, j))
    removes = torch.stack(masks)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        f_full = answer_logprob(model, batch.input_ids, batch.attention_mask, batch.input_ids,
                                batch.answer_mask, spec.chunk_size)
        if baseline is not None:
            f_full = f_full - answer_logprob(baseline, batch.input_ids, batch.attention_mask, batch.input_ids,
                                             batch.answer_mask, spec.chunk_size)
        per_op = {name: _evaluate(model, batch, removes, OPERATORS.get(name), _replacement_id(model, spec),
                                  spec.chunk_size, baseline) for name in spec.operators}
    finally:
        if was_training:
            model.train()
    if baseline is not None:
        from dataclasses import replace

        spec = replace(spec, f_definition="knowledge margin: " + spec.f_definition + ", minus the same under a "
                       "baseline model lacking the knowledge (the retain model)")
    return _tables(batch.example_ids, per_op, meta, qs, ks, n_gt, f_full, spec)


def _tables(example_ids: Sequence[str], per_op: dict[str, torch.Tensor], meta, qs, ks, n_gt, f_full,
            spec: PerturbationSpec) -> InterventionResult:
    B = len(example_ids)
    ids = np.asarray(list(example_ids), dtype=object)
    curve_rows, summaries = [], []
    grid_idx = [qs.index(q) for q in spec.grid]
    bin_idx = [qs.index(q) for q in spec.aopc_bins]
    for op_name, f in per_op.items():
        # average random draws: acc[(curve, order)] -> [n_points, B]
        acc: dict[tuple[str, str], list[torch.Tensor]] = {}
        for (curve, order, d, j), row in zip(meta, f):
            acc.setdefault((curve, order, d), [None] * len(ks))[j] = row
        curves = {}
        for (curve, order, d), rows in acc.items():
            curves.setdefault((curve, order), []).append(torch.stack(rows))
        curves = {key: torch.stack(v).mean(0) for key, v in curves.items()}  # [n_points, B]
        for (curve, order), val in curves.items():
            for j, q in enumerate(qs):
                curve_rows.append(pd.DataFrame({
                    "example_id": ids, "operator": op_name, "curve": curve, "order": order, "q": q,
                    "k": ks[j].numpy(), "f": val[j].numpy(),
                    "n_draws": spec.n_random if order == "random" else 1}))
        d_m, d_l, d_r = (curves[("deletion", o)] for o in ("morf", "lerf", "random"))
        i_m, i_l, i_r = (curves[("insertion", o)] for o in ("morf", "lerf", "random"))
        no_gt = n_gt == 0
        nan = float("nan")
        summaries.append(pd.DataFrame({
            "example_id": ids, "operator": op_name, "f_full": f_full.numpy(),
            "abpc": (d_l[grid_idx] - d_m[grid_idx]).mean(0).numpy(),
            "abpc_insertion": (i_m[grid_idx] - i_l[grid_idx]).mean(0).numpy(),
            "comprehensiveness": (f_full - d_m[-1]).masked_fill(no_gt, nan).numpy(),
            "comprehensiveness_random": (f_full - d_r[-1]).masked_fill(no_gt, nan).numpy(),
            "sufficiency": (f_full - i_m[-1]).masked_fill(no_gt, nan).numpy(),
            "sufficiency_random": (f_full - i_r[-1]).masked_fill(no_gt, nan).numpy(),
            "aopc_comp": (f_full - d_m[bin_idx]).mean(0).numpy(),
            "aopc_comp_random": (f_full - d_r[bin_idx]).mean(0).numpy(),
            "aopc_suff": (f_full - i_m[bin_idx]).mean(0).numpy(),
            "aopc_suff_random": (f_full - i_r[bin_idx]).mean(0).numpy(),
            "deletion_auc_morf": d_m[grid_idx].mean(0).numpy(),
            "deletion_auc_lerf": d_l[grid_idx].mean(0).numpy(),
            "deletion_auc_random": d_r[grid_idx].mean(0).numpy(),
            "n_gt": n_gt.numpy(),
        }))
    curves_df = pd.concat(curve_rows, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    assert len(summary) == B * len(per_op)
    return InterventionResult(curves_df, summary, spec)


def k_for_fraction(q: float, n: int, rule: str = "round") -> int:
    """Number of tokens removed at fraction q of n answer tokens under ``rule``."""
    return int(_k(q, torch.tensor([n]), rule)[0])


__all__ = ["OPERATORS", "METRICS", "PerturbationSpec", "InterventionResult", "answer_logprob",
           "perturbation_curves", "attention_mask_removal", "replace_token", "k_for_fraction"]
