"""What one round of refinement runs buys the matched-forgetting verdicts, and what it costs.

Usage: python benchmarks/refinement.py --workdir WORKDIR [--pairs 2]  -> benchmarks/refinement.md (+ .csv)

Reads the demo grid's runs and their refinement runs (analysis profile ``default``; computed by ``make demo``;
nothing is trained here: a missing refinement run is an error) on each model pair. Per pair: how many control runs
needed a refinement and how many checkpoint steps they added; per comparison the three readings of the control's
utility (upper: the verdict's; lower: favourable to the method; linear) and the verdict, on the grid's own
checkpoints (every 4 steps) and with the refinement rows merged in (one step)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

SYMBOL = {"better": "B", "not better": "-", "worse": "W"}


def readings(res, pair: int, what: str) -> pd.DataFrame:
    """Per comparison: the mean difference under each reading and the verdict."""
    d = res.diffs.groupby(["objective", "method", "control", "metric"], sort=False)
    t = d.agg(upper=("diff", "mean"), lower=("diff_favourable", "mean"), linear=("diff_interpolated", "mean"))
    v = res.verdicts.set_index(["objective", "method", "control", "metric"])["decision"]
    return t.join(v).reset_index().assign(pair=pair, checkpoints=what)


def main() -> None:
    from tueval.analysis.matched_tables import matched_comparison
    from tueval.analysis.refine import refine_trajectories, refinement_steps
    from tueval.report import markdown_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).with_name("refinement.md")))
    args = ap.parse_args()
    frames, counts = [], []
    for p, w, runs, traj, fp in _base.demo_pair_trajectories(args.workdir, args.pairs):
        need = refinement_steps(traj, fp)
        refined, _ = refine_trajectories(traj, w, fp, compute=False)
        counts.append({"pair": p, "grid runs": runs["run_id"].nunique(), "refined runs": len(need),
                       "checkpoint steps added": sum(len(s) for s in need.values())})
        frames += [readings(matched_comparison(traj, fp), p, "every 4 steps"),
                   readings(matched_comparison(refined, fp), p, "refined")]
    t = pd.concat(frames, ignore_index=True)
    t["metric"] = t["metric"].str.replace("utility_at_matched_", "")
    t.to_csv(Path(args.out).with_suffix(".csv"), index=False)
    cells = t.assign(cell=[f"{u:+.3f} / {lo:+.3f} / {li:+.3f} {SYMBOL.get(d, d)}" for u, lo, li, d in
                           zip(t["upper"], t["lower"], t["linear"], t["decision"])])
    wide = cells.pivot_table(index=["pair", "objective", "method", "control", "metric"], columns="checkpoints",
                             values="cell", aggfunc="first").reset_index()
    cmd = "python benchmarks/refinement.py " + " ".join(sys.argv[1:])
    text = (f"# Refinement runs and the matched-forgetting verdicts\n\nCommand: `{cmd}` (the demo grid's runs and "
            "their refinement runs, read from the run cache).\n\n## Refinement runs per pair\n\n"
            + markdown_table(pd.DataFrame(counts).astype({"pair": str})) + "\n\n## Readings\n\nEach cell: mean "
            "utility difference method - control over the 7 seeds with the control read at the **upper** end of "
            "its bracketing segment (the verdict's reading) / at the **lower** end / **linearly interpolated**, "
            "then the verdict (B better, - not better, W worse; Holm per objective and method). fq: log10 forget "
            "quality; fp: distance of the forget probability to the retain model's.\n\n"
            + markdown_table(wide.astype({"pair": str})) + "\n")
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
