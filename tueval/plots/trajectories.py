"""Forget-utility trajectories of a trade-off grid: per method, every arm's checkpoints along its run (one faint
line per seed) and the mean curve over seeds with its 95% t-band, in log10 forget quality."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Figure, palette, plt, style


def _mean_band(g: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per checkpoint step that every run has (refinement runs add steps to some runs only): mean of ``x`` and
    ``y`` over seeds and the 95% t half-width of ``y``."""
    from scipy import stats

    runs = g.groupby(["seed", "run_id"]).ngroups
    agg = g.groupby("step").agg(x=(x, "mean"), y=(y, "mean"), sd=(y, "std"), n=(y, "count")).reset_index()
    agg = agg[agg["n"] == runs].reset_index(drop=True)
    t = stats.t.ppf(0.975, np.maximum(agg["n"] - 1, 1))
    agg["half"] = np.where(agg["n"] > 1, t * agg["sd"] / np.sqrt(agg["n"]), 0.0)
    return agg


def trajectory_figure(traj: pd.DataFrame, objective: str, method: str, utility: str = "utility_est"):
    """One panel: the arms of ``method`` on ``objective``, x = log10 forget quality, y = ``utility``."""
    style()
    g = traj[(traj["objective"] == objective) & (traj["method"] == method)].copy()
    g["log10_fq"] = np.log10(np.clip(g["forget_quality"].astype(float), 1e-300, None))
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    colours = palette(g["arm"].unique())
    for arm, a in g.groupby("arm", sort=False):
        c = colours[arm]
        for _, r in a.sort_values("step").groupby(["seed", "run_id"], sort=False):
            ax.plot(r["log10_fq"], r[utility], color=c, alpha=0.25, lw=0.8)
        m = _mean_band(a, "log10_fq", utility)
        ax.plot(m["x"], m["y"], color=c, lw=2, marker="o", ms=3, label=f"{arm} (mean of {a['seed'].nunique()} seeds)")
        ax.fill_between(m["x"], m["y"] - m["half"], m["y"] + m["half"], color=c, alpha=0.15, lw=0)
    ax.set_xlabel("log10 forget quality (KS p-value vs the retain model; right = more forgotten)")
    ax.set_ylabel("utility estimate (checkpoint evaluation, 0-1)")
    ax.set_title(f"{objective} / {method}: trajectories from the target model (step 0)")
    ax.legend(loc="best")
    return fig


def trajectory_figures(traj: pd.DataFrame) -> list:
    """One trajectory figure per (objective, method) of ``traj``."""
    out = []
    for (obj, method), _ in traj.groupby(["objective", "method"], sort=False):
        safe = str(method).replace("/", "_")
        out.append(Figure(f"trajectory_{obj}_{safe}", trajectory_figure(traj, obj, method),
                          f"{obj} / {method}: each arm's checkpoints along its run (faint: one seed; bold: mean over "
                          "seeds at each checkpoint with its 95% t-band on utility). The matched-forgetting "
                          "comparison reads the control's utility on its curve at the method's final forget "
                          "level. Numbers: trajectories.csv, matched_diffs.csv."))
    return out
