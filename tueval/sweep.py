"""Grids of unlearning runs: expand a grid (YAML or dict) into RunSpecs and run them over a process pool."""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Sequence

from tqdm.auto import tqdm

from .config.grid import AXES, load_config, parse_grid
from .errors import MissingRunsError
from .spec import RunSpec
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


def _worker(args: tuple) -> tuple[str, dict]:
    spec_dict, root = args
    import torch

    torch.set_num_threads(1)
    res = unlearn(RunSpec.from_dict(spec_dict), Workdir(root), progress=False)
    return res.run_id, res.summary


def missing(specs: Iterable[RunSpec], wd: Workdir) -> list[RunSpec]:
    """The specs whose run is not finished in ``wd``."""
    return [s for s in specs if not (wd.root / "runs" / run_id(s, wd) / "done.json").exists()]


def run_grid(specs: Sequence[RunSpec], wd: Workdir, workers: int | None = None, progress: bool = True
             ) -> list[RunResult]:
    """Run every spec (finished ones are reused) over ``workers`` processes, one torch thread each."""
    todo = missing(specs, wd)
    workers = workers or max(1, min(os.cpu_count() or 1, 2))
    if todo:
        bar = tqdm(total=len(todo), desc=f"unlearning runs ({workers} workers)", disable=not progress)
        if workers == 1:
            for s in todo:
                _worker((s.to_dict(), str(wd.root)))
                bar.update(1)
        else:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
                futs = [ex.submit(_worker, (s.to_dict(), str(wd.root))) for s in todo]
                for f in as_completed(futs):
                    f.result()
                    bar.update(1)
        bar.close()
    return [unlearn(s, wd, progress=False) for s in specs]


def require_runs(specs: Sequence[RunSpec], wd: Workdir, compute: bool, workers: int | None = None,
                 progress: bool = True) -> list[RunResult]:
    """The finished runs of ``specs``; computes missing ones if ``compute``, else raises MissingRunsError listing
    them and the command that computes them."""
    miss = missing(specs, wd)
    if miss and not compute:
        lines = "\n".join(f"  - {s.label()} seed={s.seed} lr={s.lr:g}" for s in miss[:20])
        more = f"\n  ... and {len(miss) - 20} more" if len(miss) > 20 else ""
        raise MissingRunsError(
            f"{len(miss)} of {len(specs)} runs are missing in {wd.root}/runs:\n{lines}{more}\n"
            f"compute them with `tueval analyze <name> --workdir {wd.root}` (it computes missing runs unless --no-compute) or `tueval sweep GRID.yaml "
            f"--workdir {wd.root}`; a single one with e.g. `tueval unlearn {_cli_args(miss[0])} --workdir "
            f"{wd.root}`")
    return run_grid(specs, wd, workers, progress)


def _cli_args(s: RunSpec) -> str:
    """The ``tueval unlearn`` flags of ``s`` (its objective and every field off its defaults)."""
    from .commands.unlearn import spec_words

    return spec_words(s)
