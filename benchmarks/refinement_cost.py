"""Where a refinement run's time goes, and what stopping it once it has re-checked its next checkpoint saves.

Usage: python benchmarks/refinement_cost.py --workdir WORKDIR  -> benchmarks/refinement_cost.md

WORKDIR is a prepared default workdir (``tueval prepare --workdir WORKDIR``). In one process, one thread, after a
warm-up run (the workdir's reference values are computed once): per case a run without checkpoints (training +
the full final evaluation), a refinement run that runs to the end (three refined steps and the next grid
checkpoint, training to the end, the full final evaluation: the refinement before ``RunSpec.stop_step``), and the
refinement run as ``tueval.analysis.refine.refinement_spec`` builds it now (the same checkpoints, stopped after
the grid checkpoint, no final evaluation). The two refinements' rows are compared (they must be equal)."""
from __future__ import annotations

import argparse
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
    import numpy as np
    import pandas as pd
    import torch

    from tueval.analysis.refine import CHECKED, refinement_spec
    from tueval.trajectory import load_trajectory
    from tueval.report import markdown_table
    from tueval.spec import RunSpec
    from tueval.unlearn import unlearn
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
        spec = refinement_spec(base, (lo + 1, lo + 2, lo + 3, lo + 4))
        stopped = refinement_spec(base, (lo + 1, lo + 2, lo + 3), lo + 4)
        assert spec.eval_steps == stopped.eval_steps and stopped.stop_step == lo + 4
        plain = timed(lambda: unlearn(base, wd, progress=False, force=True))
        full = timed(lambda: unlearn(spec, wd, progress=False, force=True))
        cut = timed(lambda: unlearn(stopped, wd, progress=False, force=True))
        t_end, t_stop = (load_trajectory(unlearn(s, wd, progress=False).path) for s in (spec, stopped))
        t_end = t_end[~t_end["final"].astype(bool)]
        same = t_end["step"].tolist() == t_stop["step"].tolist() and np.array_equal(
            t_end[list(CHECKED)].to_numpy(float), t_stop[list(CHECKED)].to_numpy(float))
        steps = unlearn(spec, wd, progress=False).summary["steps"]
        rows.append({"preset": preset, "checkpoints after steps": f"{lo + 1}-{lo + 4} of {steps}",
                     "no checkpoints s": round(plain, 1), "refinement to the end s": round(full, 1),
                     "stopped refinement s": round(cut, 1), "stopped / to the end": round(cut / full, 2),
                     "rows equal": same,
                     "4 checkpoints s (to the end - no checkpoints)": round(full - plain, 1)})
        print(rows[-1], flush=True)
    t = pd.DataFrame(rows)
    span = lambda c: f"{t[c].min():g}-{t[c].max():g}"  # noqa: E731
    Path(a.out).write_text(
        "# What a refinement run costs\n\n`python benchmarks/refinement_cost.py --workdir WORKDIR` (WORKDIR: a "
        f"prepared default workdir; here `{a.workdir}`)\n\n{markdown_table(t)}\n\nReading: four checkpoint "
        f"evaluations cost {span(t.columns[-1])} s, against {span('no checkpoints s')} s for the rest of the run "
        "(training and the full final evaluation). The refinement that stops after re-checking its next grid "
        f"checkpoint (`stop_step`) costs {span('stopped / to the end')} of one that runs to the end, with the "
        f"same checkpoint rows in {int(t['rows equal'].sum())} of {len(t)} cases (the four checked columns, "
        "bit for bit); the checkpoint evaluations are the larger part of what is left.\n")


if __name__ == "__main__":
    main()
