"""How many verdicts of ``reports/`` changed against a committed revision (e.g. after a regeneration on another
machine): per verdict table, the decisions that differ, matched on the comparison's keys.

Usage: python benchmarks/compare_verdicts.py [REV] [-v]   (REV: default HEAD; -v lists every changed row)"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DECISIONS = ("decision", "holds_on_every_pair")
KEYS = ("pair", "objective", "method", "ground_truth", "scorer", "metric", "control", "operator", "k", "family")


def changed(old: pd.DataFrame, new: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per decision column both tables hold, the rows (matched on the shared keys) whose decision differs."""
    keys = [c for c in KEYS if c in old and c in new]
    m = old.merge(new, on=keys, how="inner", suffixes=("_old", "_new"))
    return {d: m[m[f"{d}_old"].astype(str) != m[f"{d}_new"].astype(str)]
            [keys + [f"{d}_old", f"{d}_new"] + [c for c in ("estimate_old", "estimate_new") if c in m]]
            for d in DECISIONS if d in old and d in new}


def main() -> None:
    rev = next((a for a in sys.argv[1:] if not a.startswith("-")), "HEAD")
    for path in sorted((ROOT / "reports").glob("*/*verdicts*.csv")):
        rel = path.relative_to(ROOT).as_posix()
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{rel}"], capture_output=True, text=True)
        if shown.returncode:
            print(f"{rel}: not in {rev}")
            continue
        old, new = pd.read_csv(io.StringIO(shown.stdout)), pd.read_csv(path)
        for d, rows in changed(old, new).items():
            print(f"{rel} [{d}]: {len(rows)} of {len(new)} changed")
            if len(rows) and "-v" in sys.argv:
                print(rows.to_string(index=False))


if __name__ == "__main__":
    main()
