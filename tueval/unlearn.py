"""The unlearning engine: RunSpec -> a run folder named by the spec's hash, cached, resumable after a crash.

A run = scorer -> weighting (+ control) -> objective, optimised on the forget split of a prepared workdir,
then evaluated with the TOFU metrics and MIA against the retain model. ``WORKDIR/runs/<hash>/`` holds
``spec.json`` (spec, resolved settings, provenance), ``log.parquet`` (one row per step), ``eval/*.parquet``
(per-example rows), ``summary.json`` and, last, ``done.json``. A folder without ``done.json`` is unfinished:
it resumes from ``checkpoint.pt`` (written atomically every ``ckpt_every`` steps) or restarts cleanly.

With ``lmeval_tasks`` set, the unlearned model (in memory) is also scored by lm-eval, offline, on the workdir's
exported multiple-choice tasks (``tueval_forget_mc``, ``tueval_retain_mc``, ``tueval_utility_mc`` in
``WORKDIR/lmeval/tasks``): ``eval/lmeval.parquet`` (task, acc, acc_stderr, n) and ``summary["lmeval"]``.

Hash compatibility: fields added after runs existed are listed in ``HASH_OPTIONAL`` and left out of the hashed
spec while they hold their default, so adding a field never renames an existing run folder.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from .data.collate import Batch, collate
from .errors import SpecError
from .hashing import spec_hash
from .io import atomic_path, write_json, write_parquet
from .provenance import provenance
from .spec import RunSpec
from .workdir import Workdir

ENGINE_VERSION = 2  # 2: retain evaluation subset of 100 (RETAIN_EVAL_N); bump when evaluation changes


@dataclass
class RunResult:
    """A finished run: its id (hash), folder, spec and summary metrics."""

    run_id: str
    path: Path
    spec: RunSpec
    summary: dict
    cached: bool = False


# ---------------------------------------------------------------------------------------------------------------
def resolve(spec: RunSpec, wd: Workdir) -> dict[str, Any]:
    """Build scorer, weighting and objective from ``spec`` (validating names and settings) and return the
    resolved settings that, with the workdir identity, define the run hash."""
    from .objectives import make_objective
    from .scoring import make_scorer
    from .weighting import WeightingSpec

    scorer = make_scorer(spec.scorer, dict(spec.scorer_params))
    wspec = WeightingSpec(mode=spec.mode, ratio=spec.ratio, control=spec.control, normaliser=spec.normaliser)
    obj_params = dict(spec.objective_params)
    obj_params.setdefault("normaliser", wspec.loss_normaliser)
    objective = make_objective(spec.objective, obj_params)
    if spec.lr <= 0 or spec.epochs <= 0 or spec.batch_size <= 0:
        raise SpecError("lr, epochs and batch_size must be positive")
    if spec.lmeval_tasks:
        from .evaluation.lmeval import _TASK_NAME

        bad = [t for t in spec.lmeval_tasks if not _TASK_NAME.match(t)]
        if bad:
            raise SpecError(f"invalid lm-eval task name(s) {', '.join(map(repr, bad))} in lmeval_tasks")
    forget_split = spec.forget_split or wd.forget_split
    identity = {k: wd.manifest["paths"][k] for k in ("benchmark", "tokenizer", "target", "retain")}
    return {"engine": ENGINE_VERSION, "spec": {**spec.hash_dict(), "forget_split": forget_split},
            "scorer": scorer.describe(), "weighting": wspec.params(), "objective": {
                "name": spec.objective, "params": objective.get_params()}, "workdir": identity,
            "_objects": (scorer, wspec, objective)}


def run_id(spec: RunSpec, wd: Workdir) -> str:
    """The hash that names ``spec``'s run folder in ``wd``."""
    r = resolve(spec, wd)
    r.pop("_objects")
    return spec_hash(r, 16)




@torch.no_grad()
def static_scores(scorer, ref_model, data: Batch, ctx, chunk: int = 64) -> torch.Tensor:
    """Scores of a static scorer on every forget example, computed once on the reference model ([N, T])."""
    out = torch.zeros(data.input_ids.shape, dtype=torch.float32)
    for i in range(0, len(data), chunk):
        b = Batch.trim(data.select(range(i, min(i + chunk, len(data)))))
        s = scorer.score(ref_model, b, ctx)
        out[i: i + len(b), : s.shape[1]] = s.float()
    return out


def _load_frozen(wd: Workdir, which: str):
    m, _ = wd.load_model(which)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def _rng_state(gens: dict[str, torch.Generator]) -> dict:
    return {k: g.get_state() for k, g in gens.items()}


def _lmeval_setup(spec: RunSpec, wd: Workdir) -> Path:
    """Export the workdir's MC tasks (no-op when unchanged) and check every task of ``spec`` is known, before
    training: an unknown task fails in seconds, not after the run. Returns the include path."""
    from .evaluation.lmeval import _resolve_task_manager, export_workdir_tasks, workdir_task_dir

    export_workdir_tasks(wd)
    include = workdir_task_dir(wd)
    _resolve_task_manager(list(spec.lmeval_tasks), include)
    return include


def lmeval_table(results: dict[str, dict], tasks) -> pd.DataFrame:
    """One row per task (task, acc, acc_stderr, n) from ``run_lmeval``'s results, in ``tasks`` order."""
    rows = []
    for t in tasks:
        r = results.get(t, {})
        rows.append({"task": t, "acc": r.get("acc"), "acc_stderr": r.get("acc_stderr"), "n": r.get("n")})
    return pd.DataFrame(rows, columns=["task", "acc", "acc_stderr", "n"]).astype(
        {"acc": "float64", "acc_stderr": "float64", "n": "Int64"})


def unlearn(spec: RunSpec, wd: Workdir | str | Path = "work", progress: bool = True, force: bool = False,
            stop_after: int | None = None) -> RunResult:
    """Run ``spec`` on ``wd`` (or return the cached result). ``stop_after`` simulates a crash after N steps."""
    from .evaluate import evaluate_in_memory, _reference
    from .objectives.base import model_forward
    from .scoring import ScoringContext
    from .weighting import apply_weighting, grad_norm_matched_scale

    wd = wd if isinstance(wd, Workdir) else Workdir(wd)
    resolved = resolve(spec, wd)
    scorer, wspec, objective = resolved.pop("_objects")
    rid = spec_hash(resolved, 16)
    rdir = wd.root / "runs" / rid
    if (rdir / "done.json").exists() and not force:
        return RunResult(rid, rdir, spec, json.loads((rdir / "summary.json").read_text()), cached=True)
    lmeval_include = _lmeval_setup(spec, wd) if spec.lmeval_tasks else None
    rdir.mkdir(parents=True, exist_ok=True)
    write_json(rdir / "spec.json", {**resolved, "run_id": rid, "label": spec.label(), "provenance": provenance()})

    torch.manual_seed(spec.seed)
    forget_split = resolved["spec"]["forget_split"]
    bench = wd.benchmark
    model, tok = wd.load_model("target")
    model.train()
    needs_ref = objective.needs_ref_model or scorer.static or getattr(scorer, "needs_ref_model", False)
    ref_model = _load_frozen(wd, "target") if needs_ref else None
    retain_model = _load_frozen(wd, "retain") if getattr(scorer, "needs_retain_model", False) else None

    forget = bench.split(forget_split)
    retain_split = "retain" + f"{100 - int(forget_split.replace('forget', '')):02d}"
    retain = bench.split(retain_split)
    F = collate(forget, tok)
    R = collate(retain, tok)
    gens = {"data": torch.Generator().manual_seed(spec.seed),
            "retain": torch.Generator().manual_seed(spec.seed + 1_000_003),
            "weights": torch.Generator().manual_seed(spec.seed + 2_000_003)}
    ctx = ScoringContext(ref_model=ref_model, retain_model=retain_model, tokenizer=tok, generator=gens["weights"])
    S = static_scores(scorer, ref_model, F, ctx) if scorer.static else None

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr,
                            weight_decay=spec.weight_decay)
    steps_per_epoch = math.ceil(len(F) / spec.batch_size)
    total_steps = spec.epochs * steps_per_epoch
    step, log_rows = 0, []
    ckpt = rdir / "checkpoint.pt"
    if ckpt.exists():
        try:
            state = torch.load(ckpt, weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            for k, g in gens.items():
                g.set_state(state["rng"][k])
            scorer.load_state_dict(state["scorer"])
            step, log_rows = state["step"], state["log"]
            torch.set_rng_state(state["torch_rng"])
        except Exception:  # noqa: BLE001 - a corrupt checkpoint restarts the run cleanly
            step, log_rows = 0, []
            model, _ = wd.load_model("target")
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    perm = None
    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc=spec.label(), disable=not progress, leave=False)
    while step < total_steps:
        epoch, pos = divmod(step, steps_per_epoch)
        if pos == 0 or perm is None:
            # the permutation of an epoch is a function of the seed and the epoch only (resume-safe)
            perm = torch.randperm(len(F), generator=torch.Generator().manual_seed(spec.seed * 7919 + epoch))
        idx = perm[pos * spec.batch_size: (pos + 1) * spec.batch_size]
        # objectives may attach what they need (IdkPO: refusal answers), drawn from a seed-and-step generator so
        # that a resumed run draws the same
        fb = objective.prepare_batch(Batch.trim(F.select(idx)), tok,
                                     torch.Generator().manual_seed(spec.seed * 104_729 + step))
        rb = Batch.trim(R.select(torch.randint(len(R), (spec.batch_size,), generator=gens["retain"])))
        ctx.step = step
        out = model_forward(model, fb, hidden=bool(scorer.needs_hidden or objective.needs_hidden))
        ctx.outputs = out
        scores = S[idx][:, : fb.input_ids.shape[1]] if S is not None else scorer.score(model, fb, ctx)
        wr = apply_weighting(wspec, scores, fb.answer_mask, generator=gens["weights"])
        loss = objective(model, fb, rb, wr.weights, ref_model, forget_out=out)
        total = loss.total
        if wr.needs_grad_scale:
            method = objective(model, fb, None, wr.method_weights, ref_model, forget_out=out,
                               compute_retain=False)
            c = grad_norm_matched_scale(model, method.forget, loss.forget)
            total = objective.gamma * c * loss.forget + objective.alpha * loss.retain
        opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip))
        opt.step()
        if scorer.stateful:
            scorer.update(model, fb, ctx, outputs=out.detach())
        log_rows.append({"step": step, "epoch": epoch, "total": float(total.detach()),
                         "forget": float(loss.forget.detach()), "retain": float(loss.retain.detach()), "grad_norm": gnorm,
                         **{k: float(v) for k, v in loss.extras.items() if v.numel() == 1}})
        step += 1
        bar.update(1)
        if step in spec.snapshot_steps:
            with atomic_path(rdir / "snapshots" / f"step-{step:05d}.pt") as tmp:
                torch.save(model.state_dict(), tmp)
        if step % spec.ckpt_every == 0 or step == total_steps:
            with atomic_path(ckpt) as tmp:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": _rng_state(gens),
                            "scorer": scorer.state_dict(), "step": step, "log": log_rows,
                            "torch_rng": torch.get_rng_state()}, tmp)
        if stop_after is not None and step >= stop_after and step < total_steps:
            bar.close()
            raise KeyboardInterrupt(f"stopped after {step} steps (simulated crash)")
    bar.close()
    train_s = time.perf_counter() - t0

    model.eval()
    retain_forget, retain_aucs = _reference(wd)
    tables, summary = evaluate_in_memory(model, tok, wd, retain_forget, retain_aucs, generate=spec.generate)
    for k, t in tables.items():
        write_parquet(rdir / "eval" / f"{k}.parquet", t.reset_index(drop=True))
    extra = {}
    if spec.lmeval_tasks:
        from .evaluation.lmeval import run_lmeval

        t1 = time.perf_counter()
        res = run_lmeval(model, tok, tasks=list(spec.lmeval_tasks), include_path=lmeval_include)
        table = lmeval_table(res, spec.lmeval_tasks)
        write_parquet(rdir / "eval" / "lmeval.parquet", table)
        extra = {"lmeval": {r.task: (None if pd.isna(r.acc) else float(r.acc)) for r in table.itertuples()},
                 "lmeval_s": time.perf_counter() - t1}
    write_parquet(rdir / "log.parquet", pd.DataFrame(log_rows))
    if scorer.stateful:
        with atomic_path(rdir / "scorer_state.pt") as tmp:
            torch.save(scorer.state_dict(), tmp)
    if spec.save_model:
        from .models.load import save_model

        save_model(model, tok, rdir / "model")
    summary = {**summary, **extra, "steps": step, "wall_s": time.perf_counter() - t0, "train_s": train_s,
               "label": spec.label()}
    write_json(rdir / "summary.json", summary)
    write_json(rdir / "done.json", {"run_id": rid, "steps": step})
    if ckpt.exists():
        ckpt.unlink()
    return RunResult(rid, rdir, spec, summary)


def snapshot_model(wd: Workdir, result: RunResult, step: int):
    """The model of a finished run at a saved snapshot step (step 0 = the target model)."""
    model, _ = wd.load_model("target")
    if step:
        p = result.path / "snapshots" / f"step-{step:05d}.pt"
        if not p.exists():
            raise SpecError(f"run {result.run_id} has no snapshot at step {step} (snapshot_steps="
                            f"{result.spec.snapshot_steps})")
        model.load_state_dict(torch.load(p, weights_only=True))
    return model.eval()


def load_run(wd: Workdir, rid: str) -> RunResult:
    """A finished run by id."""
    rdir = wd.root / "runs" / rid
    if not (rdir / "done.json").exists():
        raise SpecError(f"run {rid} is not finished in {wd.root}")
    d = json.loads((rdir / "spec.json").read_text())["spec"]
    d.pop("forget_split", None)
    spec = RunSpec.from_dict(d)
    return RunResult(rid, rdir, spec, json.loads((rdir / "summary.json").read_text()), cached=True)
