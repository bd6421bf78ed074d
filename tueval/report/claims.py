"""The index's trade-off sentences: per seed paper (and the oracle positive control), the utility it keeps at
equal forgetting against the uniform base, with its CI, adjusted p and seeds, and on how many model pairs it
holds (``reports/replication``, when that analysis ran)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..analysis.grid import BASE

#: matched-forgetting estimand -> how the sentence names the forget level held equal
ESTIMANDS = {"utility_at_matched_fq": "forget quality",
             "utility_at_matched_fp": "distance of the forget probability to the retain model's"}
KEYS = ["objective", "method", "control", "metric"]


def _read(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError, OSError):
        return None


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _pairs(row: dict, pooled: pd.DataFrame) -> str:
    """How the comparison fares over the model pairs of the replication analysis."""
    hit = pooled
    for k in KEYS:
        hit = hit[hit[k].astype(str) == str(row[k])]
    if hit.empty:
        return "not in the replication analysis"
    p = hit.iloc[0]
    return (f"better on {int(p['pairs_better'])}/{int(p['n_pairs'])} model pairs "
            f"(pooled over pairs: {p['decision']}, {_num(p['estimate']):+.3f} "
            f"[{_num(p['ci_low']):.3f}, {_num(p['ci_high']):.3f}], p_adj {_num(p['p_adjusted']):.3g})")


def phrase(row: dict, pooled: pd.DataFrame | None = None) -> str:
    """One estimand of one method against the base, in words."""
    level = ESTIMANDS.get(str(row["metric"]), str(row["metric"]))
    n, nb = int(row["n_seeds"]), int(_num(row.get("n_not_bracketed", 0)) or 0)
    if n and nb >= n:
        return (f"at equal {level}: not comparable (the base's runs never reach the method's forget level on any of "
                f"{n} seeds, counted against the method: {row['decision']})")
    est = _num(row["estimate"])
    more = "more" if est >= 0 else "less"
    nbt = f", {nb} not bracketed" if nb else ""
    pairs = f"; {_pairs(row, pooled)}" if pooled is not None else ""
    return (f"at equal {level} it keeps {abs(est):.3f} {more} utility than the uniform base "
            f"[{_num(row['ci_low']):.3f}, {_num(row['ci_high']):.3f}], p_adj {_num(row['p_adjusted']):.3g}, "
            f"{n} seeds{nbt}: **{row['decision']}**{why_not(row)}{pairs}")


def why_not(row: dict) -> str:
    """Why a comparison whose adjusted p is below alpha is still 'not better': an interval that reaches 0."""
    if row["decision"] != "not better" or not _num(row["p_adjusted"]) < _num(row.get("alpha", 0.05)):
        return ""
    lo, hi = _num(row.get("robust_ci_low")), _num(row.get("robust_ci_high"))
    if _num(row["ci_low"]) <= 0:
        return " (p_adj is below alpha, but the t-interval reaches 0)"
    if math.isfinite(lo) and lo <= 0:
        return f" (p_adj is below alpha, but the bootstrap-t interval [{lo:.3f}, {hi:.3f}] reaches 0)"
    return ""


def matched_claim_lines(reports: Path, papers: list[tuple[str, str]]) -> list[str]:
    """The index section: one bullet per (paper title, method-name key) that the controls verdicts hold against
    the uniform base at matched forgetting (none when the controls analysis wrote no matched verdicts)."""
    v = _read(Path(reports) / "controls" / "verdicts.csv")
    if v is None or "metric" not in v or not v["metric"].isin(list(ESTIMANDS)).any():
        return []
    pooled = _read(Path(reports) / "replication" / "pooled_verdicts.csv")
    v = v[(v["control"].astype(str) == BASE) & v["metric"].isin(list(ESTIMANDS))]
    out = []
    for title, key in papers:
        rows = v[v["method"].astype(str).str.contains(key, case=False, regex=False)]
        for method, g in rows.groupby("method", sort=False):
            parts = [phrase(r, pooled) for r in g.to_dict("records")]
            one = "" if pooled is not None else " One model pair: the replication analysis did not run."
            out.append(f"- **{title}** (`{method}`): " + "; ".join(parts) + "." + one)
    if not out:
        return []
    head = ("## At equal forgetting: each method against its sequence-level base\n\n"
            "The confirmatory trade-off claim (controls report): utility (`utility_est`) at the method's own final "
            "forget level, read on the uniform base's trajectory at the higher utility of the base's two "
            "checkpoints around that level (so 'keeps more' is what the checkpoints can guarantee, not an "
            "interpolation; one step apart where refinement runs ran: controls/refinements.csv), paired by seed; "
            "Holm within the method's family; "
            "the oracle hard selection (ground-truth fact tokens) is the positive control, which a selection claim "
            "that holds at all should pass.\n")
    return [head, *out, ""]
