"""Refined matched-forgetting readings: between the two checkpoints that bracket a method's forget level, a
control's utility is only known to lie between theirs (``tueval.stats.matched``), so the bound is as wide as the
checkpoints' spacing. A refinement run is the control's run again with a checkpoint after every step inside those
segments (``RunSpec.eval_steps``, ``eval_every`` 0): on one machine training is deterministic, so it passes through
the same parameters, and its rows join the control's trajectory. It also re-checks the control's next checkpoint
after those steps and stops there (``RunSpec.stop_step``; where that checkpoint is the run's final evaluation it
runs to the end and is checked on that). The re-checked row must equal the control's own, else the rows are
refused (``RefinementMismatch``): that is the check that it re-trained the same run. One round brings every
bracketing segment down to one step."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import TuevalError
from ..spec import RunSpec
from ..stats.matched import Rule, final_point, split_at_crossings, utility_at_level
from .grid import METHOD_ARM
from .matched_tables import ESTIMANDS, GROUP, curves, forget_level

#: the columns of a refinement's re-checked row that must equal the refined run's at that step
CHECKED = ("forget_quality", "forget_prob", "forget_truth_ratio", "utility_est")


class RefinementMismatch(TuevalError):
    """A refinement run did not reproduce the run it refines (its final evaluation differs)."""


def bracket_steps(traj: pd.DataFrame, estimand: str = "fq", retain_forget_prob: float | None = None,
                  method_arm: str = METHOD_ARM, group: Sequence[str] = GROUP, rule: Rule = "first"
                  ) -> pd.DataFrame:
    """Per (group, seed, control run): the steps of the two checkpoints whose segment the matched comparison reads
    at the method's final level (``step_low``, ``step_high``; equal at a checkpoint) and ``bracketed``."""
    group = list(group)
    keys = [*group, "arm", "seed", "run_id"]
    x = forget_level(traj, estimand, retain_forget_prob, signed=True)
    kf, X, S = curves(traj, x, "step", keys)
    if estimand == "fp":  # the comparison's crossing split; an inserted point keeps its segment's end steps
        G, S_lo = split_at_crossings(X, S, "lower")
        _, S_hi = split_at_crossings(X, S, "upper")
        X = np.abs(G)
    else:
        S_lo = S_hi = S
    is_m = (kf["arm"] == method_arm).to_numpy()
    lvl, _ = final_point(X[is_m], S_lo[is_m])
    meth = kf[is_m][[*group, "seed"]].assign(_lvl=lvl)
    ctl = kf[~is_m].assign(_i=np.flatnonzero(~is_m)).merge(meth, on=[*group, "seed"], how="inner")
    i, level = ctl["_i"].to_numpy(), ctl["_lvl"].to_numpy(float)
    lo, hit = utility_at_level(X[i], S_lo[i], level, rule, "lower")
    hi, _ = utility_at_level(X[i], S_hi[i], level, rule, "upper")
    return ctl.drop(columns=["_i", "_lvl"]).assign(estimand=estimand, level=level, step_low=lo, step_high=hi,
                                                    bracketed=hit)


def refinement_steps(traj: pd.DataFrame, retain_forget_prob: float | None = None,
                     estimands: Sequence[str] = tuple(ESTIMANDS), method_arm: str = METHOD_ARM,
                     group: Sequence[str] = GROUP, rule: Rule = "first") -> dict[str, tuple[int, ...]]:
    """Per control run id, the steps strictly inside its bracketing segments (every method, seed and estimand)
    that its trajectory has no checkpoint at; runs that need none are left out."""
    seg = pd.concat([bracket_steps(traj, e, retain_forget_prob, method_arm, group, rule) for e in estimands],
                    ignore_index=True)
    seg = seg[seg["bracketed"] & (seg["step_high"] - seg["step_low"] > 1)]
    have = traj.groupby("run_id")["step"].agg(lambda s: {int(v) for v in s})
    out: dict[str, set[int]] = {}
    for rid, a, b in zip(seg["run_id"], seg["step_low"].astype(int), seg["step_high"].astype(int)):
        out.setdefault(str(rid), set()).update(range(a + 1, b))
    steps = {rid: tuple(sorted(s - have.get(rid, set()))) for rid, s in out.items()}
    return {rid: s for rid, s in sorted(steps.items()) if s}


def next_checkpoint(traj: pd.DataFrame, run_id: str, steps: Sequence[int]) -> int:
    """The step of ``run_id``'s first checkpoint after ``steps`` in ``traj``, where its refinement can stop; 0 when
    that is the run's final evaluation (the refinement then runs to the end)."""
    mine = traj[(traj["run_id"] == run_id) & (traj["step"] > max(steps))].sort_values("step", kind="stable")
    if mine.empty:
        raise RefinementMismatch(f"run {run_id}: no checkpoint after steps {list(steps)} to check a refinement on")
    return 0 if bool(mine["final"].iloc[0]) else int(mine["step"].iloc[0])


def refinement_spec(spec: RunSpec, steps: Sequence[int], stop: int = 0) -> RunSpec:
    """The refinement run of ``spec``: the same training, checkpoints only after ``steps``; with ``stop``, also
    after that step, where it ends."""
    wanted = tuple(int(s) for s in steps) + ((int(stop),) if stop else ())
    return replace(spec, eval_every=0, eval_steps=wanted, stop_step=int(stop))


def merge_refinement(traj: pd.DataFrame, run_id: str, refined: pd.DataFrame, where: str = "") -> pd.DataFrame:
    """``traj`` with the checkpoint rows of ``refined`` (a refinement run's trajectory, no step-0 row) added to
    every row set of ``run_id``, under the same labels; its last row is checked against the run's."""
    return merge_rows(traj, [refinement_rows(traj, run_id, refined, where)])


def refinement_rows(traj: pd.DataFrame, run_id: str, refined: pd.DataFrame, where: str = "") -> pd.DataFrame:
    """The rows ``merge_refinement`` adds: ``refined``'s checkpoints that ``run_id`` lacks, under every label set of
    ``run_id`` in ``traj``, after its last row (its final evaluation, or the checkpoint it stopped at) is checked
    against the run's row of the same kind at the same step."""
    mine = traj[traj["run_id"] == run_id]
    if mine.empty or refined.empty:
        raise RefinementMismatch(f"run {run_id}{where}: no rows to check the refinement against")
    last = refined.sort_values("step", kind="stable").iloc[-1]
    same = mine[(mine["step"] == int(last["step"])) & (mine["final"].astype(bool) == bool(last["final"]))]
    kind = "final evaluation" if bool(last["final"]) else f"checkpoint at step {int(last['step'])}"
    if same.empty:
        raise RefinementMismatch(f"run {run_id}{where}: the run has no {kind} to check its refinement against")
    a = same.iloc[0][list(CHECKED)].to_numpy(float)
    b = last[list(CHECKED)].to_numpy(float)
    if not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
        raise RefinementMismatch(
            f"run {run_id}{where}: its refinement's {kind} differs ({dict(zip(CHECKED, b))} vs "
            f"{dict(zip(CHECKED, a))}): training is not reproducible here (another machine, thread count or "
            "library version?); recompute both runs on one machine")
    from ..trajectory import COLUMNS

    rows = refined[~refined["final"].astype(bool) & ~refined["step"].isin(mine["step"].unique())]
    labels = [c for c in mine.columns if c not in refined.columns and c not in COLUMNS]
    added = mine[labels].drop_duplicates().merge(rows, how="cross")
    return added[traj.columns.intersection(added.columns)]


def merge_rows(traj: pd.DataFrame, added: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``traj`` and the ``added`` rows in one frame, each run's checkpoints in step order (``traj`` itself when
    nothing is added)."""
    if not added:
        return traj
    out = pd.concat([traj, *added], ignore_index=True)
    keys = [c for c in ("objective", "method", "arm", "seed", "run_id") if c in out]
    return out.sort_values([*keys, "step"], kind="stable").reset_index(drop=True)


def refine_trajectories(traj: pd.DataFrame, wd, retain_forget_prob: float | None, compute: bool = True,
                        workers: int | None = None, progress: bool = False,
                        estimands: Sequence[str] = tuple(ESTIMANDS), rule: Rule = "first"
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``traj`` with one round of refinement runs merged in (computed, or read from the run cache), and the table
    of refinements (``run_id``, ``refined_by``, ``steps``, ``stop_step``: 0 where it ran to the end)."""
    from ..sweep import require_runs
    from ..trajectory import load_trajectory
    from ..unlearn import load_run, run_id

    need = refinement_steps(traj, retain_forget_prob, estimands, rule=rule)
    specs = {rid: refinement_spec(load_run(wd, rid).spec, s, next_checkpoint(traj, rid, s)) for rid, s in need.items()}
    results = require_runs(list(specs.values()), wd, compute=compute, workers=workers, progress=progress)
    added, rows = [], []
    for (rid, spec), res in zip(specs.items(), results):
        assert res.run_id == run_id(spec, wd)
        added.append(refinement_rows(traj, rid, load_trajectory(res.path), f" (refined by {res.run_id})"))
        rows.append({"run_id": rid, "refined_by": res.run_id, "steps": ",".join(map(str, need[rid])),
                     "stop_step": spec.stop_step})
    return merge_rows(traj, added), pd.DataFrame(rows, columns=["run_id", "refined_by", "steps", "stop_step"])
