"""What a cheaper checkpoint evaluation would cost in agreement: alternative plans (fewer forget or retain
examples) against the full evaluation, on the same checkpoints, side by side in one process.

Usage: python benchmarks/checkpoint_plans.py --workdir WORKDIR [--steps 13,26,39]   -> benchmarks/checkpoint_plans.md

The checkpoints of benchmarks/trajectory_eval.py (four runs, GA and NPO at two learning rates, seed 0, snapshots at
``--steps``, and the target model). Each checkpoint gets the full evaluation once and every plan's checkpoint
evaluation (``CheckpointPlan``: the first ``forget_n`` forget examples, the first ``retain_n`` retain examples),
each timed on one torch thread. A plan with fewer forget examples puts forget quality on another scale (the KS
test of fewer truth ratios), so its matched-forgetting estimate matches on that scale on both sides (the method's
final level read from the same subset, as ``checkpoint_metrics`` does on a full evaluation's tables). Reported per
plan: cost against the full evaluation, Spearman rho of its forget quality, forget probability and utility estimate
against the full evaluation's forget quality, forget probability and model utility, and the sign agreement and
rho of the matched-forgetting estimates of every ordered pair of runs against the full evaluation's."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402
from trajectory_eval import SPECS, _matched, setup, snapshot_points  # noqa: E402

from tueval.evaluate import evaluate_in_memory  # noqa: E402
from tueval.evaluation.checkpoint import PLAN, CheckpointPlan, evaluate_checkpoint  # noqa: E402

OUT = Path(__file__).resolve().parent / "checkpoint_plans.md"
PLANS = {"in use (all forget, 50 retain)": PLAN, "25 retain": CheckpointPlan(retain_n=25),
         "100 forget, 50 retain": CheckpointPlan(forget_n=100), "100 forget, 25 retain":
         CheckpointPlan(forget_n=100, retain_n=25), "50 forget, 25 retain": CheckpointPlan(forget_n=50, retain_n=25)}
PAIRS = (("forget_quality", "forget_quality"), ("forget_prob", "forget_prob"), ("utility_est", "model_utility"))


def _point(model, tok, wd, ref, sets) -> dict:
    """The full evaluation and every plan's checkpoint evaluation of one model, with their seconds."""
    t, full = _base.timed(lambda: evaluate_in_memory(model, tok, wd, ref.forget, ref.mia_aucs, generate=True))
    out = {"full": full[1], "full_s": t}
    for name, plan in PLANS.items():
        t, out[name] = _base.timed(lambda: evaluate_checkpoint(model, tok, sets, ref.forget, plan))
        out[name + " s"] = t
    return out


def main() -> None:
    a, wd, steps, ref, sets = setup(__doc__.splitlines()[0])
    warm, tok = wd.load_model("target")
    evaluate_checkpoint(warm, tok, sets, ref.forget)  # warm-up
    runs = snapshot_points(wd, steps, lambda m, tok: _point(m, tok, wd, ref, sets))
    zero = next(iter(runs.values()))[0]
    pts = [p for r in runs.values() for p in r[1:]] + [zero]
    full_s = np.array([p["full_s"] for p in pts])
    lines = ["# Cheaper checkpoint evaluations against the full evaluation\n",
             f"Command: `python benchmarks/checkpoint_plans.py --workdir {a.workdir} --steps {a.steps}` (workdir "
             f"forget split {wd.forget_split}: {len(sets['forget'])} forget and {len(sets['retain'])} retain "
             f"examples; one torch thread; runs {', '.join(SPECS)}, seed 0; {len(pts)} distinct checkpoints incl. "
             f"the target model; load average {_base.load_average()}).\n",
             "| plan | cost / full (total) | rho forget quality | rho forget prob | rho utility | matched sign "
             "agreement fq | rho fq estimates | matched sign agreement fp | rho fp estimates |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in PLANS:
        cost = np.array([p[name + " s"] for p in pts]).sum() / full_s.sum()
        rhos = [spearmanr([p[name][c] for p in pts], [p["full"][f] for p in pts]).statistic for c, f in PAIRS]
        matched = []
        for fk in ("forget_quality", "forget_prob"):
            est, full = [], []
            for (_, ra), (_, rb) in itertools.permutations(runs.items(), 2):
                est.append(_matched(ra, rb[-1][name][fk], name, fk, "utility_est") - rb[-1][name]["utility_est"])
                full.append(_matched(ra, rb[-1]["full"][fk], "full", fk, "model_utility")
                            - rb[-1]["full"]["model_utility"])
            matched += [np.mean(np.sign(est) == np.sign(full)), spearmanr(est, full).statistic]
        lines.append(f"| {name} | {cost:.3f} | " + " | ".join(f"{x:.3f}" for x in rhos + matched) + " |")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
