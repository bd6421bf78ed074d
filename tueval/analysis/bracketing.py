"""Bracketing runs: a control whose runs never reach a method's final forget level on a seed leaves that seed not
bracketed, and it counts against the method (``tueval.stats.matched``). A bracketing round runs each such control
again at its largest learning rate so far times ``FACTOR``, on every seed of that comparison (so the comparison's
seeds keep one learning-rate grid), and adds those runs to the control's frontier. Rounds repeat while a round
leaves seeds unbracketed and has a control to re-dose; controls whose dose is the method's by construction
(``NOT_REDOSED``) are never re-dosed and stay as they are. A bracketing run is the control's own spec at another
learning rate, so it has the run id a grid at that rate would give it and is cached like any run."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import pandas as pd

from ..spec import RunSpec
from ..stats.matched import NOT_BRACKETED, Rule
from .grid import NOT_REDOSED
from .matched_tables import ESTIMANDS, GROUP, matched_diffs

#: each round's learning rate over the control's largest so far (the grid's own spacing, ``lr_bracket``)
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


def bracketing_specs(traj: pd.DataFrame, pairs: pd.DataFrame, wd, factor: float = FACTOR
                     ) -> list[tuple[dict, RunSpec]]:
    """Per (group, control) of ``pairs`` and seed: the labels of the new run and the control's spec at its largest
    learning rate on that seed times ``factor``."""
    from ..unlearn import load_run

    rows = traj.merge(pairs, on=[*GROUP, "arm"])[[*LABELS, "run_id"]].drop_duplicates()
    specs = {rid: load_run(wd, rid).spec for rid in dict.fromkeys(rows["run_id"])}
    rows = rows.assign(_lr=[specs[r].lr for r in rows["run_id"]])
    top = rows.sort_values("_lr", kind="stable").groupby(list(LABELS), sort=True).tail(1)
    return [({**{k: r[k] for k in LABELS}, "from_run_id": r["run_id"]},
             replace(specs[r["run_id"]], lr=float(r["_lr"] * factor))) for r in top.to_dict("records")]


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
        todo = bracketing_specs(traj, pairs, wd, factor)
        results = require_runs([s for _, s in todo], wd, compute=compute, workers=workers, progress=progress)
        added = []
        for (labels, spec), res in zip(todo, results):
            row = {**labels, "run_id": res.run_id, "lr": spec.lr}
            added.append(load_trajectory(res.path, wd).assign(**{c: v for c, v in row.items() if c in traj}))
            done.append({**row, "round": k})
        traj = merge_rows(traj, added)
    return traj, pd.DataFrame(done, columns=list(COLUMNS))
