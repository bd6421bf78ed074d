"""Alignment of token scores with ground-truth (GT) tokens, per example over its answer tokens.

Inputs are ``scores`` [B, T] (higher = more relevant), a GT mask [B, T] and ``answer_mask`` [B, T], all aligned with
input positions. Only answer tokens are ranked. Everything is vectorised over the batch with one sort per call.

Conventions (recorded here because papers disagree):
* AP is step-wise, as ``sklearn.metrics.average_precision_score``: AP = sum_n (R_n - R_{n-1}) P_n over distinct
  score thresholds (tied scores form one threshold).
* Chance level of AP. The prevalence pi = |GT|/n is only the large-n limit. For n tokens with P positives placed at
  random in a tie-free ranking, E[AP] = (H_n + (P-1)/(n-1) (n - H_n)) / n with H_n the harmonic number, which
  is 0.40 for n=20, P=6 (pi = 0.30). ``ap_lift = AP - E[AP]`` is therefore the chance-corrected lift: its mean
  is 0 for random scores and under the GT-permutation null. ``ap_lift_prevalence = AP - pi`` is the conventional
  one and is biased upwards on short answers.
* ``*_at_k``: top-k answer tokens by score, k = |GT| (R-precision), ties broken by position (earlier first).
* IoU-F1 (ERASER): predicted spans are the maximal runs of the top-|GT| tokens, GT spans the maximal runs of the
  GT mask (two GT spans with no token between them count as one). A predicted span is a hit if its best IoU with
  a GT span is >= tau (0.5). Per example P = hits/#pred, R = hits/#GT spans, F1 of the two.
* Pointing game: is the top-1 token in GT? With tied top scores, the expected value under random tie-breaking.
* Relevance mass: sum_GT a+ / sum a+ with a+ = max(a, 0); NaN when no score is positive.
* Single-class examples (no GT token, or only GT tokens) get NaN for AP and ROC-AUC and ``single_class=True``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from tueval.errors import DataError
from tueval.metrics.catalogue import Metric, family

METRICS: dict[str, Metric] = family("alignment")

_EULER = 0.5772156649015329


def _check(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor):
    """Validate shapes and values; return float64 scores and bool masks on CPU (GT restricted to answers)."""
    scores, gt_mask, answer_mask = (torch.as_tensor(x).detach().cpu() for x in (scores, gt_mask, answer_mask))
    if scores.dim() != 2 or scores.shape != gt_mask.shape or scores.shape != answer_mask.shape:
        raise DataError(None, None, "scores",
                        f"scores, gt_mask and answer_mask must all be [B, T]; got {tuple(scores.shape)}, "
                        f"{tuple(gt_mask.shape)}, {tuple(answer_mask.shape)}")
    s = scores.to(torch.float64)
    ans = answer_mask.bool()
    bad = torch.isnan(s) & ans
    if bad.any():
        b, t = (int(v) for v in bad.nonzero()[0])
        raise DataError(None, b, "scores", f"NaN score on answer token at position {t}; scores must be numbers")
    return s, gt_mask.bool() & ans, ans


@dataclass
class _Sorted:
    """Answer tokens sorted by descending score (ties by position), non-answer positions last."""

    order: torch.Tensor      # [B, T] original position of each sorted slot
    s: torch.Tensor          # sorted scores
    gt: torch.Tensor         # sorted GT flags (False outside answers)
    valid: torch.Tensor      # sorted answer flags
    n: torch.Tensor          # [B] answer tokens
    P: torch.Tensor          # [B] GT answer tokens
    grp_start: torch.Tensor  # [B, T] first slot of each slot's tie group
    grp_end: torch.Tensor    # [B, T] last slot of each slot's tie group (T for invalid slots)
    tp: torch.Tensor         # [B, T] cumulative GT count
    fp: torch.Tensor         # [B, T] cumulative non-GT count


def _sort(s: torch.Tensor, gt: torch.Tensor, ans: torch.Tensor) -> _Sorted:
    B, T = s.shape
    o1 = torch.argsort(s.masked_fill(~ans, 0.0), dim=1, descending=True, stable=True)
    o2 = torch.argsort((~ans.gather(1, o1)).to(torch.int8), dim=1, stable=True)
    order = o1.gather(1, o2)
    ss, gs, vs = s.gather(1, order), gt.gather(1, order), ans.gather(1, order)
    ar = torch.arange(T).expand(B, T)
    next_valid = F.pad(vs[:, 1:], (0, 1), value=False)
    differs_next = F.pad(ss[:, 1:] != ss[:, :-1], (0, 1), value=True)
    end = vs & (~next_valid | differs_next)
    start = vs & F.pad(ss[:, 1:] != ss[:, :-1], (1, 0), value=True)
    grp_end = torch.flip(torch.cummin(torch.flip(torch.where(end, ar, T), [1]), 1).values, [1])
    grp_start = torch.cummax(torch.where(start, ar, -1), 1).values
    tp = torch.cumsum(gs.to(torch.float64), 1)
    fp = torch.cumsum((vs & ~gs).to(torch.float64), 1)
    return _Sorted(order, ss, gs, vs, vs.sum(1), gs.sum(1), grp_start, grp_end, tp, fp)


def _at(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[b, idx[b, t]] with out-of-range indices clamped (callers mask them)."""
    return x.gather(1, idx.clamp(0, x.shape[1] - 1))


def _ap(st: _Sorted) -> torch.Tensor:
    prec_end = _at(st.tp, st.grp_end) / (st.grp_end + 1).to(torch.float64)
    ap = (prec_end * st.gt).sum(1) / st.P.clamp_min(1)
    return ap.masked_fill((st.P == 0) | (st.P == st.n), float("nan"))


def _auc(st: _Sorted) -> torch.Tensor:
    N = (st.n - st.P).to(torch.float64)
    fp_end = _at(st.fp, st.grp_end)
    fp_before = torch.where(st.grp_start > 0, _at(st.fp, st.grp_start - 1), torch.zeros_like(fp_end))
    wins = (N[:, None] - fp_end) + 0.5 * (fp_end - fp_before)
    auc = (wins * st.gt).sum(1) / (st.P * N).clamp_min(1)
    return auc.masked_fill((st.P == 0) | (st.P == st.n), float("nan"))


def average_precision_chance(n: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Exact expected AP of a uniformly random (tie-free) ranking of n tokens with P positives."""
    n, P = torch.as_tensor(n, dtype=torch.float64), torch.as_tensor(P, dtype=torch.float64)
    H = torch.special.digamma(n + 1) + _EULER
    e = (H + (P - 1) / (n - 1).clamp_min(1) * (n - H)) / n.clamp_min(1)
    return e.masked_fill((P == 0) | (P == n), float("nan"))


def average_precision(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Per-example step-wise AP of GT tokens among answer tokens ([B]; NaN for single-class examples)."""
    return _ap(_sort(*_check(scores, gt_mask, answer_mask)))


def roc_auc(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Per-example rank-based ROC-AUC of GT tokens among answer tokens ([B]; NaN for single-class examples)."""
    return _auc(_sort(*_check(scores, gt_mask, answer_mask)))


def masked_ranks(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average ranks (1 = smallest, ties share their mean rank) of ``x`` within ``mask`` per row; NaN elsewhere."""
    s, _, ans = _check(x, torch.zeros_like(torch.as_tensor(mask), dtype=torch.bool), mask)
    st = _sort(s, torch.zeros_like(ans), ans)
    desc = (st.grp_start + st.grp_end).to(torch.float64) / 2  # 0-based mean slot in descending order
    rank_sorted = torch.where(st.valid, st.n[:, None].to(torch.float64) - desc, torch.full_like(desc, float("nan")))
    return torch.empty_like(rank_sorted).scatter_(1, st.order, rank_sorted)


def _top_k(st: _Sorted, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(selected mask in original positions, number of GT tokens selected) for the top-k answer tokens."""
    B, T = st.s.shape
    sel_sorted = st.valid & (torch.arange(T).expand(B, T) < k[:, None])
    sel = torch.zeros_like(sel_sorted).scatter_(1, st.order, sel_sorted)
    return sel, (sel_sorted & st.gt).sum(1).to(torch.float64)


def _prf(tp: torch.Tensor, k: torch.Tensor, P: torch.Tensor):
    k, P = k.to(torch.float64), P.to(torch.float64)
    prec = torch.where(k > 0, tp / k.clamp_min(1), torch.full_like(tp, float("nan")))
    rec = torch.where(P > 0, tp / P.clamp_min(1), torch.full_like(tp, float("nan")))
    f1 = torch.where(prec + rec > 0, 2 * prec * rec / (prec + rec), torch.zeros_like(tp))
    return prec, rec, f1.masked_fill(torch.isnan(prec) | torch.isnan(rec), float("nan"))


def precision_recall_f1_at_k(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor,
                             k: int | torch.Tensor | None = None):
    """Token precision, recall and F1 of the top-k answer tokens ([B] each; k defaults to |GT|)."""
    st = _sort(*_check(scores, gt_mask, answer_mask))
    kk = st.P if k is None else torch.as_tensor(k).expand_as(st.P)
    kk = torch.minimum(kk, st.n)
    _, tp = _top_k(st, kk)
    return _prf(tp, kk, st.P)


def _runs(mask: torch.Tensor) -> torch.Tensor:
    """Run ids (1, 2, ...) of the maximal runs of True per row; 0 elsewhere."""
    start = mask & ~F.pad(mask[:, :-1], (1, 0), value=False)
    return torch.cumsum(start.long(), 1) * mask.long()


def _iou_prf(sel: torch.Tensor, gt: torch.Tensor, tau: float):
    B, T = sel.shape
    pr, gr = _runs(sel), _runs(gt)
    Rp, Rg = int(pr.max()) + 1, int(gr.max()) + 1
    flat = (torch.arange(B)[:, None] * Rp * Rg + pr * Rg + gr).reshape(-1)
    counts = torch.bincount(flat, minlength=B * Rp * Rg).reshape(B, Rp, Rg).to(torch.float64)
    inter = counts[:, 1:, 1:]
    psize, gsize = counts[:, 1:, :].sum(2), counts[:, :, 1:].sum(1)
    union = psize[:, :, None] + gsize[:, None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    best = iou.amax(2) if Rg > 1 else torch.zeros_like(psize)
    n_pred, n_gt = (psize > 0).sum(1), (gsize > 0).sum(1)
    hits = ((best >= tau) & (psize > 0)).sum(1).to(torch.float64)
    prec = torch.where(n_pred > 0, hits / n_pred.clamp_min(1), torch.zeros_like(hits))
    rec = hits / n_gt.clamp_min(1)
    f1 = torch.where(prec + rec > 0, 2 * prec * rec / (prec + rec), torch.zeros_like(hits))
    none = n_gt == 0
    nan = float("nan")
    return prec.masked_fill(none, nan), rec.masked_fill(none, nan), f1.masked_fill(none, nan)


def alignment_metrics(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor,
                      iou_threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Every per-example alignment metric (name -> [B] tensor); see the module docstring for definitions."""
    s, gt, ans = _check(scores, gt_mask, answer_mask)
    st = _sort(s, gt, ans)
    n, P = st.n.to(torch.float64), st.P.to(torch.float64)
    single = (st.P == 0) | (st.P == st.n)
    prevalence = torch.where(n > 0, P / n.clamp_min(1), torch.full_like(n, float("nan")))
    ap = _ap(st)
    chance = average_precision_chance(n, P)
    sel, tp_k = _top_k(st, st.P)
    prec, rec, f1 = _prf(tp_k, st.P, st.P)
    iou_p, iou_r, iou_f1 = _iou_prf(sel, gt, iou_threshold)
    e0 = st.grp_end[:, 0:1]
    pointing = (_at(st.tp, e0) / (e0 + 1).to(torch.float64))[:, 0]
    pointing = pointing.masked_fill((st.n == 0) | (st.P == 0), float("nan"))
    pos = s.clamp_min(0) * ans
    tot = pos.sum(1)
    mass = torch.where(tot > 0, (pos * gt).sum(1) / tot.clamp_min(1e-300), torch.full_like(tot, float("nan")))
    return {
        "n_tokens": n, "n_gt": P, "prevalence": prevalence,
        "ap": ap, "ap_chance": chance, "ap_lift": ap - chance, "ap_lift_norm": (ap - chance) / (1 - chance),
        "ap_lift_prevalence": ap - prevalence, "roc_auc": _auc(st),
        "precision_at_k": prec, "recall_at_k": rec, "f1_at_k": f1,
        "iou_precision": iou_p, "iou_recall": iou_r, "iou_f1": iou_f1,
        "pointing_game": pointing, "relevance_mass": mass, "single_class": single,
    }


def _label_array(labels, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(labels, dtype=object)
    if arr.shape != tuple(shape):
        raise DataError(None, None, "labels", f"labels must be [B, T] = {tuple(shape)}; got {arr.shape}")
    return arr


def _labelled(v) -> bool:
    return v is not None and v != "" and v != -1 and not (isinstance(v, float) and np.isnan(v))


def alignment_per_label(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor,
                        example_ids: Sequence[str], labels) -> pd.DataFrame:
    """Per (example, fact label): AP of that label's tokens against the non-GT answer tokens, and its recall@|GT|.

    ``labels`` is a [B, T] array of labels (str or int); None, "", -1 or NaN mean "no label". For label l the
    ranking contains l's GT tokens (positives) and the non-GT answer tokens (negatives); the other facts' tokens
    are left out, so AP says whether the scorer separates fact l from the background. ``recall_at_k`` is the share
    of l's tokens inside the example's overall top-|GT| selection (which facts the selection finds)."""
    s, gt, ans = _check(scores, gt_mask, answer_mask)
    lab = _label_array(labels, tuple(s.shape))
    st = _sort(s, gt, ans)
    sel, _ = _top_k(st, st.P)
    gt_np = gt.numpy()
    names = sorted({v for v in lab[gt_np].tolist() if _labelled(v)}, key=str)
    frames = []
    for name in names:
        pos = torch.from_numpy(np.asarray(lab == name, dtype=bool)) & gt
        cand = pos | (ans & ~gt)
        m = alignment_metrics(s, pos, cand)
        n_pos = pos.sum(1)
        keep = (n_pos > 0).numpy()
        rec = (sel & pos).sum(1).to(torch.float64) / n_pos.clamp_min(1)
        cols = {k: m[k] for k in ("n_tokens", "n_gt", "prevalence", "ap", "ap_chance", "ap_lift", "ap_lift_norm",
                                  "ap_lift_prevalence", "roc_auc", "single_class")}
        df = pd.DataFrame({"example_id": list(example_ids), "label": str(name),
                           **{k: v.numpy() for k, v in cols.items()}, "recall_at_k": rec.numpy()})
        frames.append(df[keep])
    cols = ["example_id", "label", "n_tokens", "n_gt", "prevalence", "ap", "ap_chance", "ap_lift", "ap_lift_norm",
            "ap_lift_prevalence", "roc_auc", "single_class", "recall_at_k"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def alignment_table(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor,
                    example_ids: Sequence[str], labels=None, iou_threshold: float = 0.5) -> pd.DataFrame:
    """One row per example (``label == "all"``), plus one row per (example, fact label) when labels are given."""
    m = alignment_metrics(scores, gt_mask, answer_mask, iou_threshold)
    ids = list(example_ids)
    if len(ids) != len(m["ap"]):
        raise DataError(None, None, "example_ids", f"{len(ids)} example ids for {len(m['ap'])} score rows")
    df = pd.DataFrame({"example_id": ids, "label": "all", **{k: v.numpy() for k, v in m.items()}})
    if labels is not None:
        df = pd.concat([df, alignment_per_label(scores, gt_mask, answer_mask, ids, labels)], ignore_index=True)
    return df


def summarise_alignment(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and count (NaN and single-class rows excluded) of every metric per label, in long form."""
    metric_cols = [c for c in table.columns if c not in ("example_id", "label", "single_class")]
    long = table.melt(id_vars=["label"], value_vars=metric_cols, var_name="metric").dropna(subset=["value"])
    long["value"] = long["value"].astype(float)
    out = long.groupby(["label", "metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"std": "sd", "count": "n"})


def gt_permutation_null(scores: torch.Tensor, gt_mask: torch.Tensor, answer_mask: torch.Tensor, n_perm: int = 1000,
                        generator: torch.Generator | None = None, chunk: int = 256) -> torch.Tensor:
    """Null distribution [n_perm] of the mean AP lift when each example's GT is shuffled among its answer tokens.

    Each permutation places |GT_i| positives uniformly at random among example i's answer tokens (count kept) and
    averages ``ap_lift`` over the examples that are not single-class."""
    s, gt, ans = _check(scores, gt_mask, answer_mask)
    B, T = s.shape
    P = gt.sum(1)
    out = []
    for c0 in range(0, n_perm, chunk):
        c = min(chunk, n_perm - c0)
        keys = torch.rand(c, B, T, generator=generator, dtype=torch.float64).masked_fill(~ans, 2.0)
        rank = torch.argsort(torch.argsort(keys, dim=2), dim=2)
        perm_gt = (rank < P[None, :, None]) & ans
        st = _sort(s.repeat(c, 1), perm_gt.reshape(c * B, T), ans.repeat(c, 1))
        lift = _ap(st) - average_precision_chance(st.n, st.P)
        out.append(torch.nanmean(lift.reshape(c, B), dim=1))
    return torch.cat(out)
