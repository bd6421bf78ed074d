"""How many verdicts of ``reports/`` changed against a committed revision (e.g. after a regeneration on another
machine): per verdict table, the decisions that differ, matched on the comparison's keys.

Usage: python benchmarks/compare_verdicts.py [REV] [-v]   (REV: default HEAD; -v lists every changed row)"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

ROOT = _base.ROOT
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
        old, new = _base.committed_csv(rev, rel), pd.read_csv(path)
        if old is None:
            print(f"{rel}: not in {rev}")
            continue
        for d, rows in changed(old, new).items():
            print(f"{rel} [{d}]: {len(rows)} of {len(new)} changed")
            if len(rows) and "-v" in sys.argv:
                print(rows.to_string(index=False))


if __name__ == "__main__":
    main()
