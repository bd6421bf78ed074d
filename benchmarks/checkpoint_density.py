"""How the matched-forgetting verdicts depend on the spacing of the trajectory checkpoints.

Usage: python benchmarks/checkpoint_density.py --workdir WORKDIR [--pairs 2] [--every 4,8,12]
       -> benchmarks/checkpoint_density.md

Reads the demo grid's runs (analysis profile ``default``; the methods checked every 4 steps; computed by
``make demo`` or ``tueval analyze replication``; nothing is trained here) on each model pair, keeps every k-th
step's checkpoint (plus step 0 and the final one) for each k of ``--every``, and recomputes the matched
comparison on each: per (pair, method, control, estimand) the mean utility difference under the three readings
of the control's utility between its bracketing checkpoints (``upper``: the verdict's, against the method;
``lower``: favourable to the method; ``linear``: interpolated) and the verdict. Coarser spacings show what the
linear interpolation credits a method with when a control's utility falls steeply between checkpoints."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

READINGS = {"diff": "upper", "diff_favourable": "lower", "diff_interpolated": "linear"}
SYMBOL = {"better": "B", "not better": "-", "worse": "W"}


def subsample(traj: pd.DataFrame, every: int) -> pd.DataFrame:
    """The checkpoints at step 0, every ``every``-th step and the final one."""
    keep = traj["final"].astype(bool) | (traj["step"] % every == 0)
    return traj[keep].reset_index(drop=True)


def density_table(traj: pd.DataFrame, retain_forget_prob: float, every: list[int], alpha: float = 0.05
                  ) -> pd.DataFrame:
    """Per spacing and comparison: the mean difference under each reading, the verdict and the seeds not
    bracketed."""
    from tueval.analysis.matched_tables import matched_comparison

    rows = []
    for k in every:
        res = matched_comparison(subsample(traj, k), retain_forget_prob, alpha=alpha)
        v = res.verdicts.set_index(["objective", "method", "control", "metric"])
        means = res.diffs.groupby(["objective", "method", "control", "metric"])[list(READINGS)].mean()
        t = means.rename(columns=READINGS).join(v[["decision", "n_not_bracketed"]]).reset_index()
        rows.append(t.assign(every=k))
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    from tueval.report import markdown_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--every", default="4,8,12", help="checkpoint spacings in steps (multiples of the runs' own)")
    ap.add_argument("--objectives", default="", help="comma-separated objectives (default: the grid's)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("checkpoint_density.md")))
    args = ap.parse_args()
    every = [int(x) for x in args.every.split(",")]
    extra = {"objectives": args.objectives.split(",")} if args.objectives else {}
    frames = []
    for p, _, _, traj, fp in _base.demo_pair_trajectories(args.workdir, args.pairs, extra):
        # only the methods whose runs are checked at the finest spacing asked for
        fine = traj.groupby(["objective", "method"])["step"].transform(lambda x: bool((x == min(every)).any()))
        traj = traj[fine.astype(bool)].reset_index(drop=True)
        frames.append(density_table(traj, fp, every).assign(pair=p))
    t = pd.concat(frames, ignore_index=True)
    t["metric"] = t["metric"].str.replace("utility_at_matched_", "")
    t.to_csv(Path(args.out).with_suffix(".csv"), index=False)
    cells = t.assign(cell=lambda f: [f"{u:+.3f} / {lo:+.3f} / {li:+.3f} {SYMBOL.get(d, d)}" for u, lo, li, d in
                                     zip(f["upper"], f["lower"], f["linear"], f["decision"])])
    wide = cells.pivot_table(index=["pair", "objective", "method", "control", "metric"], columns="every",
                             values="cell", aggfunc="first")
    wide.columns = [f"every {c} steps" for c in wide.columns]
    cmd = "python benchmarks/checkpoint_density.py " + " ".join(sys.argv[1:])
    text = (f"# Matched-forgetting verdicts against the checkpoints' spacing\n\nCommand: `{cmd}` (the demo grid's "
            "runs, checked every 4 steps, subsampled). Each cell: mean utility difference method - control over "
            "the 7 seeds with the control read at the **upper** end of its bracketing segment (the verdict's "
            "reading) / at the **lower** end / **linearly interpolated**, then the verdict (B better, - not "
            "better, W worse; Holm per objective and method). fq: log10 forget quality; fp: distance of the forget "
            "probability to the retain model's.\n\n" + markdown_table(wide.reset_index().astype({"pair": str}))
            + "\n")
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
