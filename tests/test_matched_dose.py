"""The planted dose test: the uniform base at a third of its learning rate, entered as if it were a method, is not
better than the uniform base at matched forgetting, although at one learning rate it looks better on utility and
worse on forgetting (as token-level methods that take smaller updates do).

Each run's trajectory is emulated from weight snapshots (``snapshot_steps``) evaluated without generation, in the
trajectory format of ``tueval.analysis.matched_tables``; once runs write their own trajectory (``eval_every``),
``_trajectories`` becomes ``load_trajectories(runs, wd)``."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tueval.analysis.matched_tables import final_levels, matched_comparison
from tueval.evaluation.tofu_aggregate import harmonic_mean
from tueval.spec import RunSpec

LR = 1e-3  # the base's learning rate on the small workdir: it forgets within the run without collapsing
EPOCHS = 3
METHOD = "ga/uniform-lr÷3"


def _utility_est(summary: dict) -> float:
    """The likelihood components of model utility (no ROUGE: snapshots are evaluated without generation)."""
    comps = [v for k, v in (summary.get("components") or {}).items() if "rouge" not in k.lower() and v is not None]
    return float(harmonic_mean(np.array(comps, dtype=float))) if comps else math.nan


def _row(step: int, summary: dict, final: bool = False) -> dict:
    return {"step": step, "final": final, "forget_quality": summary.get("forget_quality"),
            "forget_prob": summary.get("forget_prob"), "utility_est": _utility_est(summary)}


def _emulated_trajectory(wd, spec: RunSpec) -> tuple[pd.DataFrame, str]:
    """One run's checkpoints: the target model (step 0), every snapshot, the final model."""
    from tueval.evaluate import evaluate_in_memory, reference
    from tueval.unlearn import snapshot_model, unlearn

    res = unlearn(spec, wd, progress=False)
    rows = [_row(0, json.loads((wd.eval_dir("target") / "summary.json").read_text(encoding="utf-8")))]
    ref = reference(wd)
    _, tok = wd.load_model("target")
    steps = int(res.summary["steps"])
    for s in (s for s in spec.snapshot_steps if s < steps):
        _, summ = evaluate_in_memory(snapshot_model(wd, res, s), tok, wd, ref.forget, ref.mia_aucs, generate=False)
        rows.append(_row(s, summ))
    rows.append(_row(steps, res.summary, final=True))
    return pd.DataFrame(rows), res.run_id


def _trajectories(wd, seeds) -> pd.DataFrame:
    """Trajectories of the uniform base at LR and of the 'method' (the base at LR / 3), per seed."""
    frames = []
    for seed in seeds:
        for arm, lr in (("uniform", LR), ("method", LR / 3)):
            spec = RunSpec(objective="ga", scorer="uniform", mode="none", lr=lr, epochs=EPOCHS, seed=seed,
                           batch_size=16, generate=False, snapshot_steps=tuple(range(1, 64)))
            t, rid = _emulated_trajectory(wd, spec)
            frames.append(t.assign(objective="ga", method=METHOD, arm=arm, seed=seed, run_id=rid, lr=lr))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("seeds", [pytest.param((0, 1, 2), id="3seeds"),
                                   pytest.param(tuple(range(7)), id="7seeds", marks=pytest.mark.slow)])
def test_a_third_of_the_learning_rate_is_not_better_at_matched_forgetting(small_workdir, seeds):
    wd = small_workdir
    traj = _trajectories(wd, seeds)
    retain_fp = json.loads((wd.eval_dir("retain") / "summary.json").read_text(encoding="utf-8"))["forget_prob"]
    last = traj[traj["final"]].groupby("arm")[["forget_quality", "forget_prob", "utility_est"]].mean()
    # at one learning rate: better on utility, worse on forgetting
    gain = last.loc["method", "utility_est"] - last.loc["uniform", "utility_est"]
    assert gain > 0.02, last
    assert last.loc["method", "forget_quality"] < last.loc["uniform", "forget_quality"], last
    assert last.loc["method", "forget_prob"] > last.loc["uniform", "forget_prob"], last
    res = matched_comparison(traj, retain_fp, estimands=("fq", "fp"))
    d, v = res.diffs, res.verdicts.set_index("metric")
    # the base's trajectory passes through the method's final forget level on every seed
    assert (d["status"] == "ok").all(), d
    for metric in ("utility_at_matched_fq", "utility_at_matched_fp"):
        r = v.loc[metric]
        assert not r["better_unadjusted"] and r["decision"] != "better", r
        # matched forgetting removes most of the single-learning-rate utility gain
        assert abs(r["estimate"]) < 0.35 * gain, (metric, r["estimate"], gain)
    fl = final_levels(traj, keys=("arm",)).set_index("arm")["level"]
    assert fl["method"] > fl["uniform"]  # the smaller dose leaves more forget probability
