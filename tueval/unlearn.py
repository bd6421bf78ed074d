"""The unlearning engine: RunSpec -> a run folder named by the spec's hash, cached, resumable after a crash.

A run = scorer -> weighting (+ control) -> objective, optimised on the forget split of a prepared workdir,
then evaluated with the TOFU metrics and MIA against the retain model (and lm-eval with ``lmeval_tasks``, on
the workdir's exported multiple-choice tasks: ``eval/lmeval.parquet`` and ``summary["lmeval"]``; and with
``eval_every`` a trajectory of checkpoint evaluations, ``trajectory.parquet``: ``tueval.trajectory``). Three
parts: the run store (``tueval.store``: folder layout, lock, checkpoints), the step loop with hooks
(``tueval.loop``, ``tueval.training``) and the evaluation stage (``tueval.evaluate``); this module resolves
specs and puts the three together.

The run id hashes the resolved spec: the spec, the built scorer/weighting/objective settings, the workdir's
models and, for plugin scorers and objectives, a digest of their source (and an entry point's distribution
version). Fields added after runs existed are listed in ``HASH_OPTIONAL`` and left out of the hashed spec while
they hold their default, so adding a field never renames an existing run folder.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import shared_training
from .distributed import current as current_group
from .errors import SpecError
from .evaluate import evaluate_unlearned, lmeval_setup, lmeval_table, reference  # noqa: F401 - lmeval_table re-exported
from .hashing import spec_hash
from .loop import LoopState, at_steps, every_n_steps, every_step, run_loop
from .provenance import provenance
from .spec import RunSpec
from .store import RunFolder, RunStoreError, load_scorer_state  # noqa: F401 - load_scorer_state re-exported
from .training import Trainer, static_scores  # noqa: F401 - static_scores re-exported
from .trajectory import Trajectory, checkpoint_hook, load_trajectory  # noqa: F401 - load_trajectory re-exported
from .workdir import Workdir

ENGINE_VERSION = 3  # 3: generation up to max_new_tokens (200); 2: retain evaluation subset of 100; bump when
# evaluation changes


@dataclass
class RunResult:
    """A finished run: its id (hash), folder, spec and summary metrics; ``cached``: nothing was computed (its
    folder was finished, or was filled from a run that cannot differ from it, ``tueval.shared_training``)."""

    run_id: str
    path: Path
    spec: RunSpec
    summary: dict
    cached: bool = False


# ---------------------------------------------------------------------------------------------------------------
def resolve(spec: RunSpec, wd: Workdir) -> dict[str, Any]:
    """Build scorer, weighting and objective from ``spec`` (validating names and settings) and return the
    resolved settings that, with the workdir identity, define the run hash."""
    from .objectives import OBJECTIVES, make_objective
    from .registry import code_identity
    from .scoring import SCORERS, make_scorer
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
    scorer_d = scorer.describe()
    objective_d = {"name": spec.objective, "params": objective.get_params()}
    # plugin code only: the ids of runs of tueval's own scorers and objectives stay what they were
    for d, reg, name, obj in ((scorer_d, SCORERS, spec.scorer, scorer), (objective_d, OBJECTIVES, spec.objective,
                                                                          objective)):
        code = code_identity(reg, name, obj)
        if code is not None:
            d["code"] = code
    return {"engine": ENGINE_VERSION, "spec": {**spec.hash_dict(), "forget_split": forget_split},
            "scorer": scorer_d, "weighting": wspec.params(), "objective": objective_d, "workdir": identity,
            "_objects": (scorer, wspec, objective)}


def run_id(spec: RunSpec, wd: Workdir) -> str:
    """The hash that names ``spec``'s run folder in ``wd``."""
    r = resolve(spec, wd)
    r.pop("_objects")
    return spec_hash(r, 16)


def unlearn(spec: RunSpec, wd: Workdir | str | Path = "work", progress: bool = True, force: bool = False,
            stop_after: int | None = None) -> RunResult:
    """Run ``spec`` on ``wd`` (or return the cached result). ``stop_after`` simulates a crash after N steps.
    Identical calls at once compute once: the others wait for the run's lock and return it cached. Under a
    launcher (``tueval.distributed``) every process trains its share of each batch; the first one holds the lock,
    writes the run folder and evaluates, the others wait for it."""
    wd = wd if isinstance(wd, Workdir) else Workdir(wd)
    resolved = resolve(spec, wd)
    scorer, wspec, objective = resolved.pop("_objects")
    folder = RunFolder.of(wd.root, spec_hash(resolved, 16))
    group = current_group()
    if group.agree(folder.is_finished() and not force):
        return _result(folder, spec)
    lmeval_include = lmeval_setup(spec.lmeval_tasks, wd) if spec.lmeval_tasks else None
    record = {**resolved, **({"preset": spec.preset} if spec.preset else {}), "run_id": folder.run_id,
              "label": spec.label(), "provenance": provenance()}
    key = None if group.parallel else shared_training.training_key(resolved, scorer)
    with group.main_only(folder.lock(progress=progress)), shared_training.training_lock(wd.root, key, progress):
        if group.agree(folder.is_finished() and not force):
            return _result(folder, spec)
        src = None if force else shared_training.source(wd.root, key)
        if src is not None:  # a run that cannot differ from this one is finished: its results are this run's
            summary = shared_training.fill_from(folder, src, record, spec.label())
            return RunResult(folder.run_id, folder.path, spec, summary, cached=True)
        # before training: a broken retain evaluation fails in seconds, not after the run
        ref = reference(wd) if group.is_main else None
        torch.manual_seed(spec.seed)
        trainer = Trainer.build(spec, wd, scorer, wspec, objective, resolved["spec"]["forget_split"])
        if group.is_main:
            folder.start(record)
        group.barrier()
        state = LoopState(0, trainer.total_steps, trainer.steps_per_epoch, stop_step=spec.stop_step)
        traj = Trajectory.from_state(_resume(folder, trainer, state))
        t0 = time.perf_counter()
        bar = tqdm(total=state.total_steps, initial=state.step, desc=spec.label(),
                   disable=not (progress and group.is_main), leave=False)
        try:
            run_loop(trainer, state, _hooks(spec, wd, ref, folder, trainer, bar, traj) if group.is_main else [],
                     stop_after)
        finally:
            bar.close()
        train_s = time.perf_counter() - t0
        if not group.is_main:
            group.barrier()  # rank 0 evaluates and finishes the run folder
            return _result(folder, spec)
        if state.finished:
            tables, summary = evaluate_unlearned(trainer.model, trainer.tokenizer, wd, ref, spec.generate,
                                                 spec.lmeval_tasks, lmeval_include, spec.max_new_tokens)
            folder.write_tables(tables)
            if spec.has_trajectory:
                traj.finish(state, tables, summary, ref.forget)
        else:  # stopped at stop_step: the trajectory's checkpoints are what the run is for
            summary = {"stopped_at": state.step}
        folder.write_log(state.log)
        if spec.has_trajectory:
            folder.write_trajectory(traj.table())
        if scorer.stateful:
            folder.save_scorer_state(scorer.state_dict())
        if spec.save_model:
            from .models.load import save_model

            save_model(trainer.model, trainer.tokenizer, folder.path / "model")
        summary = {**summary, "steps": state.step, "wall_s": time.perf_counter() - t0, "train_s": train_s,
                   "label": spec.label()}
        if group.parallel:
            summary["processes"] = group.world
        folder.finish(summary, state.step)
        shared_training.register(wd.root, key, folder.run_id)
        group.barrier()
    return RunResult(folder.run_id, folder.path, spec, summary)


def _hooks(spec: RunSpec, wd: Workdir, ref, folder: RunFolder, trainer: Trainer, bar, traj: Trajectory) -> list:
    """What happens after a step: progress, snapshots, the trajectory's checkpoint evaluation, checkpoints (in
    this order: a checkpoint holds the trajectory rows up to its step)."""
    from .evaluate import eval_sets

    hooks = [every_step(lambda s: bar.update(1), "progress"),
             at_steps(spec.snapshot_steps, lambda s: folder.save_snapshot(s.step, trainer.model), "snapshot")]
    sets = eval_sets(wd) if spec.has_trajectory else None
    point = checkpoint_hook(spec.eval_every, lambda s: traj.evaluate(s, trainer.model, trainer.tokenizer, sets,
                                                                     ref.forget), spec.eval_steps)
    if point is not None:
        hooks.append(point)

    def save(s: LoopState) -> None:
        folder.save_checkpoint({**trainer.state_dict(s.step, s.log), "trajectory": traj.state()})

    return hooks + [every_n_steps(spec.ckpt_every, save, name="checkpoint")]


def _resume(folder: RunFolder, trainer: Trainer, state: LoopState) -> list[dict]:
    """Continue from the folder's checkpoint, if any (returns its trajectory rows); one that does not fit this
    run is refused."""
    saved = folder.load_checkpoint()
    if saved is None:
        return []
    try:
        state.step, state.log = trainer.load_state_dict(saved)
        rows = list(saved.get("trajectory", []))
    except Exception as e:  # noqa: BLE001 - any mismatch means the checkpoint is not this run's
        raise RunStoreError(f"refusing the checkpoint {folder.path / 'checkpoint.safetensors'}: it does not fit "
                            f"this run ({type(e).__name__}: {' '.join(str(e).split())[:200]}); delete the run "
                            f"folder {folder.path} to restart the run") from e
    return rows


def _result(folder: RunFolder, spec: RunSpec) -> RunResult:
    return RunResult(folder.run_id, folder.path, spec, folder.summary(), cached=True)


def snapshot_model(wd: Workdir, result: RunResult, step: int):
    """The model of a finished run at a saved snapshot step (step 0 = the target model)."""
    model, _ = wd.load_model("target")
    if step:
        state = RunFolder(result.path).load_snapshot(step)
        if state is None:
            raise SpecError(f"run {result.run_id} has no snapshot at step {step} (snapshot_steps="
                            f"{result.spec.snapshot_steps})")
        model.load_state_dict(state)
    return model.eval()


def load_run(wd: Workdir, rid: str) -> RunResult:
    """A finished run by id."""
    folder = RunFolder.of(wd.root, rid)
    if not folder.is_finished():
        raise SpecError(f"run {rid} is not finished in {wd.root}")
    d = dict(folder.spec_record()["spec"])
    d.pop("forget_split", None)
    return RunResult(rid, folder.path, RunSpec.from_dict(d), folder.summary(), cached=True)
