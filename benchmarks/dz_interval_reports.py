"""Which effect-size intervals of the committed reports/ the current code would print differently.

Usage: python benchmarks/dz_interval_reports.py [REPORTS]   (default: reports/)   -> stdout

Cohen's d_z interval (``tueval.stats.dz_interval``) depends on the data only through d_z and the number of
seeds, so every row of a report table that holds ``effect_size``, ``n_seeds`` and the interval can be recomputed
exactly from the table itself: rows whose stored interval differs from today's (relative 1e-6) are listed. The
pooled verdicts' effect size (``tueval.stats.stratified``: pooled within-pair SD, Welch degrees of freedom) goes
through the same inversion but cannot be recomputed from its table alone: it is named and skipped."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tueval.stats import dz_interval

ROOT = Path(__file__).resolve().parents[1]
POOLED = ("replication/pooled_verdicts.csv",)


def data_with(dz: float, n: int) -> np.ndarray:
    """``n`` values whose d_z is ``dz`` (unit sample sd around mean ``dz``)."""
    x = np.linspace(-1.0, 1.0, n)
    return dz + (x - x.mean()) / x.std(ddof=1)


def main() -> None:
    reports = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "reports"
    rows, changed = 0, []
    for path in sorted(reports.rglob("*.csv")):
        if path.relative_to(reports).as_posix() in POOLED:
            print(f"{path.relative_to(reports)}: skipped (stratified effect size, not d_z)")
            continue
        df = pd.read_csv(path)
        if not {"effect_size", "n_seeds", "effect_size_ci_low", "effect_size_ci_high"} <= set(df.columns):
            continue
        for i, r in df.iterrows():
            if not (np.isfinite(r.effect_size) and np.isfinite(r.n_seeds)) or r.n_seeds < 2:
                continue
            rows += 1
            lo, hi = dz_interval(data_with(r.effect_size, int(r.n_seeds)))
            tol = 1e-6 * max(1.0, abs(r.effect_size))
            if abs(lo - r.effect_size_ci_low) > tol or abs(hi - r.effect_size_ci_high) > tol:
                changed.append((path.relative_to(reports), i, r.effect_size, int(r.n_seeds),
                                (r.effect_size_ci_low, r.effect_size_ci_high), (lo, hi)))
    print(f"{reports}: {rows} rows with an effect-size interval, {len(changed)} printed differently today")
    print("| table | row | d_z | seeds | stored interval | today's interval |\n|---|---:|---:|---:|---|---|")
    for path, i, dz, n, old, new in changed:
        print(f"| {path} | {i} | {dz:.3f} | {n} | [{old[0]:.3f}, {old[1]:.3f}] | [{new[0]:.3f}, {new[1]:.3f}] |")


if __name__ == "__main__":
    main()
