"""The checkpoint evaluation of trajectories against the full evaluation: rank agreement and cost.

Usage: python benchmarks/trajectory_eval.py --workdir WORKDIR [--steps 13,26,39]   -> benchmarks/trajectory_eval.md

Four runs (GA at its default lr and at a third of it, NPO likewise; seed 0) save snapshots at ``--steps``; every
snapshot and the target model (step 0) get the full evaluation (``evaluate_in_memory``: every set, MIA,
generation) and the checkpoint evaluation (``tueval.evaluation.checkpoint``), each timed on one torch thread.
Reported: Spearman rho over all checkpoints of each checkpoint metric against its full-evaluation counterpart
(utility_est vs model_utility), and the matched-forgetting estimate of every ordered pair of runs (run A's utility
interpolated along its trajectory at run B's final forget level, minus B's final utility) computed from either
evaluation: sign agreement and Spearman rho of the estimates."""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from tueval.evaluate import eval_sets, evaluate_in_memory, reference
from tueval.evaluation.checkpoint import PLAN, evaluate_checkpoint
from tueval.spec import RunSpec
from tueval.unlearn import snapshot_model, unlearn
from tueval.workdir import Workdir

OUT = Path(__file__).resolve().parent / "trajectory_eval.md"
PAIRS = (("forget_quality", "forget_quality"), ("forget_prob", "forget_prob"),
         ("forget_truth_ratio", "forget_truth_ratio"), ("utility_est", "model_utility"))


def _point(model, tok, wd, ref, sets) -> dict:
    t0 = time.perf_counter()
    _, full = evaluate_in_memory(model, tok, wd, ref.forget, ref.mia_aucs, generate=True)
    t1 = time.perf_counter()
    cp = evaluate_checkpoint(model, tok, sets, ref.forget)
    t2 = time.perf_counter()
    return {"full": full, "cp": cp, "full_s": t1 - t0, "cp_s": t2 - t1}


SPECS = {"ga lr 1.5e-4": RunSpec(objective="ga", lr=1.5e-4), "ga lr 5e-5": RunSpec(objective="ga", lr=5e-5),
         "npo lr 1e-3": RunSpec(objective="npo", lr=1e-3), "npo lr 3.3e-4": RunSpec(objective="npo", lr=3.3e-4)}


def snapshot_points(wd: Workdir, steps: tuple[int, ...], point) -> dict[str, list[dict]]:
    """Per run of ``SPECS`` (seed 0, snapshots at ``steps``, trained once per workdir): ``point(model, tokenizer)``
    of the target model, then of each snapshot."""
    model, tok = wd.load_model("target")
    zero = point(model.eval(), tok)
    out = {}
    for name, spec in SPECS.items():
        res = unlearn(RunSpec(**{**spec.to_dict(), "snapshot_steps": steps, "generate": False}), wd, progress=False)
        out[name] = [zero] + [point(snapshot_model(wd, res, s), tok) for s in steps]
    return out


def _matched(curve: list[dict], level: float, src: str, forget_key: str, util_key: str) -> float:
    """Utility of a trajectory interpolated at forget level ``level`` (clamped to its ends)."""
    x = np.array([c[src][forget_key] for c in curve])
    y = np.array([c[src][util_key] for c in curve])
    order = np.argsort(x)
    return float(np.interp(level, x[order], y[order]))


def setup(description: str):
    """Parse ``--workdir`` and ``--steps``, one torch thread: (args, workdir, steps, reference, evaluation sets)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--steps", default="13,26,39")
    args = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(args.workdir)
    return args, wd, tuple(int(s) for s in args.steps.split(",")), reference(wd), eval_sets(wd)


def main() -> None:
    args, wd, steps, ref, sets = setup(__doc__.splitlines()[0])
    runs = snapshot_points(wd, steps, lambda m, tok: _point(m, tok, wd, ref, sets))
    zero = next(iter(runs.values()))[0]
    pts = [p for r in runs.values() for p in r[1:]] + [zero]
    lines = ["# Checkpoint evaluation vs full evaluation\n",
             f"Command: `python benchmarks/trajectory_eval.py --workdir {args.workdir} --steps "
             f"{args.steps}` (workdir forget split {wd.forget_split}: {len(sets['forget'])} forget examples; "
             f"plan {PLAN.to_dict()}; one torch thread; runs {', '.join(SPECS)}, seed 0; "
             f"{len(pts)} distinct checkpoints incl. the target model).\n",
             "## Rank agreement over all checkpoints\n", "| checkpoint metric | full-evaluation metric | Spearman rho |",
             "|---|---|---:|"]
    for a, b in PAIRS:
        rho = spearmanr([p["cp"][a] for p in pts], [p["full"][b] for p in pts]).statistic
        lines.append(f"| {a} | {b} | {rho:.3f} |")
    for fk in ("forget_prob", "forget_quality"):
        est, full = [], []
        for (na, ra), (nb, rb) in itertools.permutations(runs.items(), 2):
            est.append(_matched(ra, rb[-1]["cp"][fk], "cp", fk, "utility_est") - rb[-1]["cp"]["utility_est"])
            full.append(_matched(ra, rb[-1]["full"][fk], "full", fk, "model_utility") - rb[-1]["full"]["model_utility"])
        agree = np.mean(np.sign(est) == np.sign(full))
        lines.append(f"\nMatched forgetting at {fk} ({len(est)} ordered run pairs): sign agreement {agree:.2f}, "
                     f"Spearman rho of the estimates {spearmanr(est, full).statistic:.3f}.")
    full_s, cp_s = np.array([p["full_s"] for p in pts]), np.array([p["cp_s"] for p in pts])
    lines += ["\n## Cost\n", "| | median s per checkpoint | total s |", "|---|---:|---:|",
              f"| full evaluation (generation up to 200 tokens, MIA) | {np.median(full_s):.2f} | {full_s.sum():.1f} |",
              f"| checkpoint evaluation | {np.median(cp_s):.2f} | {cp_s.sum():.1f} |",
              f"\nCost ratio checkpoint / full: median {np.median(cp_s / full_s):.3f}, total "
              f"{cp_s.sum() / full_s.sum():.3f}.\n",
              "## Per checkpoint\n", "| run | step | forget_quality | forget_prob | utility_est | model_utility | "
              "full s | checkpoint s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        for s, p in zip((0,) + steps, r):
            lines.append(f"| {name} | {s} | {p['cp']['forget_quality']:.3g} | {p['cp']['forget_prob']:.3f} | "
                         f"{p['cp']['utility_est']:.3f} | {p['full']['model_utility']:.3f} | {p['full_s']:.2f} | "
                         f"{p['cp_s']:.2f} |")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
