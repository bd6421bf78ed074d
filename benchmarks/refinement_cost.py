"""Where a refinement run's time goes, and what stopping it early would save (a design measurement, no feature).

Usage: python benchmarks/refinement_cost.py --workdir WORKDIR  -> benchmarks/refinement_cost.md

WORKDIR is a prepared default workdir (``tueval prepare --workdir WORKDIR``). In one process, one thread, after a
warm-up run (the workdir's reference values are computed once): per case a run without checkpoints (training +
the full final evaluation), the refinement run as ``tueval.analysis.refine`` runs it (three refined steps and the
next grid checkpoint, training to the end, the full final evaluation), and the same run interrupted after that
grid checkpoint (``unlearn(stop_after=...)``: what a refinement that stops once it has re-checked one of the
run's own checkpoints would cost)."""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

CASES = [("tokenunlearn_hard", 4), ("tokenunlearn_hard", 16), ("tokenunlearn_hard", 28), ("etw", 16)]


def timed(fn) -> float:
    """Wall seconds of ``fn()``; an interruption ends the timing."""
    t = time.perf_counter()
    try:
        fn()
    except KeyboardInterrupt:
        pass
    return time.perf_counter() - t


def main() -> None:
    import pandas as pd
    import torch

    from tueval.report import markdown_table
    from tueval.spec import RunSpec
    from tueval.store import RunFolder
    from tueval.unlearn import run_id, unlearn
    from tueval.workdir import Workdir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--out", default=str(Path(__file__).with_name("refinement_cost.md")))
    a = ap.parse_args()
    torch.set_num_threads(1)
    wd = Workdir(a.workdir)
    unlearn(RunSpec(preset="tokenunlearn_hard", seed=0, max_new_tokens=64), wd, progress=False, force=True)
    rows = []
    for preset, lo in CASES:
        base = RunSpec(preset=preset, seed=0, max_new_tokens=64)
        spec = RunSpec(preset=preset, seed=0, max_new_tokens=64, eval_every=0, eval_steps=(lo + 1, lo + 2, lo + 3,
                                                                                           lo + 4))
        plain = timed(lambda: unlearn(base, wd, progress=False, force=True))
        cut = timed(lambda: unlearn(spec, wd, progress=False, force=True, stop_after=lo + 4))
        shutil.rmtree(RunFolder.of(wd.root, run_id(spec, wd)).path, ignore_errors=True)  # its checkpoint
        full = timed(lambda: unlearn(spec, wd, progress=False, force=True))
        steps = unlearn(spec, wd, progress=False).summary["steps"]
        rows.append({"preset": preset, "checkpoints after steps": f"{lo + 1}-{lo + 4} of {steps}",
                     "no checkpoints s": round(plain, 1), "refinement s": round(full, 1),
                     "stopped after step s": round(cut, 1), "stopped / refinement": round(cut / full, 2),
                     "4 checkpoints s (refinement - no checkpoints)": round(full - plain, 1)})
        print(rows[-1], flush=True)
    t = pd.DataFrame(rows)
    span = lambda c: f"{t[c].min():g}-{t[c].max():g}"  # noqa: E731
    Path(a.out).write_text(
        "# What a refinement run costs\n\n`python benchmarks/refinement_cost.py --workdir WORKDIR` (WORKDIR: a "
        f"prepared default workdir; here `{a.workdir}`)\n\n{markdown_table(t)}\n\nReading: four checkpoint "
        f"evaluations cost {span(t.columns[-1])} s, against {span('no checkpoints s')} s for the rest of the run "
        "(training and the full final evaluation). A refinement that stopped after re-checking its next grid "
        f"checkpoint would cost {span('stopped / refinement')} of today's refinement run; the checkpoint "
        "evaluation, not the training or the final evaluation, is the larger part of what is left. Not built: the "
        "stopped run has no final evaluation, so it is a different run in the store (its own hash field), and "
        "every refinement run of the committed reports would be recomputed under new ids.\n")


if __name__ == "__main__":
    main()
