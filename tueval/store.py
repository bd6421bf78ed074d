"""The results store: finished unlearning runs in WORKDIR/runs/<spec-hash>/ read back as tidy tables."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .workdir import Workdir

DONE = "done.json"


def run_dirs(wd: Workdir) -> list[Path]:
    """Folders of finished runs (those with ``done.json``), sorted."""
    root = wd.root / "runs"
    return sorted(p.parent for p in root.glob(f"*/{DONE}")) if root.exists() else []


def _flatten(prefix: str, d: dict) -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(key + ".", v))
        else:
            out[key] = v
    return out


def runs_table(wd: Workdir) -> pd.DataFrame:
    """One row per finished run: its spec fields and its summary metrics (wide)."""
    rows = []
    for d in run_dirs(wd):
        spec = json.loads((d / "spec.json").read_text())["spec"]
        summ = json.loads((d / "summary.json").read_text())
        row = {"run_id": d.name, **{k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
                                     for k, v in spec.items()}}
        row.update({k: v for k, v in _flatten("", summ).items() if not isinstance(v, list)})
        rows.append(row)
    return pd.DataFrame(rows)


def long_metrics(wd: Workdir) -> pd.DataFrame:
    """One row per (run, metric) from the run summaries: the tidy form used by analyses."""
    df = runs_table(wd)
    if df.empty:
        return df
    spec_cols = [c for c in df.columns if not _is_metric(c)]
    return df.melt(id_vars=spec_cols, var_name="metric", value_name="value").dropna(subset=["value"])


def _is_metric(col: str) -> bool:
    return col.startswith(("forget_", "model_utility", "components.", "mia", "retain_", "privleak", "lmeval.",
                           "train.", "steps", "wall_s"))


def example_rows(wd: Workdir, run_ids: list[str] | None = None, table: str = "forget") -> pd.DataFrame:
    """Per-example evaluation rows of the given runs (one Parquet per evaluated set), with ``run_id``."""
    frames = []
    for d in run_dirs(wd):
        if run_ids is not None and d.name not in run_ids:
            continue
        p = d / "eval" / f"{table}.parquet"
        if p.exists():
            f = pd.read_parquet(p)
            f.insert(0, "run_id", d.name)
            frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
