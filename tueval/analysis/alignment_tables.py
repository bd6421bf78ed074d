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


def alignment_rows(scores: ScoreSet, data: ForgetData, gt: str) -> pd.DataFrame:
    """Per (scorer, seed, example[, label]) alignment metrics against ground truth ``gt`` (seed -1: deterministic)."""
    from ..metrics import alignment_table

    mask, ans = data.gt(gt), data.batch.answer_mask
    frames = []
    for name in scores.names():
        for sk in scores.seed_keys(name):
            t = alignment_table(scores.get(name, sk), mask, ans, data.ids, labels=data.labels)
            t.insert(0, "seed", -1 if sk is None else sk)
            t.insert(0, "scorer", name)
            t.insert(0, "ground_truth", gt)
            frames.append(t)
    return pd.concat(frames, ignore_index=True)


def all_gt_rows(scores: dict[str, ScoreSet], data: ForgetData) -> pd.DataFrame:
    """``alignment_rows`` against every ground truth (``scores`` holds one score set per ground truth)."""
    return pd.concat([alignment_rows(scores[gt], data, gt) for gt in data.gt_sources], ignore_index=True)


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
    """Each scorer vs random on AP lift, paired per (seed, example), under both ground truths: one family."""
    allr = rows[rows.label == "all"]
    return vs_control(allr, "ap_lift", names, "random", split="ground_truth", levels=present_gts(allr),
                      higher_is_better=higher_is_better("ap_lift"), n_resamples=n_boot, alpha=alpha)
