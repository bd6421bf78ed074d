"""WMDP's metrics on a workdir of the ``wmdp`` source: lm-eval multiple-choice accuracy on the forget-knowledge
tasks (lower after unlearning; chance = 1 / choices) and on the MMLU-style utility tasks (should stay).

Each question file becomes an offline lm-eval task (``W/lmeval/tasks``): four-choice files in the official
WMDP/MMLU prompt (choices listed, the model picks a letter), others as cloze (each choice scored after
``Question: ...\\nAnswer:``); the benchmark's ``style`` setting forces one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def task_style(rows: list, style: str = "auto") -> str:
    """The prompt style of a task: ``letters`` for four-choice rows under ``auto``, else ``cloze``."""
    if style != "auto":
        return style
    return "letters" if rows and all(len(r.choices) == 4 for r in rows) else "cloze"


def export_wmdp_tasks(bench, out_dir: str | Path) -> dict[str, Path]:
    """Write one lm-eval task per question file of the benchmark (forget tasks and utility tasks)."""
    from .lmeval.tasks import write_task

    style = (bench.config or {}).get("style", "auto") if isinstance(bench.config, dict) else "auto"
    out = {}
    for name, rows in bench.mc_tasks.items():
        out[name] = write_task(out_dir, name, [r.to_dict() for r in rows], style=task_style(rows, style))
    return out


def _table(results: dict[str, dict], tasks: list[str], rows_by_task: dict) -> pd.DataFrame:
    recs = []
    for t in tasks:
        r = results.get(t, {})
        n_choices = {len(x.choices) for x in rows_by_task[t]}
        recs.append({"task": t, "acc": r.get("acc"), "acc_stderr": r.get("acc_stderr"), "n": r.get("n"),
                     "chance": 1.0 / max(n_choices) if len(n_choices) == 1 else np.nan})
    return pd.DataFrame(recs, columns=["task", "acc", "acc_stderr", "n", "chance"]).astype(
        {"acc": "float64", "acc_stderr": "float64", "chance": "float64"})


def evaluate_wmdp(model, tokenizer, wd, retain_forget: pd.DataFrame | None, retain_aucs: dict | None, *,
                  generate: bool = True, batch_size: int = 32, is_reference: bool = False
                  ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """lm-eval accuracies of ``model`` on the workdir's forget-knowledge and utility tasks (no files written
    besides the exported task folder)."""
    from .lmeval import run_lmeval, workdir_task_dir

    del retain_forget, retain_aucs, generate, is_reference  # accuracy needs no reference model
    b = wd.benchmark
    tasks, utility = list(b.role("tasks") or []), list(b.role("utility") or [])
    include = workdir_task_dir(wd)
    export_wmdp_tasks(b, include)
    was_training = model.training
    model.eval()
    try:
        res = run_lmeval(model, tokenizer, tasks=tasks + utility, include_path=include, batch_size=batch_size)
    finally:
        model.train(was_training)
    forget, util = _table(res, tasks, b.mc_tasks), _table(res, utility, b.mc_tasks)

    def mean(df: pd.DataFrame) -> float | None:
        return float(df["acc"].mean()) if len(df) and df["acc"].notna().any() else None

    summary = {"metrics": "wmdp", "forget_accuracy": mean(forget), "utility_accuracy": mean(util),
               "wmdp": {r.task: (None if pd.isna(r.acc) else float(r.acc)) for r in forget.itertuples()},
               "utility": {r.task: (None if pd.isna(r.acc) else float(r.acc)) for r in util.itertuples()},
               "chance": {r.task: (None if pd.isna(r.chance) else float(r.chance))
                          for r in pd.concat([forget, util]).itertuples()},
               "mia": None, "n_examples": {t: len(b.mc_tasks[t]) for t in tasks + utility}, "notes": []}
    return {"forget": forget, "utility": util}, summary
