"""Figures of the trade-off analyses (controls, retrain): Pareto fronts per method, the lm-eval trade-off,
per-seed paired differences and curves over the selected fraction q."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..analysis.families import arm_summary
from ..analysis.grid import BASE, METHOD_ARM
from ..analysis.runs import lmeval_columns
from ..metrics.catalogue import direction, label
from ..stats import group_ci
from .base import curve_plot, facet_axes, markers, paired_strip_plot, palette, pareto_plot


def _wide_ci(summ: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    w = summ.pivot_table(index=list(by), columns="metric", values=["mean", "ci_low", "ci_high"], dropna=False,
                         sort=False)
    w.columns = [f"{m}_{s}" for s, m in w.columns]
    return w.reset_index()


def pareto_figure(runs: pd.DataFrame, objective: str, x: str = "log10_fq", y: str = "model_utility",
                  role: str | None = "confirmatory", title: str | None = None):
    """One panel per method: each arm at its seed mean with 95% CI bars on both axes, every seed faint."""
    r = runs[runs["objective"] == objective]
    if role:
        r = r[r["role"] == role]
    methods = list(dict.fromkeys(r["method"]))
    fig, axes = facet_axes(len(methods), ncols=3, width=3.6, height=3.0)
    col = palette(dict.fromkeys(runs["arm"]))
    mk = markers(dict.fromkeys(runs["arm"]))  # per arm across panels: the shared legend holds for every panel
    for ax, m in zip(axes, methods):
        rm = r[r["method"] == m].copy()
        rm["point"] = rm["arm"] + np.where(rm["setting"].astype(bool), " " + rm["setting"].astype(str), "")
        summ = _wide_ci(arm_summary(rm, [x, y], ("point",)), ["point"])
        summ = summ.rename(columns={f"{x}_mean": x, f"{y}_mean": y})
        pcol = {p: col[p.split(" ")[0]] for p in summ["point"]}
        pmk = {p: mk[p.split(" ")[0]] for p in summ["point"]}
        pareto_plot(summ, x, y, "point", x_ci=(f"{x}_ci_low", f"{x}_ci_high"), y_ci=(f"{y}_ci_low", f"{y}_ci_high"),
                    points=rm, xlabel=label(x), ylabel=label(y), title=m, colours=pcol, ax=ax, legend=False,
                    marker_map=pmk)
    shared_legend(fig, axes)
    fig.suptitle(title or f"Forget-utility trade-off, objective {objective} (mean ± 95% CI over seeds)", fontsize=10)
    return fig


def lmeval_figure(runs: pd.DataFrame):
    """One panel per objective: lm-eval forget MC accuracy vs utility MC accuracy (or model utility if the runs
    have no utility task), one point per method (its own arm) plus the sequence-level base, at the seed mean with
    95% t-CI bars on both axes, every seed faint. Confirmatory runs only."""
    y = "lmeval_forget_mc"
    x = "lmeval_utility_mc" if "lmeval_utility_mc" in lmeval_columns(runs) else "model_utility"
    conf = runs[runs["role"] == "confirmatory"] if "role" in runs else runs
    pts = conf[conf["arm"].isin([METHOD_ARM, BASE])].copy()
    pts["point"] = np.where(pts["arm"] == BASE, pts["objective"] + "/sequence", pts["method"])
    pts = pts.drop_duplicates(["objective", "point", "seed"])  # the base is shared by every method
    objectives = list(dict.fromkeys(pts["objective"]))
    fig, axes = facet_axes(len(objectives), ncols=3, width=4.4, height=3.6)
    for ax, obj in zip(axes, objectives):
        p = pts[pts["objective"] == obj]
        summ = _wide_ci(arm_summary(p, [x, y], ("point",)), ["point"])
        summ = summ.rename(columns={f"{x}_mean": x, f"{y}_mean": y})
        pareto_plot(summ, x, y, "point", x_ci=(f"{x}_ci_low", f"{x}_ci_high"), y_ci=(f"{y}_ci_low", f"{y}_ci_high"),
                    points=p, xlabel=label(x), ylabel=label(y), title=f"objective {obj}", better=("right", "down"),
                    ax=ax)
    fig.suptitle("lm-eval multiple-choice trade-off per method (mean ± 95% CI over seeds)", fontsize=10)
    return fig


def shared_legend(fig, axes) -> None:
    """One legend below the panels, with every label of every panel once."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), 5),
                   fontsize=8)


def strip_figure(diffs: pd.DataFrame, vframe: pd.DataFrame, objective: str, metric: str):
    """One panel per method: per-seed differences method - control on ``metric``, mean and 95% CI, zero line."""
    d = diffs[(diffs["objective"] == objective) & (diffs["metric"] == metric)]
    v = vframe[(vframe["objective"] == objective) & (vframe["metric"] == metric)]
    methods = list(dict.fromkeys([*v["method"], *d["method"]]))
    fig, axes = facet_axes(len(methods), ncols=3, width=3.4, height=3.0)
    col = palette(dict.fromkeys(diffs["control"]))
    better = {True: "up", False: "down", None: None}[direction(metric)]
    for ax, m in zip(axes, methods):
        paired_strip_plot(d[d["method"] == m], estimates=v[v["method"] == m], ylabel=f"Δ {metric} (method − control)",
                          title=m, better=better, colours=col, ax=ax)
    fig.suptitle(f"Paired differences on {label(metric)}, objective {objective}", fontsize=10)
    return fig


def selection_curves_figure(runs: pd.DataFrame, arm_labels: dict[str, str],
                            metrics: Sequence[str] = ("forget_prob_gap", "log10_fq", "model_utility")):
    """Rows = scorers, columns = metrics: each arm's mean vs q with a 95% CI band and every seed faint (``runs``
    with scorer and q columns, ``runs_by_selection``; ``arm_labels`` names the arms in the legend). Metrics with
    no finite value (a distance without the retain reference) are left out."""
    from .base import FIXED_COLOURS

    r = runs.copy()
    metrics = [m for m in metrics if m in r.columns and np.isfinite(pd.to_numeric(r[m], errors="coerce")).any()]
    scorers = list(dict.fromkeys(r["scorer"]))
    fig, axes = facet_axes(len(metrics) * len(scorers), ncols=len(metrics), width=3.4, height=2.9)
    col = {arm_labels[a]: FIXED_COLOURS[a] for a in arm_labels}
    r["arm_label"] = r["arm"].map(arm_labels)
    qs = sorted(r["q"].unique())
    dodge = 0.012 if len(qs) == 1 else 0.15 * min(np.diff(qs)) / 3
    for j, metric in enumerate(metrics):
        summ = group_ci(r.dropna(subset=[metric]), ["scorer", "arm_label", "q"], metric)
        for i, sc in enumerate(scorers):
            ax = axes[i * len(metrics) + j]
            curve_plot(summ[summ["scorer"] == sc], "q", "mean", "arm_label", points=r[r["scorer"] == sc]
                       .rename(columns={metric: "mean"}), xlabel="fraction of answer tokens unlearned, q",
                       ylabel=label(metric), title=f"scorer {sc}", colours=col, ax=ax, legend=False, dodge=dodge)
            if len(qs) == 1:
                ax.set_xlim(qs[0] - 0.1, qs[0] + 0.1)
            else:
                ax.set_xticks(qs)
    shared_legend(fig, axes)
    fig.suptitle("Unlearning only the top-q, a random q or the bottom-q tokens (mean ± 95% CI over seeds)",
                 fontsize=10)
    return fig


def tradeoff_figures(runs: pd.DataFrame, diffs: pd.DataFrame, verdicts: pd.DataFrame,
                     primary: Sequence[str]) -> list:
    """The controls analysis' figures per objective (Pareto front, the sweep's front, paired differences on each
    primary metric) and the lm-eval trade-off when the runs hold lm-eval accuracies."""
    from .base import Figure

    out = []
    for obj in dict.fromkeys(runs["objective"]):
        out.append(Figure(f"pareto_{obj}", pareto_figure(runs, obj),
                          f"Objective {obj}: log10 forget quality vs model utility per arm (mean ± 95% t-CI over "
                          "seeds; faint points are single seeds). Numbers: arm_summary.csv."))
        if (runs["role"] == "sweep").any():
            out.append(Figure(f"pareto_sweep_{obj}", pareto_figure(
                runs, obj, role=None, title=f"Trade-off over the ratio / learning-rate sweep, objective {obj}"),
                f"Objective {obj}: every setting of the sweep (arm + setting). Numbers: arm_summary.csv."))
        for metric in primary:
            out.append(Figure(f"paired_{obj}_{metric}", strip_figure(diffs, verdicts, obj, metric),
                              f"Objective {obj}: per-seed paired differences on {label(metric)}, mean and 95% CI; "
                              "zero line = no difference. Numbers: paired_diffs.csv, verdicts.csv."))
    lm = lmeval_columns(runs)
    if "lmeval_forget_mc" in lm:
        x = "lm-eval utility MC accuracy" if "lmeval_utility_mc" in lm else "model utility"
        out.append(Figure("lmeval_tradeoff", lmeval_figure(runs),
                          f"lm-eval forget MC accuracy (lower = more forgetting) vs {x}, one point per method and the "
                          "sequence-level base (mean ± 95% t-CI over seeds; faint points are single seeds). Numbers: "
                          "arm_summary.csv, runs_long.csv."))
    return out
