"""Figure primitives shared by the analyses' figures: style, colours, Pareto fronts, paired strip plots, curves with
CI bands, bars with CIs.

Every function draws numbers it is given (the caller writes the same numbers to a CSV), shows every seed as a
faint point where per-seed values are passed, and uses one style (``style()``) and one colour per name
(``palette``). Matplotlib runs on the Agg backend: nothing opens a window.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Okabe-Ito colour-blind-safe colours, then tab10 for more names
_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
            *[matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab10").colors]]
#: fixed colours for the usual arms, so every figure of the suite colours a control the same way
FIXED_COLOURS = {"method": "#0072B2", "top": "#0072B2", "random_k": "#D55E00", "random": "#D55E00",
                 "permuted": "#CC79A7", "magnitude_matched": "#009E73", "uniform": "#000000", "bottom_k": "#E69F00",
                 "bottom": "#E69F00", "oracle": "#56B4E9"}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


class Figure(NamedTuple):
    """A figure with the name its files get in a report folder and its caption."""

    name: str
    fig: object
    caption: str = ""


def style() -> None:
    """Apply the suite's figure style (white grid, readable sizes, vector-safe fonts)."""
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
        "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42, "ps.fonttype": 42,
        "legend.frameon": False, "figure.constrained_layout.use": True})


def palette(names: Iterable) -> dict:
    """One colour per name: the usual arms keep their fixed colours, the others get the remaining colours in
    order (so no name shares a fixed colour)."""
    names = list(dict.fromkeys(names))
    out = {n: FIXED_COLOURS[n] for n in names if n in FIXED_COLOURS}
    i = 0
    for n in names:
        if n in out:
            continue
        while _COLOURS[i % len(_COLOURS)] in out.values() and i < 2 * len(_COLOURS):
            i += 1
        out[n] = _COLOURS[i % len(_COLOURS)]
        i += 1
    return {n: out[n] for n in names}


def markers(names: Iterable) -> dict:
    """One marker per name, in order."""
    return {n: _MARKERS[i % len(_MARKERS)] for i, n in enumerate(dict.fromkeys(names))}


def facet_axes(n: int, ncols: int = 3, width: float = 3.2, height: float = 2.8, sharex: bool = False,
               sharey: bool = False):
    """A figure with ``n`` panels on a grid of ``ncols`` columns; returns (fig, list of the n axes)."""
    style()
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, sharex=sharex,
                             sharey=sharey)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _new_ax(ax, figsize):
    style()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _labels(ax, xlabel: str, ylabel: str, title: str | None, legend: bool = False) -> None:
    """Axis labels, an optional title and an optional legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="best", fontsize=7)


def _err(mid: pd.Series, lo: pd.Series | None, hi: pd.Series | None):
    if lo is None or hi is None:
        return None
    e = np.vstack([(mid - lo).to_numpy(float), (hi - mid).to_numpy(float)])
    return np.where(np.isfinite(e), np.maximum(e, 0), 0)


def pareto_plot(df: pd.DataFrame, x: str, y: str, hue: str, *, x_ci: tuple[str, str] | None = None,
                y_ci: tuple[str, str] | None = None, points: pd.DataFrame | None = None,
                xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
                better: tuple[str, str] = ("right", "up"), colours: dict | None = None, ax=None, legend: bool = True,
                figsize=(4.5, 3.6), marker_map: dict | None = None):
    """Trade-off plot: one point per ``hue`` group at its mean (``df``), with CI bars on both axes from the
    ``x_ci``/``y_ci`` (low, high) columns, and every seed of ``points`` (same x, y, hue columns) as faint dots.
    ``better`` names the better direction on each axis, drawn as an arrow in the corner. ``colours`` and
    ``marker_map`` fix the style per group (so that facets sharing a legend agree). Returns the figure."""
    fig, ax = _new_ax(ax, figsize)
    names = list(dict.fromkeys(df[hue]))
    col = colours or palette(names)
    mk = marker_map or markers(names)
    for name in names:
        if points is not None:
            p = points[points[hue] == name]
            ax.scatter(p[x], p[y], s=12, color=col[name], alpha=0.3, marker=mk[name], linewidths=0, zorder=2)
        r = df[df[hue] == name]
        ax.errorbar(r[x], r[y], xerr=_err(r[x], *(r[c] for c in x_ci)) if x_ci else None,
                    yerr=_err(r[y], *(r[c] for c in y_ci)) if y_ci else None, fmt=mk[name], color=col[name],
                    ms=6, capsize=2, lw=1, label=str(name), zorder=3, mec="white", mew=0.5)
    _labels(ax, xlabel or x, ylabel or y, title)
    hx, vy = better
    arrow = {("right", "up"): "\u2197", ("right", "down"): "\u2198", ("left", "up"): "\u2196",
             ("left", "down"): "\u2199"}.get((hx, vy), "")
    # above the top-right corner of the axes, outside the data area: it never hides a point or a CI bar
    ax.text(1.0, 1.01, f"better {arrow}", transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            color="0.4", clip_on=False)
    if legend:
        ax.legend(loc="best", fontsize=7)
    return fig


def paired_strip_plot(diffs: pd.DataFrame, *, value: str = "diff", group: str = "control",
                      estimates: pd.DataFrame | None = None, est: str = "estimate",
                      ci: tuple[str, str] = ("ci_low", "ci_high"), ylabel: str | None = None,
                      title: str | None = None, better: str | None = None, colours: dict | None = None,
                      ax=None, figsize=(4.0, 3.2), seed: int = 0):
    """Per-seed paired differences (method - control) as jittered dots, one column per ``group``, with the
    mean and its CI from ``estimates`` (columns ``group``, ``est``, ``ci``) and a zero line. ``better``
    ('up'|'down') marks which side favours the method. Returns the figure."""
    fig, ax = _new_ax(ax, figsize)
    groups = list(dict.fromkeys(estimates[group] if estimates is not None else diffs[group]))
    col = colours or palette(groups)
    rng = np.random.default_rng(seed)
    ax.axhline(0.0, color="0.3", lw=0.8, zorder=1)
    for i, g in enumerate(groups):
        v = diffs.loc[diffs[group] == g, value].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.12, 0.12, v.size), v, s=14, color=col[g], alpha=0.45, linewidths=0, zorder=2)
        if estimates is not None:
            r = estimates[estimates[group] == g]
            if len(r):
                m, lo, hi = (float(r[c].iloc[0]) for c in (est, *ci))
                e = np.array([[max(m - lo, 0)], [max(hi - m, 0)]]) if np.isfinite([lo, hi]).all() else None
                ax.errorbar([i + 0.28], [m], yerr=e, fmt="D", color=col[g], ms=5, capsize=3, lw=1.2, zorder=3)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups], rotation=20, ha="right")
    ax.set_xlim(-0.5, len(groups) - 0.3)
    ax.set_ylabel(ylabel or value)
    if title:
        ax.set_title(title)
    if better in ("up", "down"):
        ax.annotate(f"method better {'↑' if better == 'up' else '↓'}", xy=(0.02, 0.97 if better == "up" else 0.03),
                    xycoords="axes fraction", ha="left", va="top" if better == "up" else "bottom", fontsize=7,
                    color="0.4")
    return fig


def curve_plot(df: pd.DataFrame, x: str, y: str, hue: str, *, ci_low: str | None = "ci_low",
               ci_high: str | None = "ci_high", points: pd.DataFrame | None = None, xlabel: str | None = None,
               ylabel: str | None = None, title: str | None = None, colours: dict | None = None, ax=None,
               legend: bool = True, logx: bool = False, dodge: float = 0.0, figsize=(4.5, 3.4)):
    """Lines of ``y`` against ``x`` per ``hue`` with shaded CI bands (``ci_low``/``ci_high`` columns; error bars
    where a group has a single x) and the per-seed values of ``points`` as faint dots. ``dodge`` shifts each hue
    by that much along x so that overlapping groups stay visible. Returns the figure."""
    fig, ax = _new_ax(ax, figsize)
    names = list(dict.fromkeys(df[hue]))
    col = colours or palette(names)
    mk = markers(names)
    for i, name in enumerate(names):
        off = (i - (len(names) - 1) / 2) * dodge
        r = df[df[hue] == name].sort_values(x)
        xs = r[x].to_numpy(float) + off
        has_ci = bool(ci_low and ci_high and r[[ci_low, ci_high]].notna().any().all())
        ax.plot(xs, r[y], marker=mk[name], ms=4, color=col[name], lw=1.5, label=str(name), zorder=3)
        if has_ci and len(r) > 1:
            ax.fill_between(xs, r[ci_low].to_numpy(float), r[ci_high].to_numpy(float), color=col[name], alpha=0.18,
                            lw=0, zorder=1)
        elif has_ci:
            ax.errorbar(xs, r[y], yerr=_err(r[y], r[ci_low], r[ci_high]), fmt="none", ecolor=col[name], capsize=3,
                        lw=1, zorder=3)
        if points is not None:
            p = points[points[hue] == name]
            ax.scatter(p[x].to_numpy(float) + off, p[y], s=10, color=col[name], alpha=0.3, linewidths=0, zorder=2)
    if logx:
        ax.set_xscale("log")
    _labels(ax, xlabel or x, ylabel or y, title, legend)
    return fig


def bar_ci(df: pd.DataFrame, x: str, y: str, *, ci_low: str = "ci_low", ci_high: str = "ci_high",
           hue: str | None = None, points: pd.DataFrame | None = None, point_y: str | None = None,
           xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
           colours: dict | None = None, colour_by: str | None = None, hatches: dict | None = None, ax=None,
           baseline: float | None = None, order: Sequence | None = None, rotation: float = 20,
           figsize=(4.5, 3.2)):
    """Bars of ``y`` per ``x`` (grouped by ``hue``) with CI whiskers, the per-seed values of ``points`` (column
    ``point_y``, default ``y``) as jittered dots, and an optional horizontal ``baseline`` (e.g. chance). Bars are
    coloured by ``colour_by`` (``x`` or ``hue``; default hue when there is one), hatched per hue by ``hatches``;
    ``order`` fixes the x order. Returns the figure."""
    fig, ax = _new_ax(ax, figsize)
    xs = list(order) if order is not None else list(dict.fromkeys(df[x]))
    hues = list(dict.fromkeys(df[hue])) if hue else [None]
    by = colour_by or ("hue" if hue else "x")
    col = colours or palette(hues if by == "hue" else xs)
    w = 0.8 / len(hues)
    rng = np.random.default_rng(0)
    py = point_y or y
    for j, h in enumerate(hues):
        sub = (df if h is None else df[df[hue] == h]).set_index(x).reindex(xs).reset_index()
        pos = np.arange(len(xs)) - 0.4 + w * (j + 0.5)
        colour = [col[v] for v in xs] if by == "x" else col[h]
        ax.bar(pos, sub[y], width=w * 0.9, color=colour, alpha=0.8, label=None if h is None else str(h),
               hatch=(hatches or {}).get(h), edgecolor="white" if hatches else None)
        ax.errorbar(pos, sub[y], yerr=_err(sub[y], sub.get(ci_low), sub.get(ci_high)), fmt="none", ecolor="0.2",
                    capsize=2, lw=1)
        if points is not None:
            p = points if h is None else points[points[hue] == h]
            p = p[p[x].isin(xs)]
            pp = np.array([xs.index(v) for v in p[x]]) - 0.4 + w * (j + 0.5)
            ax.scatter(pp + rng.uniform(-w * 0.2, w * 0.2, len(pp)), p[py], s=9, color="0.15", alpha=0.4,
                       linewidths=0, zorder=3, label="per seed" if j == 0 and hue is None else None)
    if baseline is not None:
        ax.axhline(baseline, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=rotation, ha="right")
    _labels(ax, xlabel or x, ylabel or y, title, bool(hue))
    return fig
