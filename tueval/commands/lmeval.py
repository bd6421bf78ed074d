"""``tueval lmeval``: export offline lm-eval multiple-choice tasks and run lm-eval on tueval's models."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import SpecError

DESCRIPTION = """Offline multiple-choice evaluation with lm-evaluation-harness (nothing is downloaded).

Three modes:
  export   tueval lmeval --export DIR [--workdir W]
           writes lm-eval tasks tueval_forget_mc, tueval_retain_mc and tueval_utility_mc (YAML + local
           JSON lines) for the workdir's benchmark: the gold answer and three same-kind distractors.
  wmdp     tueval lmeval --from-wmdp FILE --task-name NAME --export DIR
           turns your WMDP-format rows (JSON/JSONL/Parquet with question, choices, answer) into a task.
  run      tueval lmeval --model target|retain|DIR [--workdir W] [--tasks NAMES] [--limit N] [--json]
           runs lm-eval on a model; tueval's tasks are exported to W/lmeval/tasks on demand; accuracies go
           to W/lmeval/<model-name>/results.json. Installed lm-eval tasks (mmlu, wmdp_bio) work when their
           data is in the HF datasets cache."""

EPILOG = """examples:
  tueval lmeval --export work/lmeval/tasks --workdir work
  tueval lmeval --model target --workdir work
  tueval lmeval --model retain --tasks tueval_forget_mc --json
  tueval lmeval --from-wmdp my_bio.jsonl --task-name my_bio --export tasks/
  tueval lmeval --model path/to/model --tasks my_bio --include-path tasks/
  tueval lmeval --model target --print-command   # the equivalent lm_eval command line"""


def _limit(s: str) -> int | float:
    """A row count >= 1 or a fraction in (0, 1)."""
    try:
        v: int | float = int(s)
    except ValueError:
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
    if not ((isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v < 1)):
        raise argparse.ArgumentTypeError(f"expects a row count >= 1 or a fraction in (0, 1), got '{s}'")
    return v


def _positive_int(s: str) -> int:
    """An integer >= 1."""
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expects an integer >= 1, got '{s}'")
    return v


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``lmeval`` subcommand."""
    from ..evaluation.lmeval import DEFAULT_TASKS

    p = subparsers.add_parser("lmeval", help="offline lm-eval multiple-choice tasks: export them, run them",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", metavar="DIR", help="write lm-eval task YAMLs and their data to DIR")
    p.add_argument("--from-wmdp", metavar="FILE", help="with --export and --task-name: build a task from "
                   "WMDP-format rows (question, choices, answer index)")
    p.add_argument("--task-name", metavar="NAME", help="name of the task built by --from-wmdp")
    p.add_argument("--style", choices=["cloze", "letters"], default="cloze",
                   help="--from-wmdp prompt: cloze = score each choice after 'Question: ...\\nAnswer:' (tueval's "
                   "format, default); letters = the official WMDP/MMLU prompt listing A-D")
    p.add_argument("--model", metavar="MODEL", help="run lm-eval on 'target', 'retain' or a local model folder")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help=f"comma-separated lm-eval task names (default: {','.join(DEFAULT_TASKS)})")
    p.add_argument("--include-path", metavar="DIR", default=None,
                   help="folder of exported tasks (default: WORKDIR/lmeval/tasks, exported on demand)")
    p.add_argument("--limit", type=_limit, default=None, help="evaluate only the first N rows (or a fraction)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="lm-eval batch size, >= 1 (default 32)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--print-command", action="store_true",
                   help="with --model: print the equivalent offline lm_eval command line and exit")
    p.add_argument("--workdir", default="work", help="prepared workdir (default: ./work)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars (lm-eval's logs are always quiet)")
    p.set_defaults(handler=cmd_lmeval)
    return p


def cmd_lmeval(args) -> int:
    """Dispatch to export, WMDP export or run."""
    if args.from_wmdp:
        return _cmd_wmdp(args)
    if args.model:
        if args.export:
            raise SpecError("use --export and --model in separate calls (export writes tasks; --model runs them)")
        return _cmd_run(args)
    if args.export:
        return _cmd_export(args)
    raise SpecError("nothing to do: give --export DIR, --from-wmdp FILE --task-name NAME --export DIR, or "
                    "--model MODEL (see `tueval lmeval --help`)")


def _emit(args, obj: dict, text: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if args.json else text)


def _cmd_export(args) -> int:
    from ..evaluation.lmeval import export_workdir_tasks

    written = export_workdir_tasks(args.workdir, args.export)
    _emit(args, {"include_path": str(Path(args.export).resolve()), "tasks": {k: str(v) for k, v in written.items()}},
          "\n".join([f"wrote {k}: {v}" for k, v in written.items()] +
                    [f"run: tueval lmeval --model MODEL --tasks {','.join(written)} --include-path {args.export}"]))
    return 0


def _cmd_wmdp(args) -> int:
    from ..evaluation.lmeval import wmdp_task_from_rows

    if not args.task_name or not args.export:
        raise SpecError("--from-wmdp needs --task-name NAME and --export DIR")
    path = wmdp_task_from_rows(args.from_wmdp, args.task_name, args.export, style=args.style)
    _emit(args, {"include_path": str(Path(args.export).resolve()), "tasks": {args.task_name: str(path)}},
          f"wrote {args.task_name}: {path}\nrun: tueval lmeval --model MODEL --tasks {args.task_name} "
          f"--include-path {args.export}")
    return 0


def _cmd_run(args) -> int:
    from ..evaluation.lmeval import (
        DEFAULT_TASKS, _task_list, check_lmeval_model_dir, evaluate_workdir_mc, export_workdir_tasks, format_results,
        lm_eval_cli_command, results_path, workdir_task_dir)
    from ..workdir import Workdir

    wd = Workdir(args.workdir)
    tasks = _task_list(args.tasks)
    if args.tasks == ",".join(DEFAULT_TASKS) and wd.benchmark.mc_tasks:
        tasks = list(wd.benchmark.mc_tasks)  # a WMDP workdir: its own question files are its tasks
    model_dir = check_lmeval_model_dir(wd.path(args.model) if args.model in ("target", "retain") else args.model)
    if args.print_command:
        include = args.include_path
        if include is None:
            include = workdir_task_dir(wd)
            if any(t in DEFAULT_TASKS or t in wd.benchmark.mc_tasks for t in tasks):
                export_workdir_tasks(wd)
        print(lm_eval_cli_command(model_dir, include, tasks, args.batch_size, args.device, args.limit))
        return 0
    results = evaluate_workdir_mc(wd, args.model, tasks=tasks, include_path=args.include_path, limit=args.limit,
                                  batch_size=args.batch_size, device=args.device, save=True,
                                  progress=not (args.quiet or args.json))
    out = results_path(wd, args.model)
    _emit(args, {"model": args.model, "results": results, "results_path": str(out)},
          format_results(results) + f"\nsaved {out}")
    return 0


COMMANDS = {"lmeval": register}
