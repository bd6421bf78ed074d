"""Cost of one checkpoint evaluation against one full evaluation, side by side in one process, and the part the
greedy-token accuracies take: the checkpoint evaluation without them (the default) and with them (the path before,
``accuracy=True``), interleaved, with every checkpoint metric checked equal between the two.

With ``--recheck``, the first cached run per objective that checks its trajectory every 4 steps is trained again
with this checkout's code up to step 8 (a refinement run with checkpoints at steps 5, 6 and 8, forced, one thread),
and its step-8 checkpoint metrics are compared with the cached run's, which the code before computed.

Usage: python benchmarks/checkpoint_cost.py --workdir WORKDIR [--repeats 5] [--models target,retain]
[--recheck ga,graddiff,tpo] (one torch thread; the full evaluation generates at the run default of new tokens)."""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from tueval.evaluate import eval_sets, evaluate_in_memory, reference
from tueval.evaluation import checkpoint as ck
from tueval.evaluation.likelihood import SetJob, score_sets
from tueval.evaluation.tofu import fields_for, set_table
from tueval.forward import eval_mode
from tueval.workdir import Workdir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402


def _with_accuracy(model, tok, sets, ref_forget) -> dict:
    """The checkpoint metrics computed with the greedy-token accuracies, as the evaluation did before."""
    chosen = ck.PLAN.select(sets)
    with eval_mode(model):
        scores = score_sets(model, tok, {k: SetJob(v, fields_for(k)) for k, v in chosen.items()}, 256,
                            accuracy=True)
    tables = {k: set_table(v, k, scores[k], None) for k, v in chosen.items()}
    return ck.checkpoint_metrics(tables, ref_forget)


def recheck(wd: Workdir, objectives: list[str]) -> list[tuple[str, str, bool]]:
    """(objective, run id, every step-8 checkpoint metric equal) for the first cached run of each objective."""
    from tueval.analysis.refine import refinement_spec
    from tueval.evaluation.checkpoint import METRICS
    from tueval.trajectory import load_trajectory
    from tueval.unlearn import load_run, unlearn

    out = []
    for obj in objectives:
        for d in sorted(wd.root.joinpath("runs").iterdir()):
            if not (d / "done.json").exists():
                continue
            run = load_run(wd, d.name)
            if run.spec.objective == obj and run.spec.eval_every == 4 and not run.spec.eval_steps:
                new = unlearn(refinement_spec(run.spec, (5, 6), stop=8), wd, progress=False, force=True)
                a = load_trajectory(run.path, wd).set_index("step").loc[8, list(METRICS)]
                b = load_trajectory(new.path, wd).set_index("step").loc[8, list(METRICS)]
                out.append((obj, d.name, all(repr(float(x)) == repr(float(y)) for x, y in zip(a, b))))
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="target,retain")
    ap.add_argument("--recheck", default="", help="objectives whose first cached run is re-trained to step 8")
    a = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(a.workdir)
    sets, ref = eval_sets(wd), reference(wd)
    rc = f" --recheck {a.recheck}" if a.recheck else ""
    print(f"# Checkpoint evaluation vs full evaluation\n\nCommand: `python benchmarks/checkpoint_cost.py "
          f"--workdir {a.workdir} --repeats {a.repeats} --models {a.models}{rc}` (one torch thread; medians of "
          f"{a.repeats} interleaved repeats after a warm-up call).\n")
    print("| model | full s | checkpoint s (with accuracies) | checkpoint s | checkpoint / full (with) | "
          "checkpoint / full | metrics equal |\n|---|---:|---:|---:|---:|---:|---|")
    for name in a.models.split(","):
        model, tok = wd.load_model(name)
        new = ck.evaluate_checkpoint(model, tok, sets, ref.forget)
        old = _with_accuracy(model, tok, sets, ref.forget)
        same = new.keys() == old.keys() and all(repr(new[k]) == repr(old[k]) for k in new)
        evaluate_in_memory(model, tok, wd, ref.forget, ref.mia_aucs, generate=True)  # warm-up
        t = {"full": [], "old": [], "new": []}
        for _ in range(a.repeats):
            t["full"].append(_base.timed(lambda: evaluate_in_memory(model, tok, wd, ref.forget, ref.mia_aucs,
                                                               generate=True))[0])
            t["old"].append(_base.timed(lambda: _with_accuracy(model, tok, sets, ref.forget))[0])
            t["new"].append(_base.timed(lambda: ck.evaluate_checkpoint(model, tok, sets, ref.forget))[0])
        f, o, n = (statistics.median(t[k]) for k in ("full", "old", "new"))
        print(f"| {name} | {f:.3f} | {o:.3f} | {n:.3f} | {o / f:.3f} | {n / f:.3f} | {same} |")
    if a.recheck:
        print("\n| objective | cached run | step-8 checkpoint metrics equal |\n|---|---|---|")
        for obj, rid, same in recheck(wd, a.recheck.split(",")):
            print(f"| {obj} | {rid} | {same} |")


if __name__ == "__main__":
    main()
