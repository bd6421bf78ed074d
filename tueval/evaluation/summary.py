"""One summary dict of TOFU aggregates, shared by ``evaluate --json`` and ``tofu-stats --json``."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .tofu_bootstrap import bootstrap_cis
from .tofu_aggregate import (COMPONENTS, UTILITY_SETS, forget_aggregates, ks_test, model_utility, truth_ratios,
                             utility_components)

SUMMARY_KEYS = ("forget_quality", "model_utility", "components", "forget_truth_ratio", "forget_prob",
                "forget_rougeL", "ci")
AGGREGATED_FIELDS = ("avg_gt_loss", "avg_paraphrased_loss", "average_perturb_loss", "rougeL_recall")
"""The per-example fields the aggregates read (a missing value there makes its aggregates null)."""
SHOWN_IDS = 5


def _num(x: Any) -> float | None:
    """A plain float, or None for missing/non-finite values (keeps the JSON strict)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def summarise(
    tables: Mapping[str, pd.DataFrame], retain_forget_table: pd.DataFrame | None = None,
    mia: Mapping[str, Any] | None = None, n_boot: int = 0, seed: int = 0, ci: float = 0.95,
) -> dict[str, Any]:
    """TOFU summary: forget quality, model utility, its 9 components, forget aggregates, optional MIA and CIs.

    ``tables`` maps set names (``retain``, ``forget``, ``real_authors``, ``world_facts``) to per-example tables;
    ``retain_forget_table`` is the retain model's table on the same forget split (needed for forget quality).
    Non-finite values become None.
    """
    notes: list[str] = value_notes(tables, "")
    if retain_forget_table is not None:
        notes += value_notes({"forget": retain_forget_table}, "retain model's ")
    comps = utility_components(tables)
    missing = [s for s in UTILITY_SETS if s not in tables]
    if missing:
        notes.append(f"model utility uses {len(comps)} of {len(COMPONENTS)} components: "
                     f"missing set(s) {', '.join(missing)}")
    out: dict[str, Any] = {
        "forget_quality": None, "forget_ks_statistic": None,
        "model_utility": _num(model_utility(comps)) if comps else None,
        "components": {k: _num(v) for k, v in comps.items()},
        "forget_truth_ratio": None, "forget_prob": None, "forget_rougeL": None,
    }
    forget = tables.get("forget")
    if forget is not None:
        out.update({k: _num(v) for k, v in forget_aggregates(forget).items()})
        if retain_forget_table is not None:
            res = ks_test(forget, retain_forget_table)
            out["forget_quality"], out["forget_ks_statistic"] = _num(res.pvalue), _num(res.statistic)
            if len(forget) != len(retain_forget_table):
                notes.append(f"forget sets differ in size ({len(forget)} vs {len(retain_forget_table)} examples): "
                             "are both logs on the same forget split?")
            elif ("example_id" in forget and "example_id" in retain_forget_table
                  and set(forget["example_id"]) != set(retain_forget_table["example_id"])):
                notes.append("forget sets hold different example ids: are both logs on the same forget split?")
        else:
            notes.append("no retain-model forget log: forget quality not computed")
    else:
        notes.append("no forget set: forget quality and forget aggregates not computed")
    cis = bootstrap_cis(tables, retain_forget_table if forget is not None else None, n_boot, seed, ci)
    out["ci"] = {k: [_num(v[0]), _num(v[1])] for k, v in cis.items()}
    out["ci_level"] = ci
    out["n_boot"] = int(n_boot)
    out["n_examples"] = {s: int(len(df)) for s, df in tables.items()}
    out["mia"] = dict(mia) if mia is not None else None
    out["notes"] = notes
    return out


def _ids(df: pd.DataFrame, rows: np.ndarray) -> str:
    """The first example ids of ``rows`` (a boolean mask), quoted, with a count of the rest."""
    ids = (df["example_id"] if "example_id" in df else pd.Series(range(len(df)))).astype(str)[rows].tolist()
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(f"'{i}'" for i in ids[:SHOWN_IDS]) + more


def value_notes(tables: Mapping[str, pd.DataFrame], owner: str = "") -> list[str]:
    """One note per set and field with missing values (null/NaN), naming the rows; and one per set whose truth
    ratio overflows (losses so far apart that exp(.) leaves the float range)."""
    notes = []
    for name, df in tables.items():
        for f in AGGREGATED_FIELDS:
            if f not in df or not len(df):
                continue
            vals = np.asarray(df[f].tolist(), dtype=float).reshape(len(df), -1)
            missing = np.isnan(vals).any(axis=1)
            if missing.all():
                why = ", as in an evaluation without generation" if f == "rougeL_recall" else ""
                notes.append(f"{owner}{name}/{f}: no values (all {len(df)} null{why}); the aggregates that read "
                             "this field are null")
            elif missing.any():
                notes.append(f"{owner}{name}/{f}: {int(missing.sum())} of {len(df)} values are null or NaN (rows "
                             f"{_ids(df, missing)}); the aggregates that read this field are null")
        if {"avg_paraphrased_loss", "average_perturb_loss"} <= set(df.columns) and len(df):
            with np.errstate(over="ignore", invalid="ignore"):
                tr = truth_ratios(df)
            over = np.isinf(tr) | (tr == 0)
            if over.any():
                notes.append(f"{owner}{name}: the truth ratio exp(avg_paraphrased_loss - mean "
                             f"average_perturb_loss) overflows for {int(over.sum())} rows ({_ids(df, over)}); "
                             "they count as a ratio of inf or 0")
    return notes
