"""Evaluate a model on a prepared workdir: TOFU tables and summary, MIA, a TOFU eval log; cached per model.
Also the evaluation stage of an unlearning run: the retain reference, the in-memory evaluation and lm-eval."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import TuevalError
from .io import write_json, write_parquet
from .workdir import Workdir

SETS = ("forget", "retain", "real_authors", "world_facts")


def eval_sets(wd: Workdir) -> dict[str, list]:
    """The evaluation sets of the workdir: its forget split, a fixed retain subset and the utility sets."""
    b = wd.benchmark
    return {"forget": b.split(wd.forget_split), "retain": b.retain_eval(retain_split=wd.retain_split),
            **{u: b.split(u) for u in ("real_authors", "world_facts") if b.has_split(u)}}


def holdout_split(wd: Workdir) -> str:
    """The holdout split matching the forget split's size (for MIA)."""
    return wd.holdout_split


@torch.no_grad()
def evaluate_in_memory(model, tokenizer, wd: Workdir, retain_forget: pd.DataFrame | None,
                       retain_aucs: dict | None, generate: bool = True, batch_size: int | None = None,
                       sets: tuple[str, ...] = SETS, is_reference: bool = False,
                       max_new_tokens: int | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Per-example tables and the summary dict of ``model`` (no files written). ``is_reference``: the model is
    the retain model itself, so its own forget table and MIA AUCs are the reference (forget quality 1.0).
    A workdir whose benchmark source has its own metrics (MUSE, WMDP) is evaluated by the source's function.

    Every set's teacher-forced scores (and the MIA holdout's) come from one shared-prefix pass, and one batched
    greedy generation (``max_new_tokens``, default the workdir's) covers the questions of every set."""
    from .evaluation.generation import generate_answers
    from .evaluation.likelihood import SetJob, score_sets
    from .evaluation.mia import labelled, mia_summary, scores_table
    from .evaluation.summary import summarise
    from .evaluation.tofu import _validate, fields_for, set_table

    from .data.format import with_special_tokens

    batch_size = batch_size or wd.eval_batch_size
    tokenizer = with_special_tokens(tokenizer, "include")  # metrics score EOS as TOFU does
    if wd.evaluator is not None:
        return wd.evaluator(model, tokenizer, wd, retain_forget, retain_aucs, generate=generate,
                            batch_size=batch_size, is_reference=is_reference)
    was_training = model.training
    model.eval()
    try:
        ev = eval_sets(wd)
        sets = tuple(k for k in sets if k in ev)
        for k in sets:
            _validate(ev[k], k)
        holdout = wd.benchmark.split(holdout_split(wd))
        # the tables read the greedy-token accuracies of the answer rows only (TOFU's acc / fact_acc)
        jobs = {k: SetJob(ev[k], fields_for(k), ("answer",) if k == "forget" else (), ("answer",)) for k in sets}
        if "forget" not in sets:
            jobs["forget"] = SetJob(ev["forget"], ("answer",), ("answer",), ())
        jobs["holdout"] = SetJob(holdout, ("answer",), ("answer",), ())
        scores = score_sets(model, tokenizer, jobs, batch_size)
        gens: dict[str, list[str] | None] = {k: None for k in sets}
        if generate:
            qs = [e.question for k in sets for e in ev[k]]
            flat = generate_answers(model, tokenizer, qs, batch_size, max_new_tokens or wd.max_new_tokens)
            at = np.cumsum([0] + [len(ev[k]) for k in sets])
            gens = {k: flat[a:b] for k, a, b in zip(sets, at[:-1], at[1:])}
    finally:
        model.train(was_training)  # a model evaluated mid-training (a loop hook) goes on training
    tables = {k: set_table(ev[k], k, scores[k], gens[k], tokenizer) for k in sets}
    mia_t = labelled(scores_table(ev["forget"], scores["forget"]), scores_table(holdout, scores["holdout"]))
    tables["mia"] = mia_t
    if is_reference:
        retain_forget = tables["forget"]
        retain_aucs = {k: v for k, v in mia_summary(mia_t).items() if k.startswith("mia_")}
    summary = summarise({k: tables[k] for k in sets}, retain_forget, mia_summary(mia_t, retain_aucs))
    return tables, summary


@dataclass(frozen=True)
class Reference:
    """What the unlearned model is compared with: the retain model's forget table and MIA AUCs."""

    forget: pd.DataFrame
    mia_aucs: dict


_REFERENCES: dict = {}


def reference(wd: Workdir) -> Reference:
    """The retain model's evaluation (computed first if its cache is missing, stale or incomplete); read once per
    process and state of its files."""
    key = _reference_key(wd)
    if key is not None and key in _REFERENCES:
        return _REFERENCES[key]
    ref = _read_reference(wd)
    key = _reference_key(wd)
    if key is not None:
        _REFERENCES.clear()  # one workdir at a time is the common case; keep memory flat
        _REFERENCES[key] = ref
    return ref


def _reference_key(wd: Workdir) -> tuple | None:
    """The cache key of the retain evaluation and the state of its summary and forget table (None if missing)."""
    d = wd.eval_dir("retain")
    try:
        files = tuple((f, (d / f).stat().st_size, (d / f).stat().st_mtime_ns) for f in ("summary.json",
                                                                                         "forget.parquet"))
    except OSError:
        return None
    return (str(d.resolve()), json.dumps(_cache_key(wd, "retain"), sort_keys=True), files)


def _read_reference(wd: Workdir) -> Reference:
    d = wd.eval_dir("retain")
    for attempt in range(2):
        summ = evaluate_model(wd, "retain", name="retain", progress=False, force=attempt > 0)
        try:
            forget = pd.read_parquet(d / "forget.parquet")
            break
        except Exception as e:  # noqa: BLE001 - an unreadable cached table is recomputed once
            if attempt:
                raise TuevalError(f"cannot read {d / 'forget.parquet'} after re-evaluating the retain model: "
                                  f"{' '.join(str(e).split())}") from e
    return Reference(forget, {k: v for k, v in (summ.get("mia") or {}).items() if k.startswith("mia_")})


def _cache_key(wd: Workdir, model: str) -> dict[str, str]:
    """What an evaluation depends on: the evaluated model, the retain model, the benchmark and the generation length
    (so that a re-prepared workdir with new models never reuses an old evaluation)."""
    paths = wd.manifest["paths"]
    ident = paths[model] if model in ("target", "retain") else str(Path(model).resolve())
    from .data.benchmark import RETAIN_EVAL_N

    return {"model": ident, "retain": paths["retain"], "benchmark": paths["benchmark"], "forget_split": wd.forget_split,
            "retain_eval_n": RETAIN_EVAL_N, "max_new_tokens": wd.max_new_tokens}


def evaluate_model(wd: Workdir, model: str = "target", name: str | None = None, progress: bool = True,
                   force: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` (target, retain or a folder) against the retain model; cached in WORKDIR/eval/NAME."""
    from .evaluation.eval_log import write_eval_log

    name = name or (model if model in ("target", "retain") else Path(model).name)
    out = wd.eval_dir(name)
    key = _cache_key(wd, model)
    cached = None if force else _cached_summary(out, key)
    if cached is not None:
        return cached
    (out / "summary.json").unlink(missing_ok=True)
    ref = None if model == "retain" else reference(wd)
    retain_forget, retain_aucs = (None, None) if ref is None else (ref.forget, ref.mia_aucs)
    m, tok = wd.load_model(model)
    tables, summary = evaluate_in_memory(m, tok, wd, retain_forget, retain_aucs, is_reference=model == "retain")
    for k, t in tables.items():
        write_parquet(out / f"{k}.parquet", _parquet_safe(t))
    if wd.evaluator is None:
        write_eval_log(out / "eval_log_aggregated.json", {k: tables[k] for k in SETS if k in tables})
    summary = {**summary, "model": str(model), "forget_split": wd.forget_split, "cache_key": key,
               "tables": sorted(tables)}
    write_json(out / "summary.json", summary)
    return summary


def _cached_summary(out: Path, key: dict) -> dict | None:
    """The cached summary in ``out`` when it is for ``key`` and every table it stands for is there."""
    try:
        cached = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(cached, dict) or cached.get("cache_key") != key:
        return None
    names = cached.get("tables") or (*SETS, "mia")
    log = ["eval_log_aggregated.json"] if {"forget", "retain"} <= set(names) else []  # TOFU's sets only
    files = [f"{k}.parquet" for k in names] + log
    if not all((out / f).is_file() for f in files):
        return None
    return cached


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Lists of floats stay lists; everything else as is (Parquet stores list columns natively)."""
    return df.reset_index(drop=True)


def evaluate_pair(wd: Workdir, progress: bool = True, quiet: bool = False) -> dict[str, dict]:
    """Evaluate the retain model, then the target model against it."""
    out = {"retain": evaluate_model(wd, "retain", progress=progress)}
    out["target"] = evaluate_model(wd, "target", progress=progress)
    return out


def format_summary(s: dict[str, Any]) -> str:
    """A human-readable table of a summary."""
    def f(x):
        return "n/a" if x is None else (f"{x:.3g}" if isinstance(x, float) else str(x))

    lines = [f"model: {s.get('model', '?')}   forget split: {s.get('forget_split', '?')}",
             f"forget quality      {f(s.get('forget_quality'))}",
             f"model utility       {f(s.get('model_utility'))}",
             f"forget truth ratio  {f(s.get('forget_truth_ratio'))}",
             f"forget probability  {f(s.get('forget_prob'))}",
             f"forget ROUGE-L      {f(s.get('forget_rougeL'))}"]
    for k, v in (s.get("components") or {}).items():
        lines.append(f"  {k:24s}{f(v)}")
    for k, v in (s.get("mia") or {}).items():
        lines.append(f"{k:20s}{f(v)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
def lmeval_setup(tasks: Sequence[str], wd: Workdir) -> Path:
    """Export the workdir's MC tasks (no-op when unchanged) and check every task is known, before training: an
    unknown task fails in seconds, not after the run. Returns the include path."""
    from .evaluation.lmeval import _resolve_task_manager, export_workdir_tasks, workdir_task_dir

    export_workdir_tasks(wd)
    include = workdir_task_dir(wd)
    _resolve_task_manager(list(tasks), include)
    return include


def lmeval_table(results: dict[str, dict], tasks) -> pd.DataFrame:
    """One row per task (task, acc, acc_stderr, n) from ``run_lmeval``'s results, in ``tasks`` order."""
    rows = []
    for t in tasks:
        r = results.get(t, {})
        rows.append({"task": t, "acc": r.get("acc"), "acc_stderr": r.get("acc_stderr"), "n": r.get("n")})
    return pd.DataFrame(rows, columns=["task", "acc", "acc_stderr", "n"]).astype(
        {"acc": "float64", "acc_stderr": "float64", "n": "Int64"})


def evaluate_unlearned(model, tokenizer, wd: Workdir, ref: Reference, generate: bool = True,
                       lmeval_tasks: Sequence[str] = (), lmeval_include: Path | None = None,
                       max_new_tokens: int | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The evaluation stage of a run: per-example tables (plus ``lmeval`` when tasks are given) and the summary
    of the unlearned ``model`` against the retain reference (no files written); generations capped at
    ``max_new_tokens`` (default: the workdir's, 200 unless its config says otherwise)."""
    model.eval()
    tables, summary = evaluate_in_memory(model, tokenizer, wd, ref.forget, ref.mia_aucs, generate=generate,
                                         max_new_tokens=max_new_tokens)
    if lmeval_tasks:
        from .evaluation.lmeval import run_lmeval

        t1 = time.perf_counter()
        res = run_lmeval(model, tokenizer, tasks=list(lmeval_tasks), include_path=lmeval_include)
        tables["lmeval"] = table = lmeval_table(res, lmeval_tasks)
        summary = {**summary, "lmeval": {r.task: (None if pd.isna(r.acc) else float(r.acc))
                                         for r in table.itertuples()}, "lmeval_s": time.perf_counter() - t1}
    return tables, summary
