"""Grids of unlearning runs: expand a grid (YAML or dict) into RunSpecs and run them on an executor (a local
process pool by default, or a Ray cluster: ``tueval.executors``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from .config.grid import AXES, load_config, parse_grid
from .errors import MissingRunsError
from .executors import Executor, RunsFailedError, current_executor, make_executor
from .spec import RunSpec
from .store import RunFolder
from .unlearn import RunResult, run_id, unlearn
from .workdir import Workdir

GRID_AXES = AXES


def expand_grid(grid: dict[str, Any]) -> list[RunSpec]:
    """All RunSpecs of a grid mapping, checked (fields, names and settings) before any work: plural keys
    (objectives, scorers, modes, ratios, controls, seeds, lrs) are crossed; ``fixed`` holds shared RunSpec fields;
    ``methods`` (a list of dicts) may replace scorers x modes; sequence-level rows ignore ratios and controls. A
    list under ``include`` adds explicit specs. The format is ``tueval.config.grid``'s (its docstring has every
    key); a list under ``fixed`` (e.g. ``lmeval_tasks``) is one value, not an axis."""
    g = parse_grid(grid, "grid")
    g.check_names()
    return g.specs()


def load_grid(path: str | Path) -> list[RunSpec]:
    """RunSpecs of a grid YAML file, checked before any work (errors name the file, line and field)."""
    return load_config(path).specs()


def _finished(rid: str, wd: Workdir) -> bool:
    return RunFolder.of(wd.root, rid).is_finished()


def missing(specs: Iterable[RunSpec], wd: Workdir) -> list[RunSpec]:
    """The specs whose run is not finished in ``wd``."""
    return [s for s in specs if not _finished(run_id(s, wd), wd)]


def executor_for(engine: str | Executor | None = None, workers: int | None = None) -> Executor:
    """The executor of ``engine``: an Executor as given, a registered name built with ``workers``, or (None) the
    one the running analysis set (``tueval.executors.using``), else the local pool with ``workers``."""
    if isinstance(engine, Executor):
        return engine
    if engine is None:
        engine = current_executor()
        if engine is not None:
            return engine
        engine = "local"
    return make_executor(engine, workers=workers)


def run_grid(specs: Sequence[RunSpec], wd: Workdir, workers: int | None = None, progress: bool = True,
             engine: str | Executor | None = None) -> list[RunResult]:
    """Run every spec (finished ones are reused) on ``engine`` (see ``executor_for``; default: a pool of
    ``workers`` local processes, one torch thread each). Runs that fail do not stop the others; at the end a
    RunsFailedError lists them (spec and error)."""
    todo = list({rid: s for s in specs if not _finished(rid := run_id(s, wd), wd)}.values())  # each id once
    if todo:
        failures = executor_for(engine, workers).run(todo, wd, progress)
        if failures:
            raise RunsFailedError(failures, len(todo))
    return [unlearn(s, wd, progress=False) for s in specs]


def require_runs(specs: Sequence[RunSpec], wd: Workdir, compute: bool, workers: int | None = None,
                 progress: bool = True, engine: str | Executor | None = None) -> list[RunResult]:
    """The finished runs of ``specs``; computes missing ones (on ``engine``, see ``run_grid``) if ``compute``, else
    raises MissingRunsError listing them and the command that computes them."""
    miss = missing(specs, wd)
    if miss and not compute:
        lines = "\n".join(f"  - {s.label()} seed={s.seed} lr={s.lr:g}" for s in miss[:20])
        more = f"\n  ... and {len(miss) - 20} more" if len(miss) > 20 else ""
        raise MissingRunsError(
            f"{len(miss)} of {len(specs)} runs are missing in {wd.root}/runs:\n{lines}{more}\n"
            f"compute them with `tueval analyze <name> --workdir {wd.root}` (it computes missing runs unless --no-compute) or `tueval sweep GRID.yaml "
            f"--workdir {wd.root}`; a single one with e.g. `tueval unlearn {_cli_args(miss[0])} --workdir "
            f"{wd.root}`")
    return run_grid(specs, wd, workers, progress, engine)


def _cli_args(s: RunSpec) -> str:
    """The ``tueval unlearn`` flags of ``s`` (its objective and every field off its defaults)."""
    from .commands.flags import spec_words

    return spec_words(s)
