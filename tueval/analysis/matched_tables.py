"""The matched-forgetting comparison of a trade-off grid: per (method, control, seed) the utility difference at
the method's final forget level along each arm's trajectory, per (method, control) the estimate, CI and
p-value in a verdict family, the dominated area (hypervolume) of each arm's curve, and the learning rates of
the uniform base that bracket the methods' forget levels.

Input is a trajectories frame: one row per checkpoint of a run, labelled with the group columns (objective,
method), ``arm``, ``seed`` and ``run_id`` (a learning-rate grid has several runs per arm and seed: the arm's
frontier is used), and holding ``step``, ``forget_quality``, ``forget_prob`` and a utility column
(``utility_est`` by default), step 0 being the target model. ``load_trajectories`` builds it from a runs table.

Two estimands of the forget level (``ESTIMANDS``): log10 forget quality, and the distance of the forget
probability to the retain model's. The per-seed differences have the columns of
``tueval.analysis.families.DIFF_COLUMNS`` (plus ``level`` and ``status``), so they form families exactly like the
primary metrics; their direction (higher is better) is passed with every comparison."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, TuevalError
from ..stats.matched import (CONTROL_FAILED, METHOD_FAILED, NOT_BRACKETED, OK, Rule, fill_failed, final_point,
                             hypervolume, log10_fq, matched_differences, retain_distance, split_at_crossings)
from .families import DEFAULT_FAMILY, DIFF_COLUMNS, family_verdicts
from .grid import BASE, METHOD_ARM

GROUP = ("objective", "method")
#: estimand -> (metric name of the matched utility difference, trajectory column of the forget level)
ESTIMANDS = {"fq": ("utility_at_matched_fq", "forget_quality"),
             "fp": ("utility_at_matched_fp", "forget_prob")}
HYPERVOLUME = {"fq": "hypervolume_fq", "fp": "hypervolume_fp"}
#: every matched metric is higher-is-better; the direction travels with each comparison
DIRECTIONS = {**{m: True for m, _ in ESTIMANDS.values()}, **{m: True for m in HYPERVOLUME.values()}}
UTILITY = "utility_est"
#: ``diff`` gives each control the higher utility of the two checkpoints around the method's level (the reading
#: least favourable to the method), ``diff_favourable`` the lower one, ``diff_interpolated`` the linear
#: interpolation (descriptive)
BOUNDS = {"diff": "upper", "diff_favourable": "lower", "diff_interpolated": "linear"}
MATCHED_COLUMNS = (*DIFF_COLUMNS, "diff_favourable", "diff_interpolated", "level", "status", "n_control_runs")


def _default_loader() -> Callable:
    try:
        from ..trajectory import load_trajectory
    except ImportError as e:
        raise TuevalError("this build of tueval writes no run trajectories (tueval.trajectory is missing)") from e
    return load_trajectory


def load_trajectories(runs: pd.DataFrame, wd, load: Callable | None = None,
                      group: Sequence[str] = GROUP) -> pd.DataFrame:
    """The trajectories frame of a runs table (group columns, ``arm``, ``seed`` and ``run_dir`` or ``run_id``;
    ``lr`` is carried when present): each run's checkpoints via ``load(run_dir, wd)`` (default
    ``tueval.trajectory.load_trajectory``, step 0 first), each distinct run read once."""
    load = load or _default_loader()
    if "run_dir" not in runs and "run_id" not in runs:
        raise DataError(None, None, "run_id", "the runs table needs a run_dir or run_id column")
    rows = runs.copy()
    if "run_dir" not in rows:
        rows["run_dir"] = [str(Path(wd.root) / "runs" / str(r)) for r in rows["run_id"]]
    if "run_id" not in rows:
        rows["run_id"] = [Path(p).name for p in rows["run_dir"]]
    keep = [*group, "arm", "seed", "run_id", *(["lr"] if "lr" in rows else [])]
    loaded = {d: load(Path(d), wd) for d in dict.fromkeys(rows["run_dir"])}
    frames = [loaded[r["run_dir"]].assign(**{k: r[k] for k in keep}) for r in rows.to_dict("records")]
    if not frames:
        return pd.DataFrame(columns=[*keep, "step"])
    return pd.concat(frames, ignore_index=True)


def forget_level(traj: pd.DataFrame, estimand: str, retain_forget_prob: float | None = None,
                 signed: bool = False) -> np.ndarray:
    """The forget level of every checkpoint: log10 forget quality (``fq``) or |forget probability - the retain
    model's| (``fp``, which needs ``retain_forget_prob``; ``signed``: without the absolute value)."""
    if estimand not in ESTIMANDS:
        raise DataError(None, None, "estimand", f"'{estimand}' is not one of {', '.join(ESTIMANDS)}")
    col = ESTIMANDS[estimand][1]
    if col not in traj:
        raise DataError(None, None, col, "the trajectories frame has no such column")
    v = pd.to_numeric(traj[col], errors="coerce").to_numpy(float)
    if estimand == "fq":
        return log10_fq(v)
    if retain_forget_prob is None or not math.isfinite(float(retain_forget_prob)):
        raise DataError(None, None, "forget_prob", "the forget-probability estimand needs the retain model's "
                                                   "forget probability (eval/retain/summary.json)")
    return v - float(retain_forget_prob) if signed else retain_distance(v, float(retain_forget_prob))


def curves(traj: pd.DataFrame, x: np.ndarray, utility: str = UTILITY, keys: Sequence[str] = ("run_id",)
           ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Padded curves per distinct ``keys``: the key frame ``[K]`` and level / utility arrays ``[K, n]`` in step
    order (NaN after a run's last checkpoint)."""
    keys = list(keys)
    if utility not in traj:
        raise DataError(None, None, utility, "the trajectories frame has no such column")
    t = traj[[*keys, "step"]].assign(_x=x, _y=pd.to_numeric(traj[utility], errors="coerce").astype(float))
    t = t.sort_values([*keys, "step"], kind="stable")
    kf = t[keys].drop_duplicates().reset_index(drop=True)
    row = t.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    col = t.groupby(keys, sort=True, dropna=False).cumcount().to_numpy()
    n = int(col.max()) + 1 if len(t) else 0
    X, Y = np.full((len(kf), n), np.nan), np.full((len(kf), n), np.nan)
    X[row, col], Y[row, col] = t["_x"].to_numpy(), t["_y"].to_numpy()
    return kf, X, Y


def matched_diffs(traj: pd.DataFrame, estimand: str = "fq", retain_forget_prob: float | None = None,
                  utility: str = UTILITY, method_arm: str = METHOD_ARM, group: Sequence[str] = GROUP,
                  rule: Rule = "first") -> pd.DataFrame:
    """Per (group, control, seed): the method's final utility minus the control's utility at the method's final
    forget level (``MATCHED_COLUMNS``). Between two checkpoints the control's utility is only known to lie between
    theirs (its utility is taken as monotone along a segment, not linear): ``diff`` uses the higher end, against
    the method, ``diff_favourable`` the lower end, ``diff_interpolated`` the linear interpolation (``BOUNDS``).
    A control with several runs per seed (a learning-rate grid) enters with its frontier. Seeds that are not OK
    (``status``) take the worst-rank difference: a control that does not bracket the method's level, or a failed
    method, count against the method (``method_failed``); a failed control against the control
    (``control_failed``)."""
    group = list(group)
    metric = ESTIMANDS[estimand][0]
    kf, X, Y = curves(traj, forget_level(traj, estimand, retain_forget_prob, signed=True), utility,
                      [*group, "arm", "seed", "run_id"])
    if estimand == "fp":  # a run that crosses the retain model's level passes through every distance below its ends
        split = {col: split_at_crossings(X, Y, interp) for col, interp in BOUNDS.items()}
        X, Ys = np.abs(split["diff"][0]), {col: y for col, (_, y) in split.items()}
    else:
        Ys = {col: Y for col in BOUNDS}
    is_m = (kf["arm"] == method_arm).to_numpy()
    dup = kf[is_m].duplicated([*group, "seed"])
    if dup.any():
        r = kf[is_m][dup].iloc[0]
        raise DataError(None, int(r["seed"]), "run_id", f"{r[group[-1]]}: the method arm has more than one run "
                                                        "for this seed")
    lvl, mu = final_point(X[is_m], Ys["diff"][is_m])
    meth = kf[is_m][[*group, "seed"]].assign(_lvl=lvl, _mu=mu)
    out = []
    ctl = kf[~is_m].assign(_i=np.flatnonzero(~is_m))
    for key, g in ctl.groupby([*group, "arm"], sort=False):
        gd = dict(zip([*group, "arm"], key))
        m = meth.merge(pd.DataFrame([{c: gd[c] for c in group}]), on=group)
        g = g.merge(m, on=[*group, "seed"])
        if g.empty:
            continue
        seeds = list(dict.fromkeys(g["seed"]))
        r_of = g.groupby("seed", sort=False).cumcount().to_numpy()
        s_of = g["seed"].map({s: i for i, s in enumerate(seeds)}).to_numpy()
        rows = g["_i"].to_numpy()
        cx = np.full((len(seeds), int(r_of.max()) + 1, X.shape[1]), np.nan)
        cx[s_of, r_of] = X[rows]
        first = g.drop_duplicates("seed").set_index("seed").loc[seeds]
        readings = {}
        for col, interp in BOUNDS.items():  # the bracketing (status) depends on the levels only: the same in each
            cy = np.full(cx.shape, np.nan)
            cy[s_of, r_of] = Ys[col][rows]
            diff, cu, status = matched_differences(first["_lvl"].to_numpy(), first["_mu"].to_numpy(), cx, cy,
                                                   rule, interp)
            readings[col] = fill_failed(diff, status)
            readings.setdefault("control_value", cu)
        out.append(pd.DataFrame({**{c: gd[c] for c in group}, "control": gd["arm"], "metric": metric,
                                 "seed": seeds, "method_value": first["_mu"].to_numpy(), **readings,
                                 "method_failed": np.isin(status, [METHOD_FAILED, NOT_BRACKETED]),
                                 "control_failed": status == CONTROL_FAILED, "level": first["_lvl"].to_numpy(),
                                 "status": status, "n_control_runs": np.bincount(s_of, minlength=len(seeds))}))
    if not out:
        return pd.DataFrame(columns=[*group, *MATCHED_COLUMNS])
    return pd.concat(out, ignore_index=True)[[*group, *MATCHED_COLUMNS]]


def bracketing_summary(diffs: pd.DataFrame, group: Sequence[str] = GROUP) -> pd.DataFrame:
    """Per (group, control, metric): how many seeds were matched (``n_bracketed``) and how many were not
    (``n_not_bracketed``, each counted against the method)."""
    keys = [*group, "control", "metric"]
    g = diffs.assign(_b=diffs["status"] == OK, _nb=diffs["status"] == NOT_BRACKETED).groupby(keys, sort=False)
    return g.agg(n_bracketed=("_b", "sum"), n_not_bracketed=("_nb", "sum")).reset_index()


def favourable_fill(diffs: pd.DataFrame, group: Sequence[str] = GROUP) -> pd.DataFrame:
    """``diffs`` read in the method's favour: ``diff`` becomes ``diff_favourable`` (the control at the lower end
    of its segment), and each not-bracketed seed max(0, best OK favourable difference of its comparison): the
    differences a 'worse' label must also hold on."""
    fav = diffs["diff_favourable"] if "diff_favourable" in diffs else diffs["diff"]
    keys = [diffs[k] for k in [*group, "control", "metric"]]
    best = fav.where(diffs["status"] == OK).groupby(keys, sort=False).transform("max")
    return diffs.assign(diff=np.where(diffs["status"] == NOT_BRACKETED, best.fillna(0.0).clip(lower=0.0), fav))


def matched_verdicts(diffs: pd.DataFrame, alpha: float = 0.05, family: str | Sequence[str] = DEFAULT_FAMILY,
                     correction: str = "holm", group: Sequence[str] = GROUP) -> tuple[list, pd.DataFrame]:
    """Verdicts of the matched differences (one-sided paired sign-flip test, higher is better, t- and
    bootstrap-t CIs, ``correction`` within each family) and their frame, with ``n_not_bracketed`` and the
    favourable and interpolated estimates per comparison. 'Better' is tested on ``diff`` (each control at the
    higher utility of its bracketing checkpoints; not-bracketed seeds against the method); a 'worse' label must
    hold on the favourable reading too (``favourable_fill``), else it reads 'not better'."""
    from dataclasses import replace

    group = list(group)
    d = diffs[[*group, *DIFF_COLUMNS]]
    verdicts, frame = family_verdicts(d, alpha, family, correction, group, directions=DIRECTIONS)
    if frame.empty:
        return verdicts, frame
    keys = [*group, "control", "metric"]
    frame = frame.merge(reading_estimates(diffs, group), on=keys, how="left")
    if (frame["decision"] == "worse").any():
        _, fav = family_verdicts(favourable_fill(diffs, group)[[*group, *DIFF_COLUMNS]], alpha, family, correction,
                                 group, directions=DIRECTIONS)
        frame, undo = confirm_worse(frame, fav, keys)
        gone = {tuple(r) for r in frame.loc[undo, ["method", "control", "metric"]].itertuples(index=False)}
        verdicts = [replace(v, decision="not better") if (v.method, v.control, v.metric) in gone else v
                    for v in verdicts]
    return verdicts, frame.merge(bracketing_summary(diffs, group), on=keys, how="left")


def reading_estimates(diffs: pd.DataFrame, group: Sequence[str] = GROUP) -> pd.DataFrame:
    """Per comparison, the mean of the favourable and of the interpolated differences over its seeds (not-OK
    seeds with their worst-rank values, as in ``estimate``): ``estimate_favourable``, ``estimate_interpolated``."""
    keys = [*group, "control", "metric"]
    cols = [c for c in ("diff_favourable", "diff_interpolated") if c in diffs]
    out = diffs.groupby(keys, sort=False)[cols].mean().reset_index()
    return out.rename(columns={c: c.replace("diff", "estimate") for c in cols})


def confirm_worse(frame: pd.DataFrame, favourable: pd.DataFrame, keys: Sequence[str]
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` with every 'worse' label that ``favourable`` (the same comparisons on ``favourable_fill``'s
    differences) does not repeat turned into 'not better', and the mask of the labels turned."""
    keys = list(keys)
    still = frame[keys].merge(favourable[[*keys, "decision"]], on=keys, how="left")["decision"].eq("worse")
    undo = (frame["decision"] == "worse").to_numpy() & ~still.to_numpy()
    frame = frame.copy()
    frame.loc[undo, "decision"] = "not better"
    return frame, undo


def target_level(traj: pd.DataFrame, x: np.ndarray) -> float:
    """The target model's forget level: the step-0 checkpoint, the same in every run."""
    zero = traj["step"].to_numpy() == 0
    if not zero.any():
        raise DataError(None, None, "step", "the trajectories have no step-0 (target model) checkpoint")
    v = x[zero]
    if not np.allclose(v, v[0], equal_nan=True):
        raise DataError(None, None, "step", "the step-0 checkpoints differ between runs (different targets)")
    return float(v[0])


def hypervolume_table(traj: pd.DataFrame, estimand: str = "fq", retain_forget_prob: float | None = None,
                      utility: str = UTILITY, utility_floor: float = 0.0, group: Sequence[str] = GROUP
                      ) -> pd.DataFrame:
    """Per (group, arm, seed): the area its checkpoints (over every run of the arm and seed) dominate beyond the
    target model's forget level and above ``utility_floor`` (the target has the highest utility of any
    checkpoint, so its own utility would leave every curve an area near 0). More forgetting is the larger
    coordinate: log10 forget quality, or minus the distance to the retain model's forget probability."""
    x = forget_level(traj, estimand, retain_forget_prob)
    x = x if estimand == "fq" else -x
    ref = target_level(traj, x)
    keys = [*group, "arm", "seed"]
    t = traj.assign(_k=traj.groupby(keys, sort=False).ngroup())
    kf, X, Y = curves(t, x, utility, ["_k"])
    hv = hypervolume(X, Y, ref, utility_floor)
    labels = t.drop_duplicates("_k").set_index("_k").loc[kf["_k"], keys].reset_index(drop=True)
    return labels.assign(metric=HYPERVOLUME[estimand], value=hv, target_level=ref)


def hypervolume_diffs(hv: pd.DataFrame, method_arm: str = METHOD_ARM, group: Sequence[str] = GROUP
                      ) -> pd.DataFrame:
    """Per-seed differences method - control of the hypervolume (``DIFF_COLUMNS``), to join a family."""
    group = list(group)
    me = hv[hv["arm"] == method_arm].drop(columns="arm").rename(columns={"value": "method_value"})
    ct = hv[hv["arm"] != method_arm].rename(columns={"arm": "control", "value": "control_value"})
    d = ct.merge(me[[*group, "seed", "metric", "method_value"]], on=[*group, "seed", "metric"])
    d["diff"] = d["method_value"] - d["control_value"]
    d["method_failed"], d["control_failed"] = ~np.isfinite(d["method_value"]), ~np.isfinite(d["control_value"])
    return d[[*group, *DIFF_COLUMNS]].reset_index(drop=True)


@dataclass(frozen=True)
class MatchedResult:
    """The matched-forgetting comparison: per-seed differences, the verdict frame, hypervolumes per arm, the
    trajectories they were computed from, and the bracketing and refinement runs merged into them
    (``tueval.analysis.bracketing``, ``tueval.analysis.refine``)."""

    diffs: pd.DataFrame
    verdicts: pd.DataFrame
    hypervolumes: pd.DataFrame
    trajectories: pd.DataFrame
    refinements: pd.DataFrame | None = None
    bracketing: pd.DataFrame | None = None


def matched_comparison(traj: pd.DataFrame, retain_forget_prob: float | None = None,
                       estimands: Sequence[str] = ("fq", "fp"), alpha: float = 0.05,
                       family: str | Sequence[str] = DEFAULT_FAMILY, correction: str = "holm", rule: Rule = "first",
                       utility: str = UTILITY, method_arm: str = METHOD_ARM, group: Sequence[str] = GROUP,
                       controls: Sequence[str] | None = None) -> MatchedResult:
    """Matched differences on every estimand in one family per ``family`` (default: per objective and method,
    every estimand and control), their verdicts and the hypervolumes (descriptive)."""
    diffs = pd.concat([matched_diffs(traj, e, retain_forget_prob, utility, method_arm, group, rule)
                       for e in estimands], ignore_index=True)
    if controls is not None:
        diffs = diffs[diffs["control"].isin(list(controls))].reset_index(drop=True)
    _, frame = matched_verdicts(diffs, alpha, family, correction, group)
    return MatchedResult(diffs, frame, hypervolumes(traj, retain_forget_prob, estimands, utility, group), traj)


def hypervolumes(traj: pd.DataFrame, retain_forget_prob: float | None = None, estimands: Sequence[str] = ("fq", "fp"),
                 utility: str = UTILITY, group: Sequence[str] = GROUP) -> pd.DataFrame:
    """``hypervolume_table`` of every estimand, in one frame."""
    return pd.concat([hypervolume_table(traj, e, retain_forget_prob, utility, group=group) for e in estimands],
                     ignore_index=True)


def frontier_runs(runs: pd.DataFrame, method_arm: str = METHOD_ARM, base: str = BASE) -> pd.DataFrame:
    """The runs a matched comparison reads from a grid's runs table: every confirmatory run, plus the
    learning-rate sweep runs of the base and the controls (their frontiers; a method keeps its one confirmatory run
    per seed, and a ratio sweep is another k, not the control's frontier)."""
    if "role" not in runs:
        return runs
    conf = runs["role"] == "confirmatory"
    lr_sweep = runs["setting"].astype(str).str.startswith("lr=") if "setting" in runs else runs["arm"] == base
    return runs[conf | ((runs["role"] == "sweep") & (runs["arm"] != method_arm) & lr_sweep)].reset_index(drop=True)


def matched_table(runs: pd.DataFrame, wd, alpha: float = 0.05, estimands: Sequence[str] = ("fq", "fp"),
                  family: str | Sequence[str] = DEFAULT_FAMILY, rule: Rule = "first", load: Callable | None = None,
                  controls: Sequence[str] | None = None) -> MatchedResult:
    """``matched_comparison`` of the runs of a runs table (``load_trajectories``) in workdir ``wd``, against the
    retain model's forget probability of ``wd``."""
    from .runs import retain_reference

    fp = (retain_reference(wd) or {}).get("forget_prob")  # missing: the fp estimand refuses, never skipped
    return matched_comparison(load_trajectories(runs, wd, load), fp, estimands, alpha, family, rule=rule,
                              controls=controls)


def matched_comparisons(diffs: pd.DataFrame, alpha: float = 0.05, group: Sequence[str] = GROUP) -> list:
    """The uncorrected paired comparisons (``tueval.stats.Comparison``, higher is better) of the matched
    differences, one per (group, control, metric): members of a family for ``verdict_table`` / ``tueval check``."""
    from .families import _comparisons

    return [c for c, _ in _comparisons(diffs[[*group, *DIFF_COLUMNS]], list(group), alpha, DIRECTIONS)]
