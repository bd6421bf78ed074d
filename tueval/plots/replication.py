"""Replication over model pairs: per comparison (method vs control, estimand), the estimate with its 95% CI on each
model pair (one marker per pair) and pooled over the pairs (black diamond), in one forest plot."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Figure, markers, palette, plt, style

KEYS = ("method", "control", "metric")


def replication_figure(by_pair: pd.DataFrame, pooled: pd.DataFrame, xlabel: str):
    """Forest plot: one row per pooled comparison, its per-pair estimates (offset markers, t-CI bars) and the
    pooled estimate (diamond, stratified CI); a filled diamond where the result holds on every pair."""
    style()
    rows = pooled[list(KEYS)].drop_duplicates().reset_index(drop=True)
    labels = [f"{m} vs {c} [{e}]" for m, c, e in rows.itertuples(index=False)]
    pairs = sorted(by_pair["pair"].unique().tolist()) if not by_pair.empty else []
    fig, ax = plt.subplots(figsize=(6.8, 1.2 + 0.36 * max(len(rows), 1)))
    col, mk = palette([f"pair {p}" for p in pairs]), markers([f"pair {p}" for p in pairs])
    y = np.arange(len(rows))[::-1].astype(float)
    step = 0.5 / max(len(pairs), 1)
    for j, p in enumerate(pairs):
        g = rows.merge(by_pair[by_pair["pair"] == p], on=list(KEYS), how="left")
        name = f"pair {p}"
        yy = y + 0.28 - j * step
        ax.errorbar(g["estimate"], yy, xerr=_err(g), fmt=mk[name], color=col[name], ms=4, lw=1, capsize=2,
                    label=f"{name} (train seed {int(g['train_seed'].dropna().iloc[0])})"
                    if "train_seed" in g and g["train_seed"].notna().any() else name)
    g = rows.merge(pooled, on=list(KEYS), how="left")
    holds = g["holds_on_every_pair"].fillna(False).astype(bool).to_numpy() if "holds_on_every_pair" in g else \
        np.zeros(len(g), bool)
    yy = y - 0.3
    ax.errorbar(g["estimate"], yy, xerr=_err(g), fmt="none", ecolor="black", lw=1.6, capsize=3)
    if holds.any():
        ax.scatter(g["estimate"][holds], yy[holds], marker="D", s=30, color="black", zorder=3,
                   label="pooled (holds on every pair)")
    if (~holds).any():
        ax.scatter(g["estimate"][~holds], yy[~holds], marker="D", s=30, facecolors="white", edgecolors="black",
                   zorder=3, label="pooled")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("comparison (method vs control [estimand])")
    ax.set_title("Per model pair and pooled: estimate with 95% CI (right of 0 = method better)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 1.2 / (1.2 + 0.36 * max(len(rows), 1)) * 0.5),
              ncol=min(len(pairs) + 2, 4), fontsize=7)
    return fig


def _err(g: pd.DataFrame):
    mid, lo, hi = (g[c].to_numpy(float) for c in ("estimate", "ci_low", "ci_high"))
    e = np.vstack([mid - lo, hi - mid])
    return np.where(np.isfinite(e), np.maximum(e, 0), 0)


def replication_figures(by_pair: pd.DataFrame, pooled: pd.DataFrame, xlabel: str) -> list[Figure]:
    """The replication forest plot as a report figure (none without pooled comparisons)."""
    if pooled.empty:
        return []
    return [Figure("replication_forest", replication_figure(by_pair, pooled, xlabel),
                   "Each comparison's estimate (method - control) with its 95% CI on every model pair (coloured "
                   "markers: that pair's seeds, t-interval) and pooled over the pairs (diamond: mean of the pairs' "
                   "means, Welch-Satterthwaite t-interval; filled where the pooled label is better and every pair "
                   "calls it better). Numbers: verdicts_by_pair.csv, pooled_verdicts.csv.")]
