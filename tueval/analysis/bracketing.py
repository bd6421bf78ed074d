"""Bracketing runs: a control whose runs never reach a method's final forget level on a seed leaves that seed not
bracketed, and it counts against the method (``tueval.stats.matched``). A bracketing round runs each such control
again at new learning rates, on every seed of that comparison (so the comparison's seeds keep one learning-rate
grid), and adds those runs to the control's frontier. Rounds repeat while a round leaves seeds unbracketed and has
a control to re-dose; controls whose dose is the method's by construction (``NOT_REDOSED``) are never re-dosed and
stay as they are. A bracketing run is the control's own spec at another learning rate, so it has the run id a grid
at that rate would give it and is cached like any run.

The new rate is a search for the rate whose run reaches furthest towards the method's level (``next_rates``),
taking that furthest reach over rates as unimodal. On a seed, the run that reached furthest is the best so far;
where it is the largest rate tried, the rate goes up by ``FACTOR``. Otherwise a best run still moving towards the
level at its last checkpoint was under-dosed, so the next rate is the geometric mean of its rate and the next
larger one; a best run whose furthest point came before its end turned back (GA's forget quality falls again once
the model collapses), so the next rate lies between it and the next smaller one, or a ``FACTOR`` below it.
The first round also widens the grid: every such control runs at ``FACTOR`` times its largest rate as well, so
that the control's frontier (its best utility over rates at each seed's level) also gains a steeper run on the
seeds it already bracketed. Bracketing only ever adds runs to a control's frontier."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from ..spec import RunSpec
from ..stats.matched import NOT_BRACKETED, Rule, final_point, split_at_crossings
from .grid import METHOD_ARM, NOT_REDOSED
from .matched_tables import ESTIMANDS, GROUP, curves, forget_level, matched_diffs

#: the step of the rate search outside the rates tried so far (the grid's own spacing, ``lr_bracket``)
FACTOR = 3.0
COLUMNS = (*GROUP, "arm", "seed", "round", "lr", "from_run_id", "run_id")
#: the labels a trajectory row carries besides its checkpoint columns (``load_trajectories``)
LABELS = (*GROUP, "arm", "seed")


def unbracketed(traj: pd.DataFrame, retain_forget_prob: float | None = None,
                estimands: Sequence[str] = tuple(ESTIMANDS), rule: Rule = "first") -> pd.DataFrame:
    """The (group, control) pairs with a seed its runs do not bracket on some estimand, among the controls that can
    be re-dosed (columns ``GROUP`` and ``arm``)."""
    diffs = pd.concat([matched_diffs(traj, e, retain_forget_prob, rule=rule) for e in estimands], ignore_index=True)
    nb = diffs[(diffs["status"] == NOT_BRACKETED) & ~diffs["control"].isin(NOT_REDOSED)]
    return (nb[[*GROUP, "control"]].drop_duplicates().rename(columns={"control": "arm"})
            .sort_values([*GROUP, "arm"], kind="stable").reset_index(drop=True))


def run_reach(traj: pd.DataFrame, estimand: str, retain_forget_prob: float | None = None) -> pd.DataFrame:
    """Per run (``LABELS`` and ``run_id``): how far towards forgetting it got (``reach``: log10 forget quality, or
    minus the distance of the forget probability to the retain model's, so higher is further), its reach at the
    last checkpoint (``final_reach``) and whether its furthest point came before that (``turned_back``)."""
    keys = [*LABELS, "run_id"]
    kf, X, _ = curves(traj, forget_level(traj, estimand, retain_forget_prob, signed=True), "step", keys)
    if estimand == "fp":  # a run that crosses the retain model's level passes through distance 0
        X = np.abs(split_at_crossings(X, np.zeros_like(X))[0])
    R = X if estimand == "fq" else -X
    fin, _ = final_point(R, R)
    with np.errstate(invalid="ignore"):
        reach = np.nanmax(np.where(np.isfinite(R), R, np.nan), axis=-1) if R.shape[-1] else np.full(len(kf), np.nan)
    return kf.assign(reach=reach, final_reach=fin, turned_back=np.isfinite(fin) & (fin < reach))


def _next_rate(runs: Sequence[tuple[float, float, bool]], factor: float) -> float:
    """The next rate of the search on one seed from its (rate, reach, turned back) runs (module doc)."""
    runs = sorted(runs)
    rates = [r for r, _, _ in runs]
    i = max(range(len(runs)), key=lambda j: (runs[j][1], -j))  # ties: the smaller rate, the smaller dose
    if i == len(runs) - 1:
        return rates[-1] * factor
    if not runs[i][2]:
        return math.sqrt(rates[i] * rates[i + 1])
    return math.sqrt(rates[i - 1] * rates[i]) if i else rates[0] / factor


def next_rates(traj: pd.DataFrame, pairs: pd.DataFrame, lrs: pd.Series, retain_forget_prob: float | None = None,
               estimands: Sequence[str] = tuple(ESTIMANDS), factor: float = FACTOR, widen: bool = False
               ) -> pd.DataFrame:
    """Per (group, control) of ``pairs``: the learning rates of its next bracketing round (columns ``GROUP``,
    ``arm``, ``lr``), one per distinct proposal over the seeds whose level it falls short of (``lrs``: each run
    id's rate). A seed whose method ended below the control's start (the target model's level) gets none: no dose
    reaches less than no unlearning. ``widen`` adds ``factor`` times each pair's largest rate on every seed."""
    out = []
    if widen:
        top = _control_runs(traj, pairs, lrs).groupby(list(LABELS), sort=True)["lr"].max() * factor
        out += top.reset_index().to_dict("records")
    for e in estimands:
        r = run_reach(traj, e, retain_forget_prob)
        meth = r[r["arm"] == METHOD_ARM][[*GROUP, "seed", "final_reach"]].rename(columns={"final_reach": "_lvl"})
        ctl = r.merge(pairs, on=[*GROUP, "arm"]).merge(meth, on=[*GROUP, "seed"])
        short = ctl.groupby(list(LABELS))["reach"].transform("max") < ctl["_lvl"]
        for key, g in ctl[short].assign(_lr=lambda d: d["run_id"].map(lrs)).groupby(list(LABELS), sort=True):
            runs = list(zip(g["_lr"], g["reach"], g["turned_back"]))
            out.append({**dict(zip(LABELS, key)), "lr": _next_rate(runs, factor)})
    cols = [*GROUP, "arm", "lr"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(out)[cols].drop_duplicates().sort_values(cols, kind="stable").reset_index(drop=True)


def _control_runs(traj: pd.DataFrame, pairs: pd.DataFrame, lrs: pd.Series) -> pd.DataFrame:
    """The runs of the (group, control) ``pairs`` (``LABELS``, ``run_id`` and ``lr``), by labels and rate."""
    rows = traj.merge(pairs, on=[*GROUP, "arm"])[[*LABELS, "run_id"]].drop_duplicates()
    return rows.assign(lr=rows["run_id"].map(lrs)).sort_values([*LABELS, "lr"], kind="stable")


def _rates(traj: pd.DataFrame, pairs: pd.DataFrame, wd) -> tuple[dict, pd.Series]:
    """The spec and learning rate of each run of the (group, control) ``pairs``."""
    from ..unlearn import load_run

    ids = traj.merge(pairs, on=[*GROUP, "arm"])["run_id"]
    specs = {rid: load_run(wd, rid).spec for rid in dict.fromkeys(ids)}
    return specs, pd.Series({rid: float(s.lr) for rid, s in specs.items()}, dtype=float)


def bracketing_specs(traj: pd.DataFrame, pairs: pd.DataFrame, wd, retain_forget_prob: float | None = None,
                     estimands: Sequence[str] = tuple(ESTIMANDS), factor: float = FACTOR, widen: bool = False
                     ) -> list[tuple[dict, RunSpec]]:
    """Per (group, control) of ``pairs``, rate of ``next_rates`` and seed: the labels of the new run and the
    control's spec at that rate (from its run at the largest rate below it, else its smallest)."""
    specs, lrs = _rates(traj, pairs, wd)
    todo = next_rates(traj, pairs, lrs, retain_forget_prob, estimands, factor, widen)
    rows = _control_runs(traj, pairs, lrs)
    out = []
    for t in todo.to_dict("records"):
        g = rows.merge(pd.DataFrame([{c: t[c] for c in (*GROUP, "arm")}]), on=[*GROUP, "arm"])
        for _, s in g.groupby("seed", sort=True):
            if np.isclose(s["lr"], t["lr"], rtol=1e-9, atol=0).any():
                continue  # this seed already has a run at that rate
            below = s[s["lr"] < t["lr"]]
            src = (below.iloc[-1] if len(below) else s.iloc[0])
            out.append(({k: src[k] for k in LABELS} | {"from_run_id": src["run_id"]},
                        replace(specs[src["run_id"]], lr=float(t["lr"]))))
    return out


def bracket_trajectories(traj: pd.DataFrame, wd, retain_forget_prob: float | None, rounds: int = 1,
                         compute: bool = True, workers: int | None = None, progress: bool = False,
                         estimands: Sequence[str] = tuple(ESTIMANDS), rule: Rule = "first",
                         factor: float = FACTOR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``traj`` with up to ``rounds`` bracketing rounds merged in (computed, or read from the run cache), and the
    table of bracketing runs (``COLUMNS``: the run each was re-dosed from, its learning rate and round)."""
    from ..sweep import require_runs
    from ..trajectory import load_trajectory
    from .refine import merge_rows

    done: list[dict] = []
    for k in range(1, rounds + 1):
        pairs = unbracketed(traj, retain_forget_prob, estimands, rule)
        if pairs.empty:
            break
        todo = bracketing_specs(traj, pairs, wd, retain_forget_prob, estimands, factor, widen=k == 1)
        if not todo:
            break
        results = require_runs([s for _, s in todo], wd, compute=compute, workers=workers, progress=progress)
        added = []
        for (labels, spec), res in zip(todo, results):
            row = {**labels, "run_id": res.run_id, "lr": spec.lr}
            added.append(load_trajectory(res.path, wd).assign(**{c: v for c, v in row.items() if c in traj}))
            done.append({**row, "round": k})
        traj = merge_rows(traj, added)
    return traj, pd.DataFrame(done, columns=list(COLUMNS))
