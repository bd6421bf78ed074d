"""The tidy results table of finished unlearning runs: one row per run (labels, settings, run id and every
run-level metric of the catalogue, distances to the retain model included), its long form (one row per run and
metric), and the step that runs (or reads) the runs of a grid and tabulates them."""
from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from ..errors import SpecError
from ..metrics.catalogue import family, run_metrics
from .grid import Cell, spec_key, unique_specs
from .registry import AnalysisConfig


def retain_reference(wd) -> dict | None:
    """The retain model's cached evaluation summary in workdir ``wd`` (``eval/retain/summary.json``, written
    before any unlearning run trains), or None when it is missing or unreadable: the reference of the distances
    to the retain model."""
    try:
        d = json.loads((wd.eval_dir("retain") / "summary.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return d if isinstance(d, dict) else None


def collect_runs(cells: Sequence[Cell], results: Sequence, extra_cols: dict | None = None,
                 reference: dict | None = None) -> pd.DataFrame:
    """One row per cell: its labels, lr, ratio, run id and metrics (``results[i]`` is the RunResult of the i-th
    distinct spec, as returned by ``require_runs(unique_specs(cells), ...)``; ``reference``: the retain model's
    evaluation summary, for the distances to the retain model)."""
    by_spec = {spec_key(s): r for s, r in zip(unique_specs(cells), results)}
    rows = []
    for c in cells:
        r = by_spec[spec_key(c.spec)]
        rows.append({"objective": c.objective, "method": c.method, "arm": c.arm, "seed": c.seed, "role": c.role,
                     "setting": c.setting, "lr": c.spec.lr, "ratio": c.spec.ratio if c.spec.mode == "hard" else None,
                     "run_id": r.run_id, "label": c.spec.label(), **(extra_cols or {}),
                     **run_metrics(r.summary, reference)})
    return pd.DataFrame(rows)


def lmeval_columns(runs: pd.DataFrame) -> list[str]:
    """The lm-eval accuracy columns of ``runs`` that hold at least one value (none for runs without lm-eval)."""
    return [c for c in runs.columns if c.startswith("lmeval_") and runs[c].notna().any()]


def long_table(runs: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy long form of ``runs``: one row per (run, metric)."""
    catalogue = family("run")
    tab = [k for k, m in catalogue.items() if m.tabulated]
    raw = [k for k, m in catalogue.items() if not m.tabulated]
    lm = [c for c in runs.columns if c.startswith("lmeval_")]
    metrics = [m for m in dict.fromkeys(metrics or [*tab, *lm, *raw]) if m in runs.columns]
    ids = [c for c in runs.columns if c not in metrics and c not in catalogue and c not in lm]
    return runs.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")


def gather(cfg: AnalysisConfig, cells: list[Cell]) -> pd.DataFrame:
    """Finished (or computed) runs of ``cells`` as the tidy runs table."""
    from ..sweep import require_runs

    if len(set(cfg.seeds)) < 2:
        raise SpecError(f"paired comparisons need at least 2 seeds, got {list(cfg.seeds)}")
    results = require_runs(unique_specs(cells), cfg.workdir, compute=cfg.compute, workers=cfg.workers,
                           progress=cfg.progress)
    return collect_runs(cells, results, reference=retain_reference(cfg.workdir))


def runs_by_selection(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` of a selection grid (``grid.selection_cells``) with the scorer and q columns added."""
    r = runs.copy()
    r["scorer"] = r["method"].str.split("/", n=1).str[1].str.rsplit("-hard", n=1).str[0]
    r["q"] = r["ratio"].astype(float)
    return r


def method_runs(cfg: AnalysisConfig, scorer: str, mode: str, ratio: float | None, controls: Sequence[str],
                objective: str) -> pd.DataFrame:
    """The tidy runs table of ONE method (scorer, mode, ratio) and its ``controls`` (weighting controls and/or the
    uniform base) on one objective, at ``cfg.extra['fixed']`` or ``defaults.SHARED``; runs (or reads) them."""
    from .. import defaults
    from .grid import grid_cells

    m = {"scorer": scorer, "mode": mode, **({"ratio": ratio} if mode == "hard" and ratio is not None else {})}
    fixed = dict((cfg.extra or {}).get("fixed", defaults.SHARED))
    return gather(cfg, grid_cells([objective], [m], list(controls), cfg.seeds, fixed))
