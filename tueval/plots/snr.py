"""Figures of the gradient-SNR analysis: the SNR metrics of each selection against the fraction k, and the
directional SNR along unlearning."""
from __future__ import annotations

from typing import Sequence

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .base import Figure, plt, style


def snr_figures(summ: pd.DataFrame, t: pd.DataFrame, cps: pd.DataFrame, ck: pd.DataFrame | None,
                methods: Sequence[str], primary: float) -> list[Figure]:
    """SNR metrics against the selected fraction k (``summ`` seed means, ``t`` per-seed points), and the
    directional SNR along unlearning (``ck`` seed means, ``cps`` per-seed points)."""
    style()
    out = []
    shown = list(methods) + ["random_k", "oracle", "anti"]
    # methods: distinct tab10 colours and markers; controls: black/greys, so no control shares a method's colour
    tab = [mcolors.to_hex(c) for c in plt.get_cmap("tab10").colors]
    col = {n: tab[i % len(tab)] for i, n in enumerate(methods)}
    col |= {"random_k": "#000000", "oracle": "#666666", "anti": "#AAAAAA", "uniform": "#000000"}
    marks = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
    mk = {n: marks[i % len(marks)] for i, n in enumerate(methods)} | {"random_k": "o", "oracle": "o", "anti": "o"}
    lines = {n: "-" for n in methods} | {"random_k": "--", "oracle": ":", "anti": "-."}
    panels = [("log10_snr_dir", "log10 directional SNR along u\n(primary)"),
              ("inv_b_simple", "1/B_simple = |G|^2 / tr(Sigma)"),
              ("composition_db", "composition ratio (dB)\n10 log10 ||sum s||^2/||sum n||^2"),
              ("cos_mean_u", "cos(sum of g_i, u)")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    hard = summ[summ.k != "soft"]
    soft = summ[summ.k == "soft"]
    pts = t[t.k != "soft"]
    for ax, (m, lab) in zip(axes.ravel(), panels):
        for n in shown:
            r = hard[hard.weighting == n].sort_values("k_frac")
            if r.empty:
                continue
            ax.plot(r.k_frac, r[m], lines.get(n, "-"), marker=mk[n], ms=3.5, color=col[n], lw=1.4, label=n)
            ax.fill_between(r.k_frac.to_numpy(float), r[f"{m}_ci_low"].to_numpy(float),
                            r[f"{m}_ci_high"].to_numpy(float), color=col[n], alpha=0.13, lw=0)
            p = pts[pts.weighting == n]
            ax.scatter(p.k_frac, p[m], s=6, color=col[n], alpha=0.35, linewidths=0)
            s = soft[soft.weighting == n]
            if len(s):
                ax.errorbar([1.15], s[m], yerr=np.nan_to_num(np.abs(np.vstack([s[m] - s[f"{m}_ci_low"],
                                                                                 s[f"{m}_ci_high"] - s[m]]))),
                            fmt="s", color=col[n], ms=4, capsize=2)
        for n in methods:
            s = soft[soft.weighting == f"permuted:{n}"]
            if len(s):
                ax.scatter([1.2], s[m], marker="x", color=col[n], s=18, zorder=3)
        ax.set_xticks([0.1, 0.3, 0.5, 0.7, 1.0, 1.17], ["0.1", "0.3", "0.5", "0.7", "1.0\n(uniform)", "soft"])
        ax.set_xlabel("k: fraction of answer tokens selected (hard top-k)")
        ax.set_ylabel(lab)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [Line2D([], [], marker="s", ls="none", color="0.3", ms=4),
                Line2D([], [], marker="x", ls="none", color="0.3", ms=5)]
    labels += ["soft weights (at 'soft')", "permuted soft weights"]
    fig.legend(handles, labels, loc="outside lower center", ncol=6, fontsize=7)
    fig.suptitle("Gradient SNR of token selections at the reference model (mean over seeds, 95% t-CI bands "
                 "from 3 seeds on, dots = seeds)", fontsize=10)
    out.append(Figure("snr_vs_k", fig, "SNR metrics against the selected fraction k for each scorer's hard top-k "
                      "selection and the controls (random_k: same count at random; oracle: GT tokens first; anti: GT "
                      "last); squares at 'soft' = soft weights (x = permuted soft weights). At k = 1 every selection "
                      "is uniform."))
    if ck is not None and len(ck):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for n in [x for x in shown + ["uniform"] if x in set(ck.weighting)]:
            r = ck[ck.weighting == n].sort_values("step")
            ax.plot(r.step, r.log10_snr_dir, lines.get(n, "-"), marker="o", ms=3, color=col.get(n, "0.3"), label=n)
            ax.fill_between(r.step.to_numpy(float), r.log10_snr_dir_ci_low.to_numpy(float),
                            r.log10_snr_dir_ci_high.to_numpy(float), color=col.get(n, "0.3"), alpha=0.13, lw=0)
            p = cps[cps.weighting == n]
            ax.scatter(p.step, p.log10_snr_dir, s=7, color=col.get(n, "0.3"), alpha=0.35, linewidths=0)
        ax.set_xlabel("unlearning step of a GA (uniform) run (0 = reference model)")
        ax.set_ylabel(f"log10 directional SNR at k={primary:g}")
        ax.legend(fontsize=6, ncol=2)
        out.append(Figure("snr_checkpoints", fig, f"Directional SNR of the k={primary:g} selections along GA "
                          "unlearning (mean over seeds with 95% t-CI bands; dots = seeds). Dynamic scorers are "
                          "re-scored on each checkpoint, static ones keep their reference scores."))
    return out
