"""Two report folders compared table by table: same files, decisions, and the largest numeric difference.

Usage: python benchmarks/compare_report_dirs.py NEW BASE   -> stdout (one line per CSV that differs)

Effect-size intervals are counted apart from every other number (benchmarks/dz_interval_reports.md: the old
inversion printed the normal approximation where it missed the root); strings and booleans must be equal."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

DECISIONS = ("decision", "holds_on_every_pair")
APART = ("effect_size_ci_low", "effect_size_ci_high")


def numeric(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def differing(x: pd.Series, y: pd.Series) -> int:
    """How many cells of two columns differ as text (missing equals missing)."""
    return int((x.astype(object).where(x.notna(), "<NA>").astype(str)
                != y.astype(object).where(y.notna(), "<NA>").astype(str)).sum())


def largest(x: pd.DataFrame, y: pd.DataFrame, cols: list[str]) -> tuple[float, float, str]:
    """The largest absolute and relative (to |x| > 1e-9) difference over ``cols``, and the column of the first."""
    if not cols:
        return 0.0, 0.0, ""
    a, b = x[cols].to_numpy(float), y[cols].to_numpy(float)
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
    d[(np.isnan(a) & np.isnan(b)) | (a == b)] = 0.0  # equal infinities too
    rel = np.where(np.abs(a) > 1e-9, d / np.maximum(np.abs(a), 1e-9), 0.0)
    return float(np.nanmax(d)), float(np.nanmax(rel)), cols[int(np.nanargmax(np.nanmax(d, axis=0)))]


def main() -> None:
    new, base = Path(sys.argv[1]), Path(sys.argv[2])
    fn = sorted(p.relative_to(new) for p in new.rglob("*.csv"))
    fb = sorted(p.relative_to(base) for p in base.rglob("*.csv"))
    print(f"CSV files: {len(fn)} (new) and {len(fb)} (base), same names: {fn == fb}")
    n_dec = n_changed = 0
    worst = (0.0, 0.0, "")
    for rel in (p for p in fn if p in fb):
        x, y = pd.read_csv(new / rel), pd.read_csv(base / rel)
        if x.shape != y.shape or list(x.columns) != list(y.columns):
            print(f"{rel}: shape or columns differ: {x.shape} vs {y.shape}")
            continue
        num = numeric(x)
        other = [c for c in x.columns if c not in num and c != "workdir"]
        text = [c for c in other if differing(x[c], y[c])]
        dec = sum(differing(x[c], y[c]) for c in DECISIONS if c in x)
        n_dec += sum(len(x) for c in DECISIONS if c in x)
        n_changed += dec
        vals = largest(x, y, [c for c in num if c not in APART])
        es = largest(x, y, [c for c in num if c in APART])
        worst = max(worst, vals)
        if vals[0] > 0 or es[0] > 0 or text or dec:
            print(f"{rel}: values max |diff| {vals[0]:.3g} ({vals[2]}; relative {vals[1]:.3g}); effect-size intervals "
                  f"{es[0]:.3g}; decisions changed {dec}; other columns differing {text or 'none'}")
    print(f"decisions: {n_changed} of {n_dec} changed; largest difference of any other value (effect-size intervals "
          f"apart): {worst[0]:.3g} absolute ({worst[2]}), {worst[1]:.3g} relative")


if __name__ == "__main__":
    main()
