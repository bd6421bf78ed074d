"""lm-eval on a prepared workdir: its exported task folder and the stored accuracies of its models."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...errors import DataError
from ...io import read_json, write_json
from .runner import _task_list, check_lmeval_model_dir, lm_eval_cli_command, run_lmeval
from .tasks import DEFAULT_TASKS, export_tasks

def workdir_task_dir(workdir) -> Path:
    """Where a workdir's exported tasks live: ``W/lmeval/tasks``."""
    return Path(workdir.root) / "lmeval" / "tasks"


def export_workdir_tasks(workdir, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Export the three MC tasks of a prepared workdir's benchmark (default folder ``W/lmeval/tasks``), or the
    tasks of its benchmark source where it has its own (WMDP's question files)."""
    from ...workdir import Workdir

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    own = wd.source.export_lmeval(wd, Path(out_dir or workdir_task_dir(wd)))
    if own is not None:
        return own
    return export_tasks(out_dir or workdir_task_dir(wd), wd.benchmark, wd.forget_split, wd.retain_split)


def results_path(workdir, which: str | Path) -> Path:
    """Where ``evaluate_workdir_mc`` stores a model's accuracies: ``W/lmeval/<model-name>/results.json``."""
    return Path(workdir.root if hasattr(workdir, "root") else workdir) / "lmeval" / model_name(which) / "results.json"


def model_name(which: str | Path) -> str:
    """The results folder name of a model: ``target``/``retain`` or the folder's name."""
    s = str(which)
    return s if s in ("target", "retain") else (Path(s).resolve().name or "model")


def evaluate_workdir_mc(workdir, which: str = "target", tasks: Sequence[str] | str = DEFAULT_TASKS,
                        include_path: str | Path | None = None, limit: int | float | None = None,
                        batch_size: int = 32, device: str = "cpu", save: bool = True, reuse: bool = False,
                        progress: bool = False) -> dict[str, dict]:
    """Export a workdir's MC tasks and run lm-eval on ``target``/``retain``/a folder; stores W/lmeval/NAME/.
    ``reuse``: return the stored results when they are of the same model folder, tasks and limit. The model folder
    is checked (safetensors weights only) before anything is exported or run."""
    import lm_eval

    from ...workdir import Workdir

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    names = _task_list(tasks)
    model_dir = check_lmeval_model_dir(wd.path(which) if str(which) in ("target", "retain") else Path(which))
    if include_path is None and any(t in DEFAULT_TASKS or t in wd.benchmark.mc_tasks for t in names):
        export_workdir_tasks(wd)
        include_path = workdir_task_dir(wd)
    stored = results_path(wd, which)
    if reuse and stored.exists():
        try:
            old = read_json(stored)
        except DataError:
            old = {}  # a damaged record is recomputed
        if isinstance(old, dict) and (old.get("model") == str(Path(model_dir).resolve()) and old.get("tasks") == names
                and old.get("limit") == limit):
            return old["results"]
    results = run_lmeval(model_dir, tasks=names, include_path=include_path, batch_size=batch_size, limit=limit,
                         device=device, progress=progress)
    if save:
        write_json(results_path(wd, which), {"model": str(Path(model_dir).resolve()), "tasks": names, "limit": limit,
                         "include_path": str(Path(include_path).resolve()) if include_path else None,
                         "lm_eval_version": lm_eval.__version__, "results": results,
                         "command": lm_eval_cli_command(model_dir, include_path, names, batch_size, device,
                                                        limit)})
    return results


def format_results(results: dict[str, dict]) -> str:
    """A plain-text table: task, n, acc ± stderr, acc_norm ± stderr."""
    def cell(row, k):
        v, s = row.get(k), row.get(f"{k}_stderr")
        return "-" if v is None else f"{v:.3f}" + (f" ± {s:.3f}" if s is not None else "")

    w = max([4] + [len(t) for t in results])
    lines = [f"{'task':<{w}}  {'n':>5}  {'acc':>15}  {'acc_norm':>15}"]
    for t, row in results.items():
        lines.append(f"{t:<{w}}  {row.get('n', ''):>5}  {cell(row, 'acc'):>15}  {cell(row, 'acc_norm'):>15}")
    return "\n".join(lines)
