"""Seed-paired verdict families of a tidy runs table: per-seed differences of the method arm against every
control arm, one-sided exact sign-flip tests with t-intervals, Holm (or BH) within the chosen family grouping,
degenerate (identical) arms, per-arm summaries, and the report lines that explain a family."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..metrics.catalogue import higher_is_better
from ..report import fmt
from ..stats import Verdict, compare, group_ci, min_seeds_for_exact, verdict_table, verdicts_to_frame
from .grid import METHOD_ARM

#: which grouping of comparisons forms one Holm family
FAMILIES = {"objective": ("objective",), "method": ("objective", "method"),
            "method_metric": ("objective", "method", "metric"), "overall": ()}


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
    hib = {m: higher_is_better(m) for m in metrics}
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
    hib = {m: (directions or {}).get(m, higher_is_better(m)) for m in metrics}
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


def arm_summary(runs: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] = ("objective", "method", "arm",
                                                                                   "role", "setting")
                ) -> pd.DataFrame:
    """Mean, SD, n and 95% t-CI of each metric per arm (the numbers the Pareto plot shows)."""
    by = [c for c in by if c in runs.columns]
    long = runs.melt(id_vars=[*by, "seed"], value_vars=list(metrics), var_name="metric").dropna(subset=["value"])
    return group_ci(long, [*by, "metric"], "value")


def family_note(vframe: pd.DataFrame, alpha: float) -> str:
    """One line per Holm family: its size, the smallest attainable p with its seeds and the seeds it needs."""
    fams = vframe.drop_duplicates("family")
    out = []
    for r in fams.itertuples():
        k = int((vframe["family"] == r.family).sum())
        n = int(vframe.loc[vframe["family"] == r.family, "n_seeds"].min())
        line = (f"- family `{r.family}` ({r.family_definition}): {k} comparison{'s' if k != 1 else ''}, "
                f"Holm at α={alpha:g}; the smallest "
                f"one-sided exact sign-flip p with n={n} seeds is 1/2^{n} = {fmt(0.5 ** n)}, so rejecting even one "
                f"member needs p < α/{k} = {fmt(alpha / k)}: at least {int(r.min_seeds_for_family)} seeds.")
        if n < r.min_seeds_for_family:
            line += (f" **With {n} seeds no comparison in this family can be called 'better'; read the CIs and "
                     "effect sizes as descriptive.**")
        out.append(line)
    return "\n".join(out) + "\n"


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


def arm_means_table(summ: pd.DataFrame, index: Sequence[str]) -> pd.DataFrame:
    """``arm_summary`` rows as a wide table of 'mean [ci_low, ci_high]' per metric (for a report)."""
    shown = summ.assign(value=[f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                               zip(summ["mean"], summ["ci_low"], summ["ci_high"])])
    return shown.pivot_table(index=list(index), columns="metric", values="value", aggfunc="first",
                             sort=False).reset_index()
