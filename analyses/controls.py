"""Controls on the forget-utility trade-off: does each token-level method beat its own controls, paired by seed?

For every objective and method the grid holds the method itself, the method with each control (``random_k``:
as many tokens at random positions; ``permuted``: its own weights shuffled within the sequence;
``magnitude_matched``: uniform weights with the method's total weight) and the sequence-level base
(``uniform``: scorer uniform, mode none), all over the same seeds with ``defaults.FIXED`` settings.

The analysis is two steps so that the statistics can be tested on synthetic tables:
(a) ``collect_runs`` turns finished runs into a tidy table (one row per run, one column per metric);
(b) ``paired_verdicts`` turns that table into per-seed differences and Holm-corrected Verdicts.

lm-eval: with ``extra={"lmeval_tasks": True}`` (the three exported tasks) or a list of task names, every run is
computed with ``RunSpec.lmeval_tasks`` (other run ids than the default runs: off by default so cached runs are
reused). Runs whose summaries hold ``lmeval`` add the MC accuracies ``lmeval_forget_mc`` (lower is better),
``lmeval_retain_mc`` and ``lmeval_utility_mc`` to runs_long.csv and arm_summary.csv (descriptive, no verdicts)
and the figure ``lmeval_tradeoff``; without them the report is unchanged.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from tueval import defaults
from tueval.analysis import AnalysisConfig, register_analysis
from tueval.errors import SpecError
from tueval.report import ReportWriter, fmt, markdown_table, verdict_markdown
from tueval.stats import Verdict, compare, min_seeds_for_exact, verdict_table, verdicts_to_frame
from tueval.spec import RunSpec

NAME = "controls"
BASE = "uniform"  # the sequence-level base, treated as one more control
METHOD_ARM = "method"
FQ_FLOOR = 1e-300  # log10 of a KS p-value that underflowed to 0


@dataclass(frozen=True)
class Metric:
    """A per-run metric: its label (with units) and direction."""

    label: str
    higher_is_better: bool


#: every metric the analysis tabulates (derived from a run's summary.json by ``run_metrics``)
METRICS: dict[str, Metric] = {
    "log10_fq": Metric("log10 forget quality (KS p)", True),
    "model_utility": Metric("model utility (0-1)", True),
    "forget_prob": Metric("forget probability (0-1)", False),
    "mia_min_k_gap": Metric("|Min-K% MIA AUC - 0.5|", False),
    "privleak_abs": Metric("|privleak| vs retain model (%)", False),
    "forget_truth_ratio": Metric("forget truth ratio (0-1)", True),
    "forget_rougeL": Metric("forget ROUGE-L recall (0-1)", False),
}
#: lm-eval multiple-choice accuracies (columns only when the runs were computed with ``lmeval_tasks``)
LMEVAL_METRICS: dict[str, Metric] = {
    "lmeval_forget_mc": Metric("lm-eval forget MC accuracy (fraction correct)", False),
    "lmeval_retain_mc": Metric("lm-eval retain MC accuracy (fraction correct)", True),
    "lmeval_utility_mc": Metric("lm-eval utility MC accuracy (fraction correct)", True),
}
METRICS.update(LMEVAL_METRICS)
LMEVAL_TASKS = ("tueval_forget_mc", "tueval_retain_mc", "tueval_utility_mc")
#: the confirmatory trade-off metrics (Holm family) and the exploratory ones (BH, reported only)
PRIMARY = ("log10_fq", "model_utility")
SECONDARY = ("forget_prob", "mia_min_k_gap", "privleak_abs")
#: which grouping of comparisons forms one Holm family
FAMILIES = {"objective": ("objective",), "method": ("objective", "method"),
            "method_metric": ("objective", "method", "metric"), "overall": ()}
#: the default family: per objective, method and metric, the method against its controls (2 in the demo grid:
#: its own control and uniform), so that 6 seeds can reach Holm-adjusted p < 0.05 with the exact sign-flip test
DEFAULT_FAMILY = "method_metric"
QUICK_METHODS = [defaults.GRID_METHODS[0], defaults.GRID_METHODS[2]]  # TokenUnlearn hard, ETW soft
SWEEP_RATIOS = (0.1, 0.3, 0.5)
SWEEP_LRS = (5e-4, 1e-3, 2e-3)


# ---------------------------------------------------------------------------------------------------------------
# specs
def method_name(m: dict) -> str:
    """The method label without objective, e.g. ``tokenunlearn-hard0.3``."""
    return RunSpec.from_dict(_clean({"objective": "x", **m})).label().split("/", 1)[1]


def _clean(d: dict) -> dict:
    d = {k: v for k, v in d.items() if k not in ("controls", "objectives")}  # grid-only keys of a method
    if d.get("mode", "none") != "hard":
        d.pop("ratio", None)
    if d.get("control") in ("none", "None", ""):
        d["control"] = None
    return d


def arm_spec(objective: str, method: dict, arm: str, seed: int, fixed: dict | None = None, **over) -> RunSpec:
    """The RunSpec of one arm: ``method`` (the method itself), a control name, or ``uniform`` (sequence base)."""
    fixed = dict(defaults.FIXED if fixed is None else fixed)
    if arm == BASE:
        d = {**fixed, "objective": objective, "scorer": "uniform", "mode": "none", "seed": seed, **over}
        d.pop("ratio", None)
        return RunSpec.from_dict(d)
    d = {**fixed, **method, "objective": objective, "seed": seed, "control": None if arm == METHOD_ARM else arm,
         **over}
    return RunSpec.from_dict(_clean(d))


@dataclass(frozen=True)
class Cell:
    """One run of the grid, labelled for the analysis."""

    objective: str
    method: str
    arm: str
    seed: int
    spec: RunSpec
    role: str = "confirmatory"  # or "sweep" (Pareto only)
    setting: str = ""


def grid_cells(objectives: Sequence[str], methods: Sequence[dict], controls: Sequence[str], seeds: Sequence[int],
               fixed: dict | None = None, ratios: Sequence[float] = (), lrs: Sequence[float] = ()) -> list[Cell]:
    """Every run the analysis needs: the confirmatory arms at the fixed settings, plus (if ``ratios``/``lrs``)
    a sweep of hard ratios (method and random_k) and learning rates (method and uniform) for the Pareto plot."""
    fixed = dict(defaults.FIXED if fixed is None else fixed)
    cells = []
    base_fixed = fixed
    for obj in objectives:
        fixed = {**base_fixed, **defaults.OBJECTIVE_FIXED.get(obj, {})}
        for m in methods:
            if "objectives" in m and obj not in m["objectives"]:
                continue
            arms = list(m.get("controls", controls))
            if "controls" in m and BASE in controls and BASE not in arms:
                arms.append(BASE)
            m = {k: v for k, v in m.items() if k not in ("controls", "objectives")}
            name = f"{obj}/{method_name(m)}"
            for arm in [METHOD_ARM, *arms]:
                for s in seeds:
                    cells.append(Cell(obj, name, arm, s, arm_spec(obj, m, arm, s, fixed)))
            if m.get("mode") == "hard":
                for r in ratios:
                    if not math.isclose(r, m.get("ratio", 0.3)):
                        for arm in (METHOD_ARM, "random_k"):
                            for s in seeds:
                                cells.append(Cell(obj, name, arm, s, arm_spec(obj, m, arm, s, fixed, ratio=r),
                                                  "sweep", f"ratio={r:g}"))
            for lr in lrs:
                if not math.isclose(lr, fixed.get("lr", 1e-3)):
                    for arm in (METHOD_ARM, BASE):
                        for s in seeds:
                            cells.append(Cell(obj, name, arm, s, arm_spec(obj, m, arm, s, fixed, lr=lr), "sweep",
                                              f"lr={lr:g}"))
    return cells


def spec_key(spec: RunSpec) -> str:
    """A hashable identity of a spec (RunSpec holds dicts, so it is not hashable itself)."""
    return json.dumps(spec.to_dict(), sort_keys=True, default=str)


def unique_specs(cells: Iterable[Cell]) -> list[RunSpec]:
    """The distinct specs of ``cells`` in first-seen order (the uniform base is shared by all methods)."""
    return list({spec_key(c.spec): c.spec for c in cells}.values())


# ---------------------------------------------------------------------------------------------------------------
# (a) runs -> tidy table
def run_metrics(summary: dict) -> dict[str, float]:
    """The analysis metrics of one run summary (NaN where the summary lacks them)."""
    def num(x):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return float("nan")
        return x if math.isfinite(x) else float("nan")

    mia = summary.get("mia") or {}
    fq = num(summary.get("forget_quality"))
    auc, pl = num(mia.get("mia_min_k")), num(mia.get("privleak"))
    lm = {lmeval_metric(t): num(a) for t, a in (summary.get("lmeval") or {}).items()}
    return {**lm, "forget_quality": fq, "log10_fq": math.log10(max(fq, FQ_FLOOR)) if fq == fq else fq,
            "model_utility": num(summary.get("model_utility")), "forget_prob": num(summary.get("forget_prob")),
            "forget_truth_ratio": num(summary.get("forget_truth_ratio")),
            "forget_rougeL": num(summary.get("forget_rougeL")), "mia_min_k": auc, "mia_min_k_gap": abs(auc - 0.5),
            "privleak": pl, "privleak_abs": abs(pl)}


def lmeval_metric(task: str) -> str:
    """The metric column of an lm-eval task's accuracy: ``tueval_forget_mc`` -> ``lmeval_forget_mc``."""
    return "lmeval_" + task.removeprefix("tueval_")


def lmeval_columns(runs: pd.DataFrame) -> list[str]:
    """The lm-eval accuracy columns of ``runs`` that hold at least one value (none for runs without lm-eval)."""
    return [c for c in runs.columns if c.startswith("lmeval_") and runs[c].notna().any()]


def collect_runs(cells: Sequence[Cell], results: Sequence, extra_cols: dict | None = None) -> pd.DataFrame:
    """One row per cell: its labels, lr, ratio, run id and metrics (``results[i]`` is the RunResult of the i-th
    distinct spec, as returned by ``require_runs(unique_specs(cells), ...)``)."""
    by_spec = {spec_key(s): r for s, r in zip(unique_specs(cells), results)}
    rows = []
    for c in cells:
        r = by_spec[spec_key(c.spec)]
        rows.append({"objective": c.objective, "method": c.method, "arm": c.arm, "seed": c.seed, "role": c.role,
                     "setting": c.setting, "lr": c.spec.lr, "ratio": c.spec.ratio if c.spec.mode == "hard" else None,
                     "run_id": r.run_id, "label": c.spec.label(), **(extra_cols or {}), **run_metrics(r.summary)})
    return pd.DataFrame(rows)


def long_table(runs: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy long form of ``runs``: one row per (run, metric)."""
    lm = [c for c in runs.columns if c.startswith("lmeval_")]
    metrics = [m for m in dict.fromkeys(metrics or [*METRICS, *lm, "forget_quality", "mia_min_k", "privleak"])
               if m in runs.columns]
    ids = [c for c in runs.columns if c not in metrics and c not in METRICS and c not in lm and c not in
           ("forget_quality", "mia_min_k", "privleak")]
    return runs.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")


# ---------------------------------------------------------------------------------------------------------------
# (b) tidy table -> paired differences and verdicts
def paired_diffs(runs: pd.DataFrame, metrics: Sequence[str], method_arm: str = METHOD_ARM,
                 group: Sequence[str] = ("objective", "method")) -> pd.DataFrame:
    """Per-seed differences method - control for every (group, control, metric), seeds inner-joined."""
    group = list(group)
    conf = runs[runs.get("role", "confirmatory") == "confirmatory"] if "role" in runs else runs
    long = conf.melt(id_vars=[*group, "arm", "seed"], value_vars=list(metrics), var_name="metric")
    me = long[long["arm"] == method_arm].drop(columns="arm").rename(columns={"value": "method_value"})
    ct = long[long["arm"] != method_arm].rename(columns={"arm": "control", "value": "control_value"})
    d = ct.merge(me, on=[*group, "metric", "seed"], how="inner")
    d = d.dropna(subset=["method_value", "control_value"])
    d["diff"] = d["method_value"] - d["control_value"]
    cols = [*group, "control", "metric", "seed", "method_value", "control_value", "diff"]
    order = _orders(runs, group, metrics)
    return d[cols].sort_values([*group, "control", "metric", "seed"], key=lambda c: c.map(order[c.name]) if
                               c.name in order else c, kind="stable").reset_index(drop=True)


def _orders(runs: pd.DataFrame, group: Sequence[str], metrics: Sequence[str]) -> dict[str, dict]:
    """First-appearance order of group values, arms (as controls) and metrics, for stable table order."""
    order = {c: {v: i for i, v in enumerate(dict.fromkeys(runs[c]))} for c in group}
    order["control"] = {a: i for i, a in enumerate(dict.fromkeys(runs["arm"]))}
    order["metric"] = {m: i for i, m in enumerate(metrics)}
    return order


def identical_arms(runs: pd.DataFrame, metrics: Sequence[str] = ("log10_fq", "model_utility", "forget_prob",
                                                                   "forget_truth_ratio", "mia_min_k"),
                   rtol: float = 1e-3, atol: float = 1e-6, group: Sequence[str] = ("objective", "method")
                   ) -> pd.DataFrame:
    """Pairs of arms of the same method whose per-seed metrics agree within tolerance on every seed (a degenerate
    control: e.g. magnitude_matched equals uniform under the weight_sum normaliser, random_k equals uniform for
    soft weights with no zeros)."""
    group = list(group)
    conf = runs[runs["role"] == "confirmatory"] if "role" in runs else runs
    ms = [m for m in metrics if m in conf.columns]
    out = []
    for key, g in conf.groupby(group, sort=False):
        w = {a: ga.sort_values("seed")[["seed", *ms]].to_numpy(float) for a, ga in g.groupby("arm", sort=False)}
        arms = list(w)
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                x, y = w[a], w[b]
                if x.shape == y.shape and np.array_equal(x[:, 0], y[:, 0]) and np.allclose(
                        x[:, 1:], y[:, 1:], rtol=rtol, atol=atol, equal_nan=True):
                    out.append({**dict(zip(group, key if isinstance(key, tuple) else (key,))), "arm": a,
                                "same_as": b, "n_seeds": len(x)})
    return pd.DataFrame(out, columns=[*group, "arm", "same_as", "n_seeds"])


def method_comparisons(runs: pd.DataFrame, metrics: Sequence[str], alpha: float = 0.05,
                       method_arm: str = METHOD_ARM, group: Sequence[str] = ("objective", "method")) -> list:
    """The paired comparisons (per-seed diffs, t-CI, one-sided sign-flip p in the better direction) of the method
    arm against every control on ``metrics``, uncorrected: the members of a family for ``verdict_table``."""
    hib = {m: METRICS[m].higher_is_better if m in METRICS else True for m in metrics}
    return [c for c, _ in _compare_groups(paired_diffs(runs, metrics, method_arm, group), group, hib, alpha)]


def _compare_groups(d: pd.DataFrame, group: Sequence[str], hib: dict[str, bool], alpha: float) -> list[tuple]:
    """(comparison, group values) for every (group, control, metric) of the paired diffs ``d`` with 2+ seeds."""
    out = []
    for key, g in d.groupby([*group, "control", "metric"], sort=False):
        if len(g) < 2:
            continue
        gd = dict(zip([*group, "control", "metric"], key))
        out.append((compare(g["method_value"].to_numpy(), g["control_value"].to_numpy(), metric=gd["metric"],
                            method=str(gd[group[-1]]), control=gd["control"], higher_is_better=hib[gd["metric"]],
                            alpha=alpha), {c: gd[c] for c in group}))
    return out


def paired_verdicts(runs: pd.DataFrame, metrics: Sequence[str], alpha: float = 0.05, family: str = "objective",
                    correction: str = "holm", method_arm: str = METHOD_ARM,
                    group: Sequence[str] = ("objective", "method"), controls: Sequence[str] | None = None,
                    directions: dict[str, bool] | None = None) -> tuple[list[Verdict], pd.DataFrame]:
    """Verdicts of method vs every control on ``metrics`` (one-sided paired sign-flip test in the better direction,
    t-interval CI, ``correction`` within each family) and the frame of verdicts with their family columns.

    ``family``: a key of FAMILIES, or a tuple of columns of ``group`` (one family per distinct value)."""
    if isinstance(family, str) and family not in FAMILIES:
        raise SpecError(f"family '{family}' is not one of {', '.join(FAMILIES)}")
    fam_cols = list(FAMILIES[family]) if isinstance(family, str) else list(family)
    hib = {m: (directions or {}).get(m, METRICS[m].higher_is_better if m in METRICS else True) for m in metrics}
    d = paired_diffs(runs, metrics, method_arm, group)
    if controls is not None:
        d = d[d["control"].isin(list(controls))]
    if d.empty:
        return [], verdicts_to_frame([])
    order = _orders(runs, group, metrics)
    keys = [*group, "metric", "control"]
    d = d.sort_values(keys, key=lambda col: col.map(order[col.name]), kind="stable")
    out_v, frames = [], []
    fam_iter = d.groupby(fam_cols, sort=False) if fam_cols else [((), d)]
    for fkey, fd in fam_iter:
        fkey = fkey if isinstance(fkey, tuple) else (fkey,)
        pairs = _compare_groups(fd, group, hib, alpha)
        comps, meta = [c for c, _ in pairs], [m for _, m in pairs]
        vs = verdict_table(comps, alpha=alpha, correction=correction, higher_is_better=hib)
        f = verdicts_to_frame(vs)
        for c in group:
            if c not in f.columns:
                f.insert(0, c, [m[c] for m in meta])
        k = len(vs)
        # the method label already starts with its objective: leave the objective out of the family name then
        f["family"] = ("/".join(str(x) for c, x in zip(fam_cols, fkey) if not (c == "objective" and "method" in
                                                                                fam_cols)) if fam_cols else "all")
        f["family_definition"] = (" x ".join(["methods"] * ("method" not in fam_cols) + ["controls"]
                                             + ["metrics"] * ("metric" not in fam_cols))
                                  + (f" per {', '.join(fam_cols)}" if fam_cols else " overall"))
        f["min_seeds_for_family"] = min_seeds_for_exact(alpha, "greater", max(k, 1)) if k else np.nan
        out_v += vs
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    frame["reachable"] = frame["n_seeds"] >= frame["min_seeds_for_family"]
    return out_v, frame


# ---------------------------------------------------------------------------------------------------------------
# report
def arm_summary(runs: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] = ("objective", "method", "arm",
                                                                                   "role", "setting")
                ) -> pd.DataFrame:
    """Mean, SD, n and 95% t-CI of each metric per arm (the numbers the Pareto plot shows)."""
    from tueval.plots import group_ci

    by = [c for c in by if c in runs.columns]
    long = runs.melt(id_vars=[*by, "seed"], value_vars=list(metrics), var_name="metric").dropna(subset=["value"])
    return group_ci(long, [*by, "metric"], "value")


def _wide_ci(summ: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    w = summ.pivot_table(index=list(by), columns="metric", values=["mean", "ci_low", "ci_high"], dropna=False,
                         sort=False)
    w.columns = [f"{m}_{s}" for s, m in w.columns]
    return w.reset_index()


def pareto_figure(runs: pd.DataFrame, objective: str, x: str = "log10_fq", y: str = "model_utility",
                  role: str | None = "confirmatory", title: str | None = None):
    """One panel per method: each arm at its seed mean with 95% CI bars on both axes, every seed faint."""
    from tueval import plots

    r = runs[runs["objective"] == objective]
    if role:
        r = r[r["role"] == role]
    methods = list(dict.fromkeys(r["method"]))
    fig, axes = plots.facet_axes(len(methods), ncols=3, width=3.6, height=3.0)
    col = plots.palette(dict.fromkeys(runs["arm"]))
    mk = plots.markers(dict.fromkeys(runs["arm"]))  # per arm across panels: the shared legend holds for every panel
    for ax, m in zip(axes, methods):
        rm = r[r["method"] == m].copy()
        rm["point"] = rm["arm"] + np.where(rm["setting"].astype(bool), " " + rm["setting"].astype(str), "")
        summ = _wide_ci(arm_summary(rm, [x, y], ("point",)), ["point"])
        summ = summ.rename(columns={f"{x}_mean": x, f"{y}_mean": y})
        pcol = {p: col[p.split(" ")[0]] for p in summ["point"]}
        pmk = {p: mk[p.split(" ")[0]] for p in summ["point"]}
        plots.pareto_plot(summ, x, y, "point", x_ci=(f"{x}_ci_low", f"{x}_ci_high"),
                          y_ci=(f"{y}_ci_low", f"{y}_ci_high"), points=rm,
                          xlabel=METRICS[x].label if x in METRICS else x,
                          ylabel=METRICS[y].label if y in METRICS else y, title=m, colours=pcol, ax=ax,
                          legend=False, marker_map=pmk)
    shared_legend(fig, axes)
    fig.suptitle(title or f"Forget-utility trade-off, objective {objective} (mean ± 95% CI over seeds)", fontsize=10)
    return fig


def lmeval_figure(runs: pd.DataFrame):
    """One panel per objective: lm-eval forget MC accuracy vs utility MC accuracy (or model utility if the runs
    have no utility task), one point per method (its own arm) plus the sequence-level base, at the seed mean with
    95% t-CI bars on both axes, every seed faint. Confirmatory runs only."""
    from tueval import plots

    y = "lmeval_forget_mc"
    x = "lmeval_utility_mc" if "lmeval_utility_mc" in lmeval_columns(runs) else "model_utility"
    conf = runs[runs["role"] == "confirmatory"] if "role" in runs else runs
    pts = conf[conf["arm"].isin([METHOD_ARM, BASE])].copy()
    pts["point"] = np.where(pts["arm"] == BASE, pts["objective"] + "/sequence", pts["method"])
    pts = pts.drop_duplicates(["objective", "point", "seed"])  # the base is shared by every method
    objectives = list(dict.fromkeys(pts["objective"]))
    fig, axes = plots.facet_axes(len(objectives), ncols=3, width=4.4, height=3.6)
    for ax, obj in zip(axes, objectives):
        p = pts[pts["objective"] == obj]
        summ = _wide_ci(arm_summary(p, [x, y], ("point",)), ["point"])
        summ = summ.rename(columns={f"{x}_mean": x, f"{y}_mean": y})
        plots.pareto_plot(summ, x, y, "point", x_ci=(f"{x}_ci_low", f"{x}_ci_high"),
                          y_ci=(f"{y}_ci_low", f"{y}_ci_high"), points=p, xlabel=METRICS[x].label,
                          ylabel=METRICS[y].label, title=f"objective {obj}", better=("right", "down"), ax=ax)
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
    from tueval import plots

    d = diffs[(diffs["objective"] == objective) & (diffs["metric"] == metric)]
    v = vframe[(vframe["objective"] == objective) & (vframe["metric"] == metric)]
    methods = list(dict.fromkeys([*v["method"], *d["method"]]))
    fig, axes = plots.facet_axes(len(methods), ncols=3, width=3.4, height=3.0)
    col = plots.palette(dict.fromkeys(diffs["control"]))
    better = "up" if METRICS[metric].higher_is_better else "down"
    for ax, m in zip(axes, methods):
        plots.paired_strip_plot(d[d["method"] == m], estimates=v[v["method"] == m], ylabel=f"Δ {metric} "
                                "(method − control)", title=m, better=better, colours=col, ax=ax)
    fig.suptitle(f"Paired differences on {METRICS[metric].label}, objective {objective}", fontsize=10)
    return fig


def _yes_no(row) -> str:
    word = {"better": "YES", "worse": "no (worse)", "equivalent": "equivalent", "not better": "no"}[row.decision]
    return (f"{word} (Δ={fmt(row.estimate)} [{fmt(row.ci_low)}, {fmt(row.ci_high)}], p_adj={fmt(row.p_adjusted)}, "
            f"n={row.n_seeds})")


def plain_summary(vframe: pd.DataFrame, metric_names: dict[str, str] | None = None) -> str:
    """One line per (method, control): 'beats X on forget quality? ... on utility? ...'."""
    names = metric_names or {"log10_fq": "forget quality", "model_utility": "utility"}
    lines = []
    for m, g in vframe.groupby("method", sort=False):
        lines.append(f"- **{m}**")
        for c, gc in g.groupby("control", sort=False):
            parts = [f"on {names.get(r.metric, r.metric)}? {_yes_no(r)}" for r in gc.itertuples()]
            lines.append(f"  - beats `{c}` " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def _family_note(vframe: pd.DataFrame, alpha: float) -> str:
    fams = vframe.drop_duplicates("family")
    out = []
    for r in fams.itertuples():
        k = int((vframe["family"] == r.family).sum())
        n = int(vframe.loc[vframe["family"] == r.family, "n_seeds"].min())
        line = (f"- family `{r.family}` ({r.family_definition}): {k} comparison{'s' if k != 1 else ''}, Holm at α={alpha:g}; the smallest "
                f"one-sided exact sign-flip p with n={n} seeds is 1/2^{n} = {fmt(0.5 ** n)}, so rejecting even one "
                f"member needs p < α/{k} = {fmt(alpha / k)}: at least {int(r.min_seeds_for_family)} seeds.")
        if n < r.min_seeds_for_family:
            line += (f" **With {n} seeds no comparison in this family can be called 'better'; read the CIs and "
                     "effect sizes as descriptive.**")
        out.append(line)
    return "\n".join(out) + "\n"


def write_report(root: Path, runs: pd.DataFrame, verdicts: pd.DataFrame, secondary: pd.DataFrame,
                 diffs: pd.DataFrame, settings: dict, command: str, alpha: float, figures: bool = True
                 ) -> dict[str, Any]:
    """Write report.md, the CSVs and (unless ``figures`` is False) the figures of the analysis into ``root``."""
    rw = ReportWriter(root, "Controls on the forget-utility trade-off")
    seeds = sorted(runs["seed"].unique().tolist())
    conf = runs[runs["role"] == "confirmatory"]
    rw.text("## What was tested\n"
            "Does each token-level method beat its own controls on the forget-utility trade-off? Every method is "
            "run with the same seeds as: `random_k` (as many tokens per sequence at uniformly drawn positions, "
            "same total weight), `permuted` (its own weights shuffled within each sequence), `magnitude_matched` "
            "(uniform weights on every answer token, scaled to the method's total weight) and `uniform` (the "
            "sequence-level base: scorer uniform, mode none). Arms are paired by seed (the seed fixes data order "
            "and sampling); the seed is the unit of analysis.\n")
    rw.text("## Settings\n" + "".join(f"- {k}: {v}\n" for k, v in settings.items())
            + f"- seeds: {seeds} (n={len(seeds)}); runs: {conf['run_id'].nunique()} confirmatory, "
            f"{runs.loc[runs['role'] == 'sweep', 'run_id'].nunique()} sweep\n")
    rw.text("## Statistics\n"
            "Estimand: the mean over seeds of the paired difference method − control. CI: two-sided 95% Student-t "
            "interval (n < 10). Test: one-sided exact sign-flip permutation test in the better direction. "
            "Metrics: forget quality as log10 of the KS p-value (higher is better), model utility (higher is "
            "better) are **confirmatory**; forget probability (lower is better), |Min-K% AUC − 0.5| (lower is "
            "better) and |privleak| (lower is better) are exploratory (Benjamini-Hochberg within the same "
            "family grouping, not used for claims). Decision 'better' = Holm-adjusted p < α AND the CI excludes 0 "
            "on the better side; 'worse' mirrors it; otherwise 'not better'.\n\n" + _family_note(verdicts, alpha))
    same = identical_arms(runs)
    if not same.empty:
        rw.text("## Degenerate controls\nThese arms gave the same metrics as another arm of the same method on every "
                "seed (within 0.1%), so the comparison against them tests nothing new (e.g. `magnitude_matched` "
                "equals `uniform` when the loss is normalised by the weight sum, and `random_k` equals `uniform` "
                "when the method's weights have no zeros):\n" + markdown_table(same))
        rw.table("identical_arms", same)
    rw.text("## Verdicts (confirmatory)\n" + verdict_markdown(_verdict_objs(verdicts)))
    rw.text("## In plain words\n" + plain_summary(verdicts))
    summ = arm_summary(conf, [*PRIMARY, *SECONDARY])
    shown = summ.assign(value=[f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                               zip(summ["mean"], summ["ci_low"], summ["ci_high"])])
    shown = shown.pivot_table(index=["objective", "method", "arm"], columns="metric", values="value",
                              aggfunc="first", sort=False).reset_index()
    rw.text("## Per-arm means with 95% CI over seeds\n" + markdown_table(shown))
    lm = lmeval_columns(runs)
    if lm:
        ls = arm_summary(conf, lm)
        ls = ls.assign(value=[f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                              zip(ls["mean"], ls["ci_low"], ls["ci_high"])])
        ls = ls.pivot_table(index=["objective", "method", "arm"], columns="metric", values="value",
                            aggfunc="first", sort=False).reset_index()
        rw.text("## lm-eval multiple-choice accuracy (descriptive)\n"
                "Accuracy (fraction correct, chance 0.25 with 4 choices) of the unlearned model on the workdir's "
                "exported lm-eval tasks: `lmeval_forget_mc` (lower = more forgetting), `lmeval_retain_mc` and "
                "`lmeval_utility_mc` (higher = more kept). Mean [95% CI] over seeds; no tests.\n"
                + markdown_table(ls))
    if not secondary.empty:
        rw.text("## Exploratory metrics (BH-adjusted, not confirmatory)\n"
                + verdict_markdown(_verdict_objs(secondary)))
    rw.table("runs_long", long_table(runs))
    rw.table("arm_summary", arm_summary(runs, [*PRIMARY, *SECONDARY, *lm]))
    rw.table("paired_diffs", diffs)
    rw.table("verdicts", verdicts)
    if not secondary.empty:
        rw.table("exploratory_secondary", secondary)
    if figures:
        rw.text("## Figures\n")
    for obj in dict.fromkeys(runs["objective"]) if figures else ():
        rw.figure(f"pareto_{obj}", pareto_figure(runs, obj),
                  f"Objective {obj}: log10 forget quality vs model utility per arm (mean ± 95% t-CI over seeds; "
                  "faint points are single seeds). Numbers: arm_summary.csv.")
        if (runs["role"] == "sweep").any():
            rw.figure(f"pareto_sweep_{obj}", pareto_figure(runs, obj, role=None, title=f"Trade-off over the "
                                                           f"ratio / learning-rate sweep, objective {obj}"),
                      f"Objective {obj}: every setting of the sweep (arm + setting). Numbers: arm_summary.csv.")
        for metric in PRIMARY:
            rw.figure(f"paired_{obj}_{metric}", strip_figure(diffs, verdicts, obj, metric),
                      f"Objective {obj}: per-seed paired differences on {METRICS[metric].label}, mean and 95% CI; "
                      "zero line = no difference. Numbers: paired_diffs.csv, verdicts.csv.")
    if figures and "lmeval_forget_mc" in lm:
        x = "lm-eval utility MC accuracy" if "lmeval_utility_mc" in lm else "model utility"
        rw.figure("lmeval_tradeoff", lmeval_figure(runs),
                  f"lm-eval forget MC accuracy (lower = more forgetting) vs {x}, one point per method and the "
                  "sequence-level base (mean ± 95% t-CI over seeds; faint points are single seeds). Numbers: "
                  "arm_summary.csv, runs_long.csv.")
    report = rw.write(command)
    return {"report": str(report), "files": [str(root / f) for f in sorted(set(rw.files))]}


def _verdict_objs(frame: pd.DataFrame) -> list[Verdict]:
    from dataclasses import fields

    names = [f.name for f in fields(Verdict)]
    return [Verdict(**{k: r[k] for k in names}) for r in frame.to_dict("records")]


# ---------------------------------------------------------------------------------------------------------------
def _settings(cfg: AnalysisConfig) -> dict:
    quick = cfg.profile == "quick"
    ex = cfg.extra or {}
    full = cfg.profile == "full"
    methods = [dict(m) for m in ex.get("methods", QUICK_METHODS if quick else defaults.FULL_METHODS if full else
                                       defaults.GRID_METHODS if cfg.profile == "grid" else defaults.DEMO_METHODS)]
    if cfg.scorers:
        keep = [m for m in methods if m["scorer"] in cfg.scorers]
        known = {m["scorer"] for m in keep}
        keep += [{"scorer": s, "mode": "hard", "ratio": 0.3} for s in cfg.scorers if s not in known]
        methods = keep
    controls = list(ex.get("controls", (["random_k", "magnitude_matched"] if quick else
                                        defaults.FULL_CONTROLS if full else defaults.CONTROLS)))
    if ex.get("uniform", True) and BASE not in controls:
        controls.append(BASE)
    lmeval = ex.get("lmeval_tasks", ())
    lmeval = LMEVAL_TASKS if lmeval is True else RunSpec(lmeval_tasks=lmeval or ()).lmeval_tasks
    return {"lmeval_tasks": lmeval, "objectives": list(ex.get("objectives", ["ga"] if quick else
                                                          defaults.FULL_OBJECTIVES if full else defaults.OBJECTIVES)),
            "methods": methods, "controls": controls, "fixed": dict(ex.get("fixed", defaults.FIXED)),
            "family": ex.get("family", DEFAULT_FAMILY),
            "ratios": list(ex.get("ratios", SWEEP_RATIOS if full else ())),
            "lrs": list(ex.get("lrs", SWEEP_LRS if full else ()))}


def gather(cfg: AnalysisConfig, cells: list[Cell]) -> pd.DataFrame:
    """Finished (or computed) runs of ``cells`` as the tidy runs table."""
    from tueval.sweep import require_runs

    if len(set(cfg.seeds)) < 2:
        raise SpecError(f"paired comparisons need at least 2 seeds, got {list(cfg.seeds)}")
    specs = unique_specs(cells)
    results = require_runs(specs, cfg.workdir, compute=cfg.compute, workers=cfg.workers, progress=cfg.progress)
    return collect_runs(cells, results)


def _command(cfg: AnalysisConfig, name: str) -> str:
    seeds = list(cfg.seeds)
    s = f"--seeds {len(seeds)}" if seeds == list(range(len(seeds))) else f"--seeds {len(seeds)}  # seeds {seeds}"
    sc = f" --scorers {','.join(cfg.scorers)}" if cfg.scorers else ""
    return (f"tueval analyze {name} --workdir {cfg.workdir.root} --reports {cfg.reports} --profile {cfg.profile}"
            f"{sc} {s}")


@register_analysis(NAME)
def run(cfg: AnalysisConfig) -> dict:
    """Controls analysis: runs (or reads) the grid, writes reports/controls/, returns verdicts and paths."""
    st = _settings(cfg)
    fixed = {**st["fixed"], "lmeval_tasks": st["lmeval_tasks"]} if st["lmeval_tasks"] else st["fixed"]
    cells = grid_cells(st["objectives"], st["methods"], st["controls"], cfg.seeds, fixed, st["ratios"], st["lrs"])
    lm_setting = {"lm-eval tasks": list(st["lmeval_tasks"])} if st["lmeval_tasks"] else {}
    runs = gather(cfg, cells)
    return analyse(runs, Path(cfg.reports) / NAME, alpha=cfg.alpha, family=st["family"],
                   settings={"workdir": str(cfg.workdir.root), "profile": cfg.profile,
                             "objectives": st["objectives"], "methods": [method_name(m) for m in st["methods"]],
                             "controls": st["controls"], "fixed optimiser settings": st["fixed"],
                             "sweep ratios": st["ratios"] or "none", "sweep learning rates": st["lrs"] or "none",
                             "Holm family": st["family"], **lm_setting},
                   command=_command(cfg, NAME), figures=bool((cfg.extra or {}).get("figures", True)))


def analyse(runs: pd.DataFrame, out: Path, alpha: float = 0.05, family: str = "objective",
            settings: dict | None = None, command: str | None = None, figures: bool = True) -> dict:
    """The pure half of ``run``: verdicts and the report folder from a tidy runs table."""
    verdicts, vframe = paired_verdicts(runs, PRIMARY, alpha=alpha, family=family)
    _, sframe = paired_verdicts(runs, SECONDARY, alpha=alpha, family=family, correction="fdr_bh")
    diffs = paired_diffs(runs, [*PRIMARY, *SECONDARY])
    paths = write_report(Path(out), runs, vframe, sframe, diffs, settings or {}, command or "", alpha, figures)
    return {"verdicts": [v.to_dict() for v in verdicts], "secondary": sframe.to_dict("records"),
            "family": family, "n_seeds": int(runs["seed"].nunique()), "n_runs": int(runs["run_id"].nunique()),
            **paths}


def controls_verdicts(cfg: AnalysisConfig, scorer: str, mode: str, ratio: float | None, controls: list[str],
                      objective: str, report: bool = False, comparisons: bool = False) -> list:
    """Verdicts of ONE scorer vs ``controls`` (control names and/or ``uniform``) on the confirmatory trade-off
    metrics (log10 forget quality, model utility), Holm over controls x metrics; runs (or reads) what it needs.
    ``comparisons``: return the uncorrected paired comparisons instead (for a caller's own family, e.g. check)."""
    m = {"scorer": scorer, "mode": mode, **({"ratio": ratio} if mode == "hard" and ratio is not None else {})}
    cells = grid_cells([objective], [m], list(controls), cfg.seeds, dict((cfg.extra or {}).get("fixed",
                                                                                                defaults.FIXED)))
    runs = gather(cfg, cells)
    if comparisons:
        return method_comparisons(runs, PRIMARY, alpha=cfg.alpha)
    verdicts, vframe = paired_verdicts(runs, PRIMARY, alpha=cfg.alpha, family="method")
    if report:
        analyse(runs, Path(cfg.reports) / f"check_{NAME}", alpha=cfg.alpha, family="method",
                settings={"scorer": scorer, "mode": mode, "ratio": ratio, "objective": objective,
                          "controls": list(controls)})
    return verdicts
