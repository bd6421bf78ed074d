"""``tueval unlearn`` (one run, cached by its spec) and ``tueval sweep GRID.yaml`` (a grid on an executor)."""
from __future__ import annotations

import argparse
import json

from ..errors import SpecError
from .flags import FLAGS, add_engine_flags, flag_value, spec_words  # noqa: F401 (spec_words: re-exported)

UNLEARN_DESC = """Run one unlearning run: scorer -> weighting (+ control) -> objective on the workdir's forget split,
then evaluate it (TOFU metrics, MIA) against the retain model. The run folder WORKDIR/runs/<hash> is named by the
hash of the full spec; a finished run is never recomputed, a killed one resumes from its last checkpoint."""

UNLEARN_EPILOG = """examples:
  tueval unlearn --objective ga                                   # sequence-level gradient ascent
  tueval unlearn --preset atwu --seed 2                           # a paper's method as it runs it (tueval presets)
  tueval unlearn --preset etw --control permuted --seed 2         # ... under its informative control
  tueval unlearn --objective npo --scorer tokenunlearn --mode hard --ratio 0.3 --seed 3
  tueval unlearn --objective npo --scorer tokenunlearn --mode hard --ratio 0.3 --control random_k --seed 3
  tueval unlearn --objective ga --scorer my_module:my_scorer --mode soft --json
  tueval unlearn --objective ga --lmeval-tasks tueval_forget_mc,tueval_retain_mc   # + lm-eval MC accuracy
  torchrun --nproc_per_node 4 -m tueval unlearn --objective npo --launcher accelerate   # one run, 4 processes
scorers: tokenunlearn etw etw_static atwu_proto atwu_sat tif wga satimp tnpo uniform random oracle anti
objectives: ga graddiff npo simnpo idkpo tpo rmu
controls: random_k permuted magnitude_matched magnitude_matched_grad bottom_k"""

SWEEP_EPILOG = """A grid file is YAML; plural keys are crossed, e.g.
  objectives: [ga, npo]
  methods:                       # (or scorers: [...] and modes: [...])
    - {scorer: tokenunlearn, mode: hard, ratio: 0.3}
    - {scorer: etw, mode: soft, controls: [null, permuted]}   # its own controls
  controls: [null, random_k, permuted, magnitude_matched, uniform]   # null: the method; uniform: sequence base
  seeds: [0, 1, 2, 3, 4, 5]
  lrs: [1e-3]
  fixed: {epochs: 5, batch_size: 16}
Any RunSpec field may go under `fixed` (or in a `methods`/`include` entry); a list there is ONE value, not an
axis: e.g. `fixed: {lmeval_tasks: [tueval_forget_mc, tueval_utility_mc]}` adds lm-eval MC accuracies to every
run. Fields not given resolve as in `tueval unlearn`: the objective's defaults, then the global defaults
(tueval/configs/defaults.yaml). The sweep runs exactly the arms listed; `tueval analyze NAME --config FILE`
reads the same format and adds the arms its question needs (the method itself, and uniform unless
`uniform: false`); its settings keys: workdir, reports, profile, alpha, workers, family, figures, uniform,
pairs (replication: the number of model pairs, or the other pairs' workdirs). Where
runs are computed (both commands): workers, engine (local | ray), address (a Ray cluster) and resources, what one
run reserves on Ray, e.g. `resources: {cpus: 4, gpus: 1, memory: 32GiB}` (docs/scale_out.md). The file is
checked before any run starts, also with --dry-run."""


#: flags whose value is taken as given (a flag that is given is never replaced by a default)
_PLAIN = ("objective", "scorer", "mode", "ratio", "control", "seed", "lr", "epochs", "batch_size", "weight_decay",
          "clip", "normaliser", "forget_split", "ckpt_every", "lmeval_tasks", "special_tokens", "preset",
          "max_new_tokens", "eval_every", "stop_step")


def _kv(items: list[str] | None, flag: str) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SpecError(f"{flag} expects KEY=VALUE, got '{it}'")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _steps(text: str) -> list:
    """``--snapshot-steps 10,20`` as a list (each item an int where it reads as one; the field rule checks)."""
    out = []
    for t in (x.strip() for x in text.split(",")):
        if t:
            try:
                out.append(int(t))
            except ValueError:
                out.append(t)
    return out


def _defaults_help() -> dict[str, str]:
    """``default ...`` for each flag: the global default and, grouped by value, the objectives that differ."""
    from ..config import defaults

    def fmt(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    d = defaults()
    out = {}
    for f in FLAGS:
        by: dict[str, list[str]] = {}
        for o in sorted(d.objectives):
            if f in d.objectives[o]:
                by.setdefault(fmt(d.objectives[o][f]), []).append(o)
        out[f] = "; ".join([f"default {fmt(d.run[f])}", *(f"{', '.join(os)}: {v}" for v, os in by.items())])
    return out


def register_unlearn(sub) -> argparse.ArgumentParser:
    """Add ``tueval unlearn``."""
    dh = _defaults_help()
    p = sub.add_parser("unlearn", help="one unlearning run (cached by its spec, resumable)", description=UNLEARN_DESC,
                       epilog=UNLEARN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="a method preset (`tueval presets` lists them): its settings apply under the "
                   "flags given; dictionary settings (--objective-param, --scorer-param) merge key by key")
    p.add_argument("--objective", help=f"objective name ({dh['objective']})")
    p.add_argument("--scorer", help=f"token scorer name or module:function ({dh['scorer']})")
    p.add_argument("--mode", choices=["hard", "soft", "none"],
                   help="hard = top-ratio tokens per sequence; soft = scores scaled to mean 1; none = scores as "
                   f"weights ({dh['mode']})")
    p.add_argument("--ratio", type=float, help=f"fraction kept by hard selection, in (0, 1] ({dh['ratio']})")
    p.add_argument("--control", help="replace the method's weights by a control built from them (default none)")
    p.add_argument("--seed", type=int, help=f"integer seed >= 0 ({dh['seed']})")
    p.add_argument("--lr", type=float, help=f"learning rate, > 0 ({dh['lr']})")
    p.add_argument("--epochs", type=int, help=f"epochs over the forget split, >= 1 ({dh['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"forget examples per step, >= 1 ({dh['batch_size']})")
    p.add_argument("--weight-decay", type=float, help=f"AdamW weight decay, >= 0 ({dh['weight_decay']})")
    p.add_argument("--clip", type=float, help=f"gradient-norm clip, > 0 ({dh['clip']})")
    p.add_argument("--normaliser", choices=["auto", "weight_sum", "tokens"], help=f"loss normaliser "
                   f"({dh['normaliser']}: weight_sum for hard selection, tokens otherwise)")
    p.add_argument("--forget-split", help="forget split name, e.g. forget05 (default: the workdir's)")
    p.add_argument("--objective-param", action="append", metavar="KEY=VALUE", help="e.g. beta=0.2 (repeatable)")
    p.add_argument("--scorer-param", action="append", metavar="KEY=VALUE", help="e.g. alpha=0.5 (repeatable)")
    p.add_argument("--save-model", action="store_true", help="also save the unlearned model in the run folder")
    p.add_argument("--no-generate", action="store_true", help="skip greedy generation (no ROUGE)")
    p.add_argument("--max-new-tokens", type=int, help="greedy generation cap for ROUGE, >= 1 "
                   f"({dh['max_new_tokens']}, as TOFU)")
    p.add_argument("--eval-every", metavar="N|epoch", help="write the run's trajectory (trajectory.parquet): the "
                   "checkpoint evaluation every N steps or every epoch, the full evaluation at the end "
                   f"({dh['eval_every']}: none)")
    p.add_argument("--eval-steps", metavar="STEP[,STEP...]",
                   help="also evaluate a trajectory checkpoint after these steps (positive integers; with "
                   "--eval-every 0 only these; default none)")
    p.add_argument("--stop-step", type=int, metavar="STEP",
                   help="end the run after this many steps with the full run's learning-rate schedule, writing its "
                   "trajectory checkpoints but no final evaluation (a refinement run's; "
                   f"{dh['stop_step']}: never)")
    p.add_argument("--snapshot-steps", metavar="STEP[,STEP...]",
                   help="also save the model after these steps (positive integers; default none)")
    p.add_argument("--ckpt-every", type=int, help=f"checkpoint every N steps, >= 1 ({dh['ckpt_every']})")
    p.add_argument("--lmeval-tasks", metavar="TASK[,TASK...]",
                   help="also score the unlearned model with lm-eval (offline) on these comma-separated tasks, "
                   "e.g. tueval_forget_mc,tueval_retain_mc,tueval_utility_mc (the workdir's exported "
                   "multiple-choice tasks); writes eval/lmeval.parquet and summary 'lmeval' {task: acc}. "
                   "Part of the run's spec (a different run id); default none")
    p.add_argument("--special-tokens", choices=["auto", "exclude", "include"],
                   help="EOS, end-of-turn and chat markup in selection, scoring and the loss: exclude or include "
                   f"({dh['special_tokens']}: the workdir's, exclude on a workdir prepared from a config)")
    p.add_argument("--force", action="store_true", help="recompute even if the run is finished")
    p.add_argument("--launcher", choices=["none", "accelerate"], default="none",
                   help="accelerate: this process is one of several started by torchrun (or `accelerate launch "
                   "--multi_gpu`); "
                   "they train the run data parallel, splitting each batch (same result as one process up to "
                   "floating-point reduction order; docs/scale_out.md). Default none: one process")
    p.add_argument("--workdir", default="work")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_unlearn)
    return p


def spec_from_args(args):
    """The RunSpec of parsed ``tueval unlearn`` flags: the flags given, then the objective's defaults, then the
    global defaults (``tueval.spec.resolve_spec``); checked, names included, before any work."""
    from ..config import FieldError
    from ..spec import resolve_spec

    given = {f: getattr(args, f) for f in _PLAIN if getattr(args, f) is not None}
    if args.objective_param is not None:
        given["objective_params"] = _kv(args.objective_param, "--objective-param")
    if args.scorer_param is not None:
        given["scorer_params"] = _kv(args.scorer_param, "--scorer-param")
    if args.snapshot_steps is not None:
        given["snapshot_steps"] = _steps(args.snapshot_steps)
    if args.eval_steps is not None:
        given["eval_steps"] = _steps(args.eval_steps)
    if args.no_generate:
        given["generate"] = False
    if args.save_model:
        given["save_model"] = True
    try:
        return resolve_spec(**given)
    except FieldError as e:
        raise SpecError(f"{FLAGS.get(e.field, e.field)} (field '{e.field}'): {e.problem}") from None


def cmd_unlearn(args) -> int:
    from ..evaluate import format_summary
    from ..unlearn import unlearn
    from ..workdir import Workdir

    from ..distributed import launch

    spec = spec_from_args(args)
    group = launch(args.launcher)
    res = unlearn(spec, Workdir(args.workdir), progress=not (args.quiet or args.json), force=args.force)
    group.close()  # on success only: a rank that failed leaves the others to the launcher's timeout
    if not group.is_main:
        return 0
    out = {"run_id": res.run_id, "path": str(res.path), "cached": res.cached, "label": spec.label(),
           **res.summary}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        print(f"run {res.run_id} ({spec.label()}){' [cached]' if res.cached else ''} -> {res.path}")
        if "stopped_at" in res.summary:
            print(f"stopped after {res.summary['stopped_at']} steps (--stop-step): no final evaluation; its "
                  f"checkpoints are in {res.path / 'trajectory.parquet'}")
            return 0
        print(format_summary(res.summary))
        for task, acc in (res.summary.get("lmeval") or {}).items():
            print(f"lm-eval {task:24s}acc {acc if acc is None else f'{acc:.3f}'}")
    return 0


def register_sweep(sub) -> argparse.ArgumentParser:
    """Add ``tueval sweep``."""
    p = sub.add_parser("sweep", help="run a grid of unlearning runs (a local process pool or a Ray cluster)",
                       description="Expand GRID.yaml into run specs and run the missing ones over a local process "
                       "pool (one torch thread per worker) or as Ray tasks (--engine ray), with a progress bar. "
                       "Finished runs are reused; a run that fails does not stop the others: a table of the "
                       "failed specs and their errors comes at the end (exit code 1).",
                       epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", help="grid YAML file")
    p.add_argument("--workers", type=int, default=None, help="processes, >= 1 (default: the file's `workers`, "
                   "else min(cores, 2))")

    add_engine_flags(p)
    p.add_argument("--dry-run", action="store_true", help="list the specs and which are missing; run nothing")
    p.add_argument("--workdir", default=None, help="prepared workdir (default: the file's `workdir`, else ./work)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_sweep)
    return p


def cmd_sweep(args) -> int:
    import sys

    from ..config import checks, defaults
    from ..config.checks import at_least_one
    from ..config.grid import load_config
    from ..executors import RunsFailedError, engine_name, make_executor
    from ..sweep import missing, run_grid
    from ..workdir import Workdir

    g = load_config(args.grid)
    specs = g.specs()
    workers = args.workers if args.workers is not None else g.settings.get("workers")
    if workers is not None:
        flag_value(at_least_one, "--workers", workers)
    engine = flag_value(engine_name, "--engine", args.engine) if args.engine else g.settings.get("engine", "local")
    address = flag_value(checks.text, "--address", args.address) if args.address else g.settings.get("address")
    executor = make_executor(engine, workers=workers, address=address, resources=g.settings.get("resources"))
    wd = Workdir(args.workdir if args.workdir is not None else g.settings.get("workdir",
                                                                             defaults().analysis.workdir))
    if args.dry_run:
        miss = {id(s) for s in missing(specs, wd)}
        for s in specs:
            print(f"{'missing ' if id(s) in miss else 'done    '} {s.label()} seed={s.seed} lr={s.lr:g}")
        print(f"{len(specs)} specs, {len(miss)} missing")
        return 0
    try:
        results = run_grid(specs, wd, progress=not (args.quiet or args.json), engine=executor)
    except RunsFailedError as e:
        print(f"tueval sweep: {e}", file=sys.stderr)
        return 1
    rows = [{"run_id": r.run_id, "label": r.spec.label(), "seed": r.spec.seed, "lr": r.spec.lr,
             "forget_quality": r.summary.get("forget_quality"), "model_utility": r.summary.get("model_utility")}
            for r in results]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        import pandas as pd

        print(pd.DataFrame(rows).to_string(index=False))
    return 0


COMMANDS = {"unlearn": register_unlearn, "sweep": register_sweep}
