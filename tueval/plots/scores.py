"""Figures of the score-based analyses: alignment (AP lift bars, per-label heatmap), sanity (cascading
randomisation, knowledge dependence, heuristics next to the scorers) and intervention (deletion/insertion
curves, ABPC bars, rank agreement across operators). Each function returns the analysis' ``Figure``s."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..scoring.control_scorers import GT_SOURCES
from .base import Figure, bar_ci, palette, plt, style

CONTROLS = ("random", "oracle", "anti")


def _present(frame: pd.DataFrame) -> tuple[str, ...]:
    """The ground truths of a table, in the order of ``GT_SOURCES`` (one panel each)."""
    have = set(frame["ground_truth"].unique()) if "ground_truth" in frame else set()
    return tuple(g for g in GT_SOURCES if g in have)


def _gt_bars(summ: pd.DataFrame, names: Sequence[str], col: dict, ylabel: str, title: str, per_seed=None,
             value: str = "ap_lift", figsize=(10, 3.6)):
    """One panel per ground truth: a bar per scorer with its CI, per-seed dots and the zero line."""
    style()
    gts = _present(summ)
    fig, axes = plt.subplots(1, len(gts), figsize=figsize, sharey=True, squeeze=False)
    axes = axes[0]
    for ax, gt in zip(axes, gts):
        pts = None if per_seed is None else per_seed[per_seed.ground_truth == gt]
        bar_ci(summ[summ.ground_truth == gt], "scorer", "mean", points=pts, point_y=value, colours=col,
               colour_by="x", ax=ax, baseline=0.0, order=names, rotation=30, xlabel="scorer",
               title=title.format(gt=gt))
    axes[0].set_ylabel(ylabel)
    for ax in axes[1:]:
        ax.set_ylabel("")
    return fig, axes


def alignment_figures(summ: pd.DataFrame, per_seed: pd.DataFrame, labels: pd.DataFrame, names: Sequence[str]
                      ) -> list[Figure]:
    """AP-lift bars per scorer under both ground truths, and the per-label AP-lift heatmap."""
    col = palette(names)
    lift = summ[summ.metric == "ap_lift"]
    fig, axes = _gt_bars(lift, names, col, "AP lift = AP - E[AP | random ranking]\n(mean over examples, 95% CI)",
                         "ground truth: {gt}", per_seed)
    axes[0].legend(loc="upper left", fontsize=7)
    out = [Figure("ap_lift", fig, "AP lift per scorer with 95% crossed-bootstrap CIs; dots = per-seed means "
                  "(deterministic scorers have one); dashed = chance (0).")]
    labs = sorted(labels.label.unique())
    gts = _present(labels) or _present(lift)
    fig, axes = plt.subplots(len(gts), 1, figsize=(2.5 + 0.8 * max(len(labs), 2), len(gts) * (0.4 * len(names) + 1.3)),
                             squeeze=False)
    axes = axes[:, 0]
    vmax = float(np.nanmax(np.abs(labels.ap_lift))) if len(labels) else 1.0
    for ax, gt in zip(axes, gts):
        M = labels[labels.ground_truth == gt].pivot_table(index="scorer", columns="label", values="ap_lift").reindex(
            index=names, columns=labs)
        im = ax.imshow(M.to_numpy(float), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(M.to_numpy(float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(labs)), labs, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("fact label")
        ax.set_title(f"mean AP lift per fact label ({gt})")
        ax.grid(False)
    fig.colorbar(im, ax=list(axes), label="AP lift (label tokens vs non-GT tokens)")
    return out + [Figure("per_label_heatmap", fig, "Mean AP lift of each fact label's tokens against the non-GT "
                         "answer tokens, per scorer and ground truth.")]


def sanity_figures(cas_sum: pd.DataFrame, kd_sum: pd.DataFrame, kd_seed: pd.DataFrame, al_sum: pd.DataFrame,
                   names: Sequence[str], heuristics: Sequence[str]) -> list[Figure]:
    """Cascading randomisation decay, knowledge dependence bars, and the heuristics next to the scorers."""
    col = palette([*names, *heuristics])
    style()
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    stages = cas_sum.drop_duplicates("depth").sort_values("depth")
    for i, n in enumerate(names):
        r = cas_sum[cas_sum.scorer == n].sort_values("depth")
        ctrl = n in CONTROLS
        ax.plot(r.depth, r["mean"], "--" if ctrl else "-", marker="osD^v<>"[i % 7], ms=4 if ctrl else 3,
                color=col[n], label=n + (" (control)" if ctrl else ""), alpha=0.8 if ctrl else 1.0)
        ax.fill_between(r.depth.to_numpy(float), r.ci_low.to_numpy(float), r.ci_high.to_numpy(float), color=col[n],
                        alpha=0.15, lw=0)
    ax.set_xticks(stages.depth, [f"{d}\n{s}" for d, s in zip(stages.depth, stages.randomised)], fontsize=7)
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("randomisation depth (stage re-initialised, cumulative top-down)")
    ax.set_ylabel("Spearman rho, original vs randomised scores\n(mean over examples, 95% CI)")
    ax.legend(fontsize=7, loc="best")
    out = [Figure("cascading_randomisation", fig, "Cascading randomisation: Spearman rho between each scorer's "
                  "scores on the intact target and on copies with the top blocks (then embeddings) re-initialised. A "
                  "scorer that reads the model decays towards 0; one that stays at 1 ignores the weights.")]
    fig, axes = _gt_bars(kd_sum, names, col, "AP lift of |score shift| vs GT\n(mean over examples, 95% CI)",
                         "does |score(target) - score(retain)| find GT? ({gt})", kd_seed, figsize=(9.5, 3.4))
    out.append(Figure("knowledge_dependence", fig, "Knowledge dependence: AP lift of the absolute score change "
                      "between the target and the retain model, against each ground truth. Scorers whose scores do "
                      "not depend on the scored model have no shift (bar at the tie level, not tested)."))
    order = [*names, *heuristics]
    grey = {**col, **{h: "0.65" for h in heuristics}}
    fig, axes = _gt_bars(al_sum, order, grey, "AP lift vs GT (mean, 95% CI)",
                         "scorers (colour) vs heuristic controls (grey), GT {gt}", figsize=(11, 3.6))
    for ax in axes:
        ax.axvline(len(names) - 0.5, color="0.4", lw=0.8, ls=":")
        ax.set_xlabel("scorer / heuristic")
    out.append(Figure("heuristics", fig, "AP lift of the scorers next to single heuristics (rarity, position, "
                      "entropy, surprisal). A heuristic that matches a method's AP makes the method's alignment "
                      "claim weak."))
    return out


def intervention_figures(cs: pd.DataFrame, msum: pd.DataFrame, per_seed: pd.DataFrame, agree: pd.DataFrame,
                         names: Sequence[str], operators: Sequence[str]) -> list[Figure]:
    """Deletion and insertion curves per operator, ABPC bars per scorer and operator, and the rank agreement."""
    col = palette(names)
    style()
    out = []
    ncol = min(5, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    for curve in ("deletion", "insertion"):
        for op in operators:
            fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.3 * nrow + 0.4), sharex=True, sharey=True,
                                     squeeze=False)
            for ax in axes.ravel()[len(names):]:
                ax.set_visible(False)
            for ax, name in zip(axes.ravel(), names):
                sub = cs[(cs.scorer == name) & (cs.operator == op) & (cs.curve == curve)]
                for order, colour, ls in (("morf", col[name], "-"), ("lerf", "0.55", "-"), ("random", "0.1", "--")):
                    r = sub[sub.order == order].sort_values("q")
                    ax.plot(r.q, r.f_mean, ls, color=colour, lw=1.4, marker="o", ms=2.5,
                            label={"morf": "MoRF", "lerf": "LeRF", "random": "random order"}[order])
                    ax.fill_between(r.q.to_numpy(float), r.ci_low.to_numpy(float), r.ci_high.to_numpy(float),
                                    color=colour, alpha=0.18, lw=0)
                ax.set_title(name, fontsize=9)
            for ax in axes[-1]:
                ax.set_xlabel(f"fraction q of answer tokens {'removed' if curve == 'deletion' else 'kept'}")
            for ax in axes[:, 0]:
                ax.set_ylabel("f: mean answer log-prob\n(nats/token)")
            axes[0, 0].legend(fontsize=6, loc="best")
            fig.suptitle(f"{curve} curves, operator {op} (mean over examples, 95% t-CI bands)", fontsize=10)
            out.append(Figure(f"{curve}_curves_{op}", fig, f"{curve.capitalize()} curves under the {op} operator: "
                              "MoRF (scorer colour), LeRF (grey) and a random order (black dashed), each with a 95% "
                              "CI band over examples (per-example curves averaged over seeds)."))
    abpc = msum[msum.metric == "abpc"]
    fig = bar_ci(abpc, "scorer", "mean", hue="operator", points=per_seed, point_y="abpc", colours=col,
                 colour_by="x", hatches=dict(zip(operators, ("", "//", "xx", ".."))), order=names, rotation=30,
                 baseline=0.0, xlabel="scorer", ylabel="ABPC = mean over q of f(LeRF) - f(MoRF)\n(nats/token, 95% CI)",
                 figsize=(1.0 + 0.75 * len(names) * len(operators) / 2 + 2, 3.4))
    out.append(Figure("abpc", fig, "ABPC per scorer and operator (crossed-bootstrap 95% CIs; dots = per-seed means)."))
    if len(operators) >= 2:
        a, b = operators[:2]
        piv = abpc.pivot_table(index="scorer", columns="operator", values="mean")
        fig, ax = plt.subplots(figsize=(4.2, 3.8))
        for n in names:
            if n in piv.index:
                ax.scatter(piv.loc[n, a], piv.loc[n, b], color=col[n], s=30)
                ax.annotate(n, (piv.loc[n, a], piv.loc[n, b]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        tau = agree[(agree.metric == "abpc")]
        t = f"Kendall tau = {tau.kendall_tau.iloc[0]:.2f}" if len(tau) else ""
        ax.set_xlabel(f"mean ABPC, operator {a} (nats/token)")
        ax.set_ylabel(f"mean ABPC, operator {b} (nats/token)")
        ax.set_title(f"scorer ranking across operators: {t}", fontsize=9)
        out.append(Figure("rank_agreement", fig, "Mean ABPC of each scorer under the two replacement operators; "
                          "the rank agreement (Kendall tau) says whether the ranking of scorers depends on the "
                          "operator."))
    return out
