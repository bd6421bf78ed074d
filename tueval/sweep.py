"""Grids of unlearning runs: expand a grid (YAML or dict) into RunSpecs and run them over a process pool."""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from tqdm.auto import tqdm

from .errors import MissingRunsError, SpecError
from .spec import RunSpec
from .unlearn import RunResult, run_id, unlearn
from .workdir import Workdir

GRID_AXES = {"objectives": "objective", "scorers": "scorer", "modes": "mode", "ratios": "ratio",
             "controls": "control", "seeds": "seed", "lrs": "lr", "learning_rates": "lr", "epochs": "epochs"}


def expand_grid(grid: dict[str, Any]) -> list[RunSpec]:
    """All RunSpecs of a grid: plural keys (objectives, scorers, modes, ratios, controls, seeds, lrs) are
    crossed; ``fixed`` holds shared RunSpec fields; ``methods`` (a list of dicts) may replace scorers x modes;
    sequence-level rows ignore ratios and controls. A list under ``include`` adds explicit specs.

    Only the plural keys above are axes. Any RunSpec field may be set under ``fixed`` (or in a ``methods`` /
    ``include`` entry), where a list is a single value, not an axis: ``fixed: {lmeval_tasks: [tueval_forget_mc,
    tueval_retain_mc]}`` (or the comma-separated string ``"tueval_forget_mc,tueval_retain_mc"``) gives every run
    of the grid the same lm-eval tasks."""
    grid = dict(grid)
    fixed = dict(grid.pop("fixed", {}) or {})
    include = grid.pop("include", []) or []
    methods = grid.pop("methods", None)
    axes: dict[str, list] = {}
    for key, values in grid.items():
        if key not in GRID_AXES:
            raise SpecError(f"unknown grid key '{key}'; valid: {', '.join(sorted(GRID_AXES))}, fixed, methods, "
                            "include")
        axes[GRID_AXES[key]] = list(values) if isinstance(values, (list, tuple)) else [values]
    if methods is not None:
        axes.pop("scorer", None)
        axes.pop("mode", None)
    method_list = [dict(m) for m in methods] if methods is not None else [{}]
    keys = list(axes)
    specs, seen = [], set()
    for m in method_list:
        for combo in itertools.product(*(axes[k] for k in keys)):
            d = {**fixed, **dict(zip(keys, combo)), **m}
            seq_level = d.get("mode", "none") == "none" and d.get("scorer", "uniform") == "uniform"
            if seq_level:
                d.pop("ratio", None)
                d["control"] = None
            if d.get("mode") != "hard":
                d.pop("ratio", None)
            if d.get("control") in ("none", "None", ""):
                d["control"] = None
            spec = RunSpec.from_dict(d)
            key = repr(sorted(spec.to_dict().items(), key=lambda kv: kv[0]))
            if key not in seen:
                seen.add(key)
                specs.append(spec)
    for d in include:
        specs.append(RunSpec.from_dict({**fixed, **d}))
    return specs


def load_grid(path: str | Path) -> list[RunSpec]:
    """RunSpecs of a grid YAML file."""
    with open(path) as f:
        grid = yaml.safe_load(f) or {}
    if not isinstance(grid, dict):
        raise SpecError(f"grid file {path}: expected a mapping of grid keys")
    return expand_grid(grid)


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
    out = f"--objective {s.objective} --scorer {s.scorer} --mode {s.mode} --seed {s.seed} --lr {s.lr:g}"
    if s.mode == "hard":
        out += f" --ratio {s.ratio:g}"
    if s.control:
        out += f" --control {s.control}"
    if s.lmeval_tasks:
        out += f" --lmeval-tasks {','.join(s.lmeval_tasks)}"
    return out
