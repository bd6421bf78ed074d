"""Alignment tables of a score set: per-(scorer, seed, example, label) metrics against a ground truth, their
summaries, the GT-permutation null, and the scorer-vs-random comparisons (the example is the unit)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics.catalogue import higher_is_better
from ..stats.crossed import crossed_summary, per_seed_means, vs_control
from .forget import ForgetData, present_gts
from .scores import ScoreSet

SUMMARY_METRICS = ("ap", "ap_lift", "ap_lift_prevalence", "roc_auc", "precision_at_k", "recall_at_k", "f1_at_k",
                   "iou_f1", "pointing_game", "relevance_mass")


def alignment_rows(scores: ScoreSet, data: ForgetData, gt: str, drop: torch.Tensor | None = None) -> pd.DataFrame:
    """Per (scorer, seed, example[, label]) alignment metrics against ground truth ``gt`` (seed -1: deterministic);
    ``drop`` [N, T]: answer tokens left out of the comparison altogether (neither GT nor background)."""
    from ..metrics import alignment_table

    mask, ans = data.gt(gt), data.batch.answer_mask
    if drop is not None:
        keep = ~drop.bool()
        mask, ans = mask & keep, ans & keep
    frames = []
    for name in scores.names():
        for sk in scores.seed_keys(name):
            t = alignment_table(scores.get(name, sk), mask, ans, data.ids, labels=data.labels)
            t.insert(0, "seed", -1 if sk is None else sk)
            t.insert(0, "scorer", name)
            t.insert(0, "ground_truth", gt)
            frames.append(t)
    return pd.concat(frames, ignore_index=True)


def all_gt_rows(scores: dict[str, ScoreSet], data: ForgetData, drop: torch.Tensor | None = None) -> pd.DataFrame:
    """``alignment_rows`` against every ground truth (``scores`` holds one score set per ground truth)."""
    return pd.concat([alignment_rows(scores[gt], data, gt, drop) for gt in data.gt_sources], ignore_index=True)


def summaries(rows: pd.DataFrame, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (gt, scorer, metric): mean with crossed-bootstrap CI; and per (gt, scorer, seed) the seed means."""
    allr = rows[rows.label == "all"]
    summ = crossed_summary(allr, ["ground_truth", "scorer"], SUMMARY_METRICS, n_boot)
    det = allr.groupby(["ground_truth", "scorer"], sort=False)["seed"].agg(lambda s: set(s) == {-1})
    summ["deterministic"] = [bool(det[(g, s)]) for g, s in zip(summ.ground_truth, summ.scorer)]
    return summ, per_seed_means(allr, ["ground_truth", "scorer"], SUMMARY_METRICS)


def per_label(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean AP lift, AP and recall@|GT| per (gt, scorer, fact label)."""
    lab = rows[rows.label != "all"]
    return (lab.groupby(["ground_truth", "scorer", "label"], sort=False)
            .agg(ap_lift=("ap_lift", "mean"), ap=("ap", "mean"), recall_at_k=("recall_at_k", "mean"),
                 n_rows=("ap_lift", "count")).reset_index())


def per_label_wide(labels: pd.DataFrame, value: str = "ap_lift", gt: str = "spans") -> pd.DataFrame:
    """``per_label`` as one row per scorer and one column per fact label (``value`` of ground truth ``gt``): where
    each scorer's alignment comes from."""
    sub = labels[labels.ground_truth == gt]
    if sub.empty:
        return pd.DataFrame()
    return sub.pivot_table(index="scorer", columns="label", values=value, sort=False).reset_index()


#: token classes of the "is it just the subject's name?" comparison (``copied``: copied from the question)
TOKEN_CLASSES = ("copied", "fact, not copied", "not fact, not copied", "copied fact", "copied, not fact")


def token_classes(data: ForgetData, copied: torch.Tensor, gt: str = "spans") -> dict[str, torch.Tensor]:
    """The answer tokens of each of ``TOKEN_CLASSES`` ([N, T] bool each) against ground truth ``gt``."""
    ans, g, c = data.batch.answer_mask.bool(), data.gt(gt), copied.bool()
    return {"copied": c & ans, "fact, not copied": g & ~c, "not fact, not copied": ans & ~g & ~c,
            "copied fact": c & g, "copied, not fact": c & ans & ~g}


def values_by_class(values: dict[str, torch.Tensor], classes: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per (value, token class): the mean over examples of each example's mean (the example is the unit), its SD
    over examples, the number of examples and tokens, and the mean over all tokens of the class pooled."""
    rows = []
    for name, v in values.items():
        v = v.detach().float().cpu()
        for cls, m in classes.items():
            m = m.cpu()
            n = m.sum(-1)
            ok = n > 0
            per_ex = ((v * m).sum(-1)[ok] / n[ok]).double()
            rows.append({"value": name, "tokens": cls, "mean_over_examples": float(per_ex.mean()) if ok.any()
                         else float("nan"), "sd_over_examples": float(per_ex.std()) if int(ok.sum()) > 1
                         else float("nan"), "n_examples": int(ok.sum()), "n_tokens": int(m.sum()),
                         "pooled_mean": float(v[m].mean()) if m.any() else float("nan")})
    return pd.DataFrame(rows)


def span_copy_counts(data: ForgetData) -> pd.DataFrame:
    """Per fact label: the ground-truth spans and how many of them occur verbatim in their question."""
    rows = [{"label": sp.label, "copied": e.answer[sp.start:sp.end].strip().lower() in e.question.lower()}
            for e in data.examples for sp in e.spans]
    if not rows:
        return pd.DataFrame(columns=["label", "spans", "in_question"])
    df = pd.DataFrame(rows)
    out = df.groupby("label", sort=False).agg(spans=("copied", "size"), in_question=("copied", "sum")).reset_index()
    return out.sort_values("spans", ascending=False, kind="stable").reset_index(drop=True)


def permutation_null(scores: dict[str, ScoreSet], data: ForgetData, seeds: Sequence[int], n_perm: int
                     ) -> pd.DataFrame:
    """GT-permutation null of the mean AP lift per (gt, scorer) on the first seed's scores."""
    from ..metrics import alignment_metrics, gt_permutation_null

    rows = []
    gen = torch.Generator().manual_seed(seeds[0])
    for gt in data.gt_sources:
        mask, ans = data.gt(gt), data.batch.answer_mask
        for name in scores[gt].names():
            s = scores[gt].get(name, seeds[0])
            obs = float(np.nanmean(alignment_metrics(s, mask, ans)["ap_lift"].numpy()))
            null = gt_permutation_null(s, mask, ans, n_perm=n_perm, generator=gen).numpy()
            rows.append({"ground_truth": gt, "scorer": name, "observed_ap_lift": obs, "null_mean": float(null.mean()),
                         "null_sd": float(null.std(ddof=1)), "null_q025": float(np.quantile(null, 0.025)),
                         "null_q975": float(np.quantile(null, 0.975)),
                         "lift_over_null": obs - float(null.mean()),
                         "p_perm": float((1 + np.sum(null >= obs)) / (1 + null.size)), "n_perm": n_perm})
    return pd.DataFrame(rows)


def ap_lift_vs_random(rows: pd.DataFrame, names: Sequence[str], n_boot: int, alpha: float) -> list[dict]:
    """Each scorer vs random on AP lift, paired per (seed, example), under each ground truth that marks some but not
    all answer tokens of at least 2 examples (a single-class example has no AP lift): one family."""
    allr = rows[rows.label == "all"]
    ok = allr[~allr["single_class"].astype(bool)] if "single_class" in allr else allr
    levels = tuple(g for g in present_gts(allr) if ok.loc[ok.ground_truth == g, "example_id"].nunique() >= 2)
    return vs_control(allr, "ap_lift", names, "random", split="ground_truth", levels=levels,
                      higher_is_better=higher_is_better("ap_lift"), n_resamples=n_boot, alpha=alpha)
