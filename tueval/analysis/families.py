"""Seed-paired verdict families of a tidy runs table: per-seed differences of the method arm against every
control arm (failed seeds counted against their arm by the worst-rank rule), Holm (or BH) labels within the
chosen family grouping, the intersection-union "better on every primary metric" and "beats every control",
degenerate (identical) arms, per-arm summaries, and the report lines that explain a family.

A family is built from a frame of per-seed differences (``paired_diffs`` makes one from runs), so any other paired
estimand with the same columns (e.g. utility at matched forgetting) joins a family as one more metric."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, SpecError
from ..metrics.catalogue import direction
from ..report import fmt
from ..stats import Verdict, compare_diffs, group_ci, min_seeds_for_exact, verdict_table, verdicts_to_frame
from .grid import BASE, METHOD_ARM

#: which grouping of comparisons forms one Holm family; ``method`` (the default): per objective and method, both
#: primary metrics and every control together (the claim a report makes about one method)
FAMILIES = {"method": ("objective", "method"), "objective": ("objective",),
            "method_metric": ("objective", "method", "metric"), "overall": ()}
DEFAULT_FAMILY = "method"
#: the verdict columns of the trade-off report tables
VERDICT_TABLE_COLUMNS = ("metric", "method", "control", "estimate", "ci_low", "ci_high", "robust_ci_low",
                         "robust_ci_high", "effect_size", "effect_size_ci_low", "effect_size_ci_high", "p_value",
                         "p_adjusted", "family_size", "n_seeds", "n_failed", "better_unadjusted", "decision")
#: the columns of a paired-differences frame (after the group columns)
DIFF_COLUMNS = ("control", "metric", "seed", "method_value", "control_value", "diff", "method_failed",
                "control_failed")


def _confirmatory(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["role"] == "confirmatory"] if "role" in runs else runs


def paired_diffs(runs: pd.DataFrame, metrics: Sequence[str], method_arm: str = METHOD_ARM,
                 group: Sequence[str] = ("objective", "method")) -> pd.DataFrame:
    """Per-seed differences method - control for every (group, control, metric), seeds inner-joined.

    A failed seed (its metric NaN or infinite: a diverged or broken run) is never dropped: its value becomes the
    worst finite value of that metric over every arm and seed of the group (the worst-rank rule), so it counts
    against its own arm; ``method_failed`` / ``control_failed`` mark it. Metrics without a better direction are
    left as they are (a comparison on them is refused)."""
    group = list(group)
    conf = _confirmatory(runs)
    long = conf.melt(id_vars=[*group, "arm", "seed"], value_vars=list(metrics), var_name="metric")
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float)
    long["failed"] = ~np.isfinite(long["value"].to_numpy())
    long["value"] = long["value"].where(~long["failed"])
    for m in metrics:  # the worst finite value per (group, metric), where the metric has a direction
        h = direction(m)
        sel = long["metric"] == m
        if h is None or not sel.any():
            continue
        worst = long[sel].groupby(group, sort=False)["value"].transform("min" if h else "max")
        long.loc[sel, "value"] = long.loc[sel, "value"].fillna(worst)
    me = long[long["arm"] == method_arm].drop(columns="arm").rename(
        columns={"value": "method_value", "failed": "method_failed"})
    ct = long[long["arm"] != method_arm].rename(columns={"arm": "control", "value": "control_value",
                                                         "failed": "control_failed"})
    d = ct.merge(me, on=[*group, "metric", "seed"], how="inner")
    d["diff"] = d["method_value"] - d["control_value"]
    cols = [*group, *DIFF_COLUMNS]
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
    control: e.g. random_k equals uniform for soft weights with no zeros, magnitude_matched equals uniform for
    soft weights, whose total weight is the token count)."""
    group = list(group)
    conf = _confirmatory(runs)
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


def degenerate_controls(same: pd.DataFrame, method_arm: str = METHOD_ARM,
                        group: Sequence[str] = ("objective", "method")) -> pd.DataFrame:
    """The control arms to drop from the families, from ``identical_arms``: of each identical pair the arm that is
    neither the method nor the uniform base (the later one when both are controls); columns group, control,
    same_as."""
    keep = (method_arm, BASE)
    rows = []
    for r in same.to_dict("records"):
        a, b = r["arm"], r["same_as"]
        drop, other = (b, a) if (a in keep or b not in keep) else (a, b)
        if drop in keep:
            continue
        rows.append({**{c: r[c] for c in group}, "control": drop, "same_as": other})
    return pd.DataFrame(rows, columns=[*group, "control", "same_as"]).drop_duplicates([*group, "control"])


def _diff_comparison(g: pd.DataFrame, **kw):
    """The seed-paired comparison of one (group, control, metric) block of paired diffs."""
    return compare_diffs(g["diff"].to_numpy(float), **kw)


def _comparisons(d: pd.DataFrame, group: Sequence[str], alpha: float,
                 directions: dict[str, bool] | None = None, compare: Callable | None = None) -> list[tuple]:
    """(comparison, group values) for every (group, control, metric) of the paired diffs ``d`` with 2+ seeds;
    a metric with no values in a group (e.g. a distance without the retain reference) is skipped. ``compare(block,
    **names)`` builds each comparison from its rows (default: the seed-paired test of ``diff``)."""
    compare = compare or _diff_comparison
    out = []
    for key, g in d.groupby([*group, "control", "metric"], sort=False):
        gd = dict(zip([*group, "control", "metric"], key))
        diffs = g["diff"].to_numpy(float)
        if len(g) < 2 or np.isnan(diffs).all():
            continue
        if np.isnan(diffs).any():
            raise DataError(None, int(g["seed"].iloc[int(np.flatnonzero(np.isnan(diffs))[0])]), gd["metric"],
                            f"{gd[group[-1]]} vs {gd['control']}: a failed seed has no worst value to take")
        failed = int((g["method_failed"].astype(bool) | g["control_failed"].astype(bool)).sum()) \
            if "method_failed" in g else 0
        out.append((compare(g, metric=gd["metric"], method=str(gd[group[-1]]), control=gd["control"],
                            higher_is_better=(directions or {}).get(gd["metric"]), alpha=alpha, n_failed=failed),
                    {c: gd[c] for c in group}))
    return out


def method_comparisons(runs: pd.DataFrame, metrics: Sequence[str], alpha: float = 0.05,
                       method_arm: str = METHOD_ARM, group: Sequence[str] = ("objective", "method")) -> list:
    """The paired comparisons (per-seed diffs, CIs, one-sided sign-flip p in the better direction) of the method
    arm against every control on ``metrics``, uncorrected: the members of a family for ``verdict_table``."""
    return [c for c, _ in _comparisons(paired_diffs(runs, metrics, method_arm, group), group, alpha)]


def family_verdicts(d: pd.DataFrame, alpha: float = 0.05, family: str | Sequence[str] = DEFAULT_FAMILY,
                    correction: str = "holm", group: Sequence[str] = ("objective", "method"),
                    order: dict[str, dict] | None = None, directions: dict[str, bool] | None = None,
                    compare: Callable | None = None) -> tuple[list[Verdict], pd.DataFrame]:
    """Verdicts of a paired-differences frame ``d`` (group columns + ``DIFF_COLUMNS``; ``paired_diffs`` makes one,
    any paired estimand with the same columns joins as one more metric) with ``correction`` within each family,
    and the frame of verdicts with their family columns. ``family``: a key of FAMILIES or a tuple of columns;
    ``compare``: how one comparison is built from its rows (``_comparisons``; e.g. a test pooled over strata)."""
    if isinstance(family, str) and family not in FAMILIES:
        raise SpecError(f"family '{family}' is not one of {', '.join(FAMILIES)}")
    fam_cols = list(FAMILIES[family]) if isinstance(family, str) else list(family)
    group = list(group)
    if d.empty:
        return [], verdicts_to_frame([])
    keys = [*group, "metric", "control"]
    if order:
        d = d.sort_values(keys, key=lambda col: col.map(order[col.name]) if col.name in order else col,
                          kind="stable")
    out_v, frames = [], []
    fam_iter = d.groupby(fam_cols, sort=False) if fam_cols else [((), d)]
    for fkey, fd in fam_iter:
        fkey = fkey if isinstance(fkey, tuple) else (fkey,)
        pairs = _comparisons(fd, group, alpha, directions, compare)
        if not pairs:
            continue
        vs = verdict_table([c for c, _ in pairs], alpha=alpha, correction=correction)
        f = verdicts_to_frame(vs)
        for c in reversed(group):
            if c not in f.columns:
                f.insert(0, c, [m[c] for _, m in pairs])
        k = len(vs)
        # the method label already starts with its objective: leave the objective out of the family name then
        f["family"] = ("/".join(str(x) for c, x in zip(fam_cols, fkey) if not (c == "objective" and "method" in
                                                                                fam_cols)) if fam_cols else "all")
        f["family_definition"] = (" x ".join(["methods"] * ("method" not in fam_cols) + ["controls"]
                                             + ["metrics"] * ("metric" not in fam_cols))
                                  + (f" per {', '.join(fam_cols)}" if fam_cols else " overall"))
        f["min_seeds_for_family"] = min_seeds_for_exact(alpha, "greater", k)
        out_v += vs
        frames.append(f)
    if not frames:
        return [], verdicts_to_frame([])
    frame = pd.concat(frames, ignore_index=True)
    frame["min_seeds_per_comparison"] = min_seeds_for_exact(alpha, "greater", 1)
    frame["reachable"] = frame["n_seeds"] >= frame["min_seeds_for_family"]
    return out_v, frame


def paired_verdicts(runs: pd.DataFrame, metrics: Sequence[str], alpha: float = 0.05,
                    family: str | Sequence[str] = DEFAULT_FAMILY, correction: str = "holm",
                    method_arm: str = METHOD_ARM, group: Sequence[str] = ("objective", "method"),
                    controls: Sequence[str] | None = None, directions: dict[str, bool] | None = None,
                    drop: pd.DataFrame | None = None) -> tuple[list[Verdict], pd.DataFrame]:
    """Verdicts of method vs every control on ``metrics`` (one-sided paired sign-flip test in the better
    direction, t-interval and bootstrap-t CI, ``correction`` within each family; failed seeds by the worst-rank
    rule) and the frame of verdicts with their family columns. ``drop``: controls to leave out per group
    (``degenerate_controls``); ``directions``: an explicit better direction per metric (else the catalogue's)."""
    d = paired_diffs(runs, metrics, method_arm, group)
    if controls is not None:
        d = d[d["control"].isin(list(controls))]
    d = without_controls(d, drop, group)
    return family_verdicts(d, alpha, family, correction, group, _orders(runs, group, metrics), directions)


def without_controls(diffs: pd.DataFrame, drop: pd.DataFrame | None,
                     group: Sequence[str] = ("objective", "method")) -> pd.DataFrame:
    """``diffs`` without the (group, control) rows named in ``drop`` (``degenerate_controls``)."""
    if drop is None or drop.empty:
        return diffs
    key = [*group, "control"]
    d = diffs.merge(drop[key].drop_duplicates().assign(_drop=True), on=key, how="left")
    return d[d["_drop"].isna()].drop(columns="_drop").reset_index(drop=True)


def better_on_all(vframe: pd.DataFrame, by: Sequence[str] = ("objective", "method", "control")) -> pd.DataFrame:
    """Intersection-union per group of ``by``: is the method better at alpha (unadjusted) on every comparison of
    the group (e.g. on both primary metrics against one control)? Columns ``by``, n_comparisons, n_better,
    better_on_all."""
    by = [c for c in by if c in vframe.columns]
    if vframe.empty:
        return pd.DataFrame(columns=[*by, "n_comparisons", "n_better", "better_on_all"])
    b = vframe["better_unadjusted"].astype(bool)
    g = vframe.assign(_b=b).groupby(by, sort=False)["_b"]
    out = g.agg(n_comparisons="size", n_better="sum").reset_index()
    out["better_on_all"] = out["n_better"] == out["n_comparisons"]
    return out


def arm_summary(runs: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] = ("objective", "method", "arm",
                                                                                   "role", "setting")
                ) -> pd.DataFrame:
    """Mean, SD, n and 95% t-CI of each metric per arm over its finished seeds (the numbers the Pareto plot
    shows), and ``n_failed``: the seeds whose value is NaN or infinite (failed runs, shown, not hidden)."""
    by = [c for c in by if c in runs.columns]
    long = runs.melt(id_vars=[*by, "seed"], value_vars=list(metrics), var_name="metric")
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float)
    ok = np.isfinite(long["value"].to_numpy())
    summ = group_ci(long[ok], [*by, "metric"], "value")
    failed = long[~ok].groupby([*by, "metric"], sort=False, dropna=False).size().rename("n_failed").reset_index()
    summ = summ.merge(failed, on=[*by, "metric"], how="left") if not failed.empty else summ.assign(n_failed=0)
    summ["n_failed"] = summ["n_failed"].fillna(0).astype(int)
    return summ


def family_note(vframe: pd.DataFrame, alpha: float) -> str:
    """One line per Holm family: its size and the seeds it needs, and the rule for "beats every control"."""
    fams = vframe.drop_duplicates("family")
    out = []
    for r in fams.itertuples():
        k = int((vframe["family"] == r.family).sum())
        n = int(vframe.loc[vframe["family"] == r.family, "n_seeds"].min())
        line = (f"- family `{r.family}` ({r.family_definition}): {k} comparison{'s' if k != 1 else ''}, "
                f"Holm at α={alpha:g}; minimum seeds {int(r.min_seeds_for_family)} (the smallest one-sided exact "
                f"sign-flip p with n seeds is 1/2^n, and a Holm label needs p < α/{k} = {fmt(alpha / k)}); "
                f"this family has n={n}.")
        if n < r.min_seeds_for_family:
            line += (f" **With {n} seeds no comparison in this family can be labelled 'better'; read the CIs and "
                     "effect sizes as descriptive.**")
        out.append(line)
    per = int(vframe["min_seeds_per_comparison"].iloc[0]) if "min_seeds_per_comparison" in vframe else \
        min_seeds_for_exact(alpha, "greater", 1)
    out.append(f"- \"Better on both primary metrics\" and \"beats every control\" are intersection-union tests: "
               f"each member must be better at α={alpha:g} without multiplicity correction (at least {per} seeds), "
               "so their size is at most α.")
    return "\n".join(out) + "\n"


def _yes_no(row) -> str:
    word = {"better": "YES", "worse": "no (worse)", "equivalent": "equivalent", "not better": "no"}[row.decision]
    return (f"{word} (Δ={fmt(row.estimate)} [{fmt(row.ci_low)}, {fmt(row.ci_high)}], d_z={fmt(row.effect_size)} "
            f"[{fmt(row.effect_size_ci_low)}, {fmt(row.effect_size_ci_high)}], p_adj={fmt(row.p_adjusted)}, "
            f"n={row.n_seeds}{f', {row.n_failed} failed' if getattr(row, 'n_failed', 0) else ''})")


def plain_summary(vframe: pd.DataFrame, metric_names: dict[str, str] | None = None) -> str:
    """Per method and control: the Holm label on each metric, and whether the method is better on all of them
    (intersection-union at alpha, unadjusted); per method: whether it beats every control on every metric."""
    names = metric_names or {"log10_fq": "forget quality", "model_utility": "utility"}
    lines = []
    for m, g in vframe.groupby("method", sort=False):
        every = bool(g["better_unadjusted"].astype(bool).all())
        lines.append(f"- **{m}**: beats every control on every metric (intersection-union)? "
                     f"{'YES' if every else 'no'}")
        for c, gc in g.groupby("control", sort=False):
            parts = [f"on {names.get(r.metric, r.metric)}? {_yes_no(r)}" for r in gc.itertuples()]
            both = bool(gc["better_unadjusted"].astype(bool).all())
            what = "both" if len(gc) == 2 else f"all {len(gc)}"
            lines.append(f"  - beats `{c}` " + "; ".join(parts)
                         + f"; better on {what} (intersection-union)? {'YES' if both else 'no'}")
    return "\n".join(lines) + "\n"


def arm_means_table(summ: pd.DataFrame, index: Sequence[str]) -> pd.DataFrame:
    """``arm_summary`` rows as a wide table of 'mean [ci_low, ci_high]' per metric (for a report); failed seeds
    are appended as '(k failed)'."""
    fails = summ["n_failed"] if "n_failed" in summ else pd.Series(0, index=summ.index)
    shown = summ.assign(value=[f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" + (f" ({int(k)} failed)" if k else "") for
                               m, lo, hi, k in zip(summ["mean"], summ["ci_low"], summ["ci_high"], fails)])
    return shown.pivot_table(index=list(index), columns="metric", values="value", aggfunc="first",
                             sort=False).reset_index()

