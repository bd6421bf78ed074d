"""The matched-forgetting verdicts across every trained model pair that the committed reports have seen: each
regeneration on a new machine trained its own pairs (their models differ in the 4th decimal), so K regenerations
of the same grid give 2K trained pairs.

Usage: python benchmarks/verdict_stability.py [REV ...]   -> benchmarks/verdict_stability.md

REV: commits whose ``reports/`` were regenerated on a new machine with the same grid and verdict rule (default:
the three of 2026-12-03, 2026-12-04 and 2026-12-06; the code between them changed no decision on one machine,
benchmarks/same_demo.md, same_reports.md). Reads each commit's ``replication/verdicts_by_pair.csv``,
``replication/pooled_verdicts.csv`` and ``foundation/models.csv`` with ``git show``; nothing is computed again."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

OUT = Path(__file__).with_name("verdict_stability.md")
REVS = ("06913e9", "3f1a236", "af59bc7")
KEY = ["objective", "method", "metric", "control"]
LETTER = {"better": "B", "worse": "W", "not better": ".", "equivalent": "E"}


def _read(rev: str, rel: str) -> pd.DataFrame:
    """A committed CSV of ``reports/`` at ``rev``."""
    t = _base.committed_csv(rev, f"reports/{rel}")
    if t is None:
        raise SystemExit(f"reports/{rel} is not in {rev}")
    return t


def per_pair(revs: tuple[str, ...]) -> pd.DataFrame:
    """One row per comparison: its decision and estimate on every (rev, pair), and the counts over them."""
    dec, est = {}, {}
    for rev in revs:
        for pair, g in _read(rev, "replication/verdicts_by_pair.csv").groupby("pair"):
            g = g.set_index(KEY)
            dec[f"{rev} pair {pair}"], est[f"{rev} pair {pair}"] = g["decision"], g["estimate"]
    dec, est = pd.DataFrame(dec), pd.DataFrame(est)
    wide = dec.apply(lambda c: c.map(LETTER)) + " " + est.apply(lambda c: c.map(lambda x: f"{x:+.3f}"))
    k = f"/{len(dec.columns)}"
    wide["better"] = (dec == "better").sum(axis=1).astype(str) + k
    wide["worse"] = (dec == "worse").sum(axis=1).astype(str) + k
    wide["estimate > 0"] = (est > 0).sum(axis=1).astype(str) + k
    return wide.reset_index()


def pooled(revs: tuple[str, ...]) -> pd.DataFrame:
    """One row per comparison: the pooled decision and the holds-on-every-pair flag of every rev."""
    cols = []
    for rev in revs:
        t = _read(rev, "replication/pooled_verdicts.csv").set_index(KEY)
        cols.append(t["decision"].rename(f"{rev} pooled"))
        cols.append(t["holds_on_every_pair"].rename(f"{rev} holds on both"))
    return pd.concat(cols, axis=1).reset_index()


def main() -> None:
    from tueval.report import markdown_table

    revs = tuple(a for a in sys.argv[1:] if not a.startswith("-")) or REVS
    models = [f"`{r}`: target fact-token accuracy {_read(r, 'foundation/models.csv').iloc[0]['train_fact_acc']:.5f}"
              for r in revs]
    wide, pool = per_pair(revs), pooled(revs)
    n = len(wide.columns) - len(KEY) - 3
    stable = wide[wide["better"] == f"{n}/{n}"]
    one_sign = wide[wide["estimate > 0"].isin([f"{n}/{n}", f"0/{n}"])]
    OUT.write_text(
        "# Matched-forgetting verdicts over every trained model pair of the committed regenerations\n\n"
        f"Command: `python benchmarks/verdict_stability.py {' '.join(revs)}` (reads the committed reports; "
        f"{len(revs)} regenerations x 2 pairs = {n} trained pairs). Models: {'; '.join(models)}.\n\n"
        "Per pair: the decision (B better, W worse, . not better) and the estimate (method - control, utility at "
        "matched forgetting; `fq`: forget quality, `fp`: forget-probability distance to the retain model).\n\n"
        f"{markdown_table(wide)}\n\n## Pooled over the two pairs of each regeneration\n\n{markdown_table(pool)}\n\n"
        f"Better on all {n} trained pairs: {len(stable)} of {len(wide)} comparisons; the estimate of one sign on "
        f"all {n}: {len(one_sign)} of {len(wide)}.\n", encoding="utf-8")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
