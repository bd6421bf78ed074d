"""``tueval unlearn`` (one run, cached by its spec) and ``tueval sweep GRID.yaml`` (a grid over a process pool)."""
from __future__ import annotations

import argparse
import json

from ..errors import SpecError

UNLEARN_DESC = """Run one unlearning run: scorer -> weighting (+ control) -> objective on the workdir's forget split,
then evaluate it (TOFU metrics, MIA) against the retain model. The run folder WORKDIR/runs/<hash> is named by the
hash of the full spec; a finished run is never recomputed, a killed one resumes from its last checkpoint."""

UNLEARN_EPILOG = """examples:
  tueval unlearn --objective ga                                   # sequence-level gradient ascent
  tueval unlearn --objective npo --scorer tokenunlearn --mode hard --ratio 0.3 --seed 3
  tueval unlearn --objective npo --scorer tokenunlearn --mode hard --ratio 0.3 --control random_k --seed 3
  tueval unlearn --objective ga --scorer my_module:my_scorer --mode soft --json
  tueval unlearn --objective ga --lmeval-tasks tueval_forget_mc,tueval_retain_mc   # + lm-eval MC accuracy
scorers: tokenunlearn etw etw_static atwu_proto atwu_sat tif wga satimp tnpo uniform random oracle anti
objectives: ga graddiff npo simnpo idkpo tpo rmu
controls: random_k permuted magnitude_matched magnitude_matched_grad bottom_k"""

SWEEP_EPILOG = """A grid file is YAML; plural keys are crossed, e.g.
  objectives: [ga, npo]
  methods:                       # (or scorers: [...] and modes: [...])
    - {scorer: tokenunlearn, mode: hard, ratio: 0.3}
    - {scorer: etw, mode: soft}
  controls: [null, random_k, permuted, magnitude_matched]
  seeds: [0, 1, 2, 3, 4, 5]
  lrs: [0.001]
  fixed: {epochs: 5, batch_size: 16}
Any RunSpec field may go under `fixed` (or in a `methods`/`include` entry); a list there is ONE value, not an
axis: e.g. `fixed: {lmeval_tasks: [tueval_forget_mc, tueval_utility_mc]}` (or the string
"tueval_forget_mc,tueval_utility_mc") adds lm-eval MC accuracies to every run of the grid."""


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


def register_unlearn(sub) -> argparse.ArgumentParser:
    """Add ``tueval unlearn``."""
    from ..spec import RunSpec

    d = RunSpec()
    p = sub.add_parser("unlearn", help="one unlearning run (cached by its spec, resumable)", description=UNLEARN_DESC,
                       epilog=UNLEARN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", default=d.objective, help=f"objective name (default {d.objective})")
    p.add_argument("--scorer", default=d.scorer, help="token scorer name or module:function (default uniform)")
    p.add_argument("--mode", default=d.mode, choices=["hard", "soft", "none"],
                   help="hard = top-ratio tokens per sequence; soft = scores scaled to mean 1; none = scores as "
                   "weights (default none)")
    p.add_argument("--ratio", type=float, default=d.ratio, help="fraction kept by hard selection, in (0, 1]")
    p.add_argument("--control", default=None, help="replace the method's weights by a control built from them")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: tueval.defaults.FIXED)")
    p.add_argument("--epochs", type=int, default=None, help="epochs over the forget split (default: FIXED)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--normaliser", default="auto", choices=["auto", "weight_sum", "tokens"])
    p.add_argument("--objective-param", action="append", metavar="KEY=VALUE", help="e.g. beta=0.2 (repeatable)")
    p.add_argument("--scorer-param", action="append", metavar="KEY=VALUE", help="e.g. alpha=0.5 (repeatable)")
    p.add_argument("--save-model", action="store_true", help="also save the unlearned model in the run folder")
    p.add_argument("--no-generate", action="store_true", help="skip greedy generation (no ROUGE)")
    p.add_argument("--lmeval-tasks", default="", metavar="TASK[,TASK...]",
                   help="also score the unlearned model with lm-eval (offline) on these comma-separated tasks, "
                   "e.g. tueval_forget_mc,tueval_retain_mc,tueval_utility_mc (the workdir's exported "
                   "multiple-choice tasks); writes eval/lmeval.parquet and summary 'lmeval' {task: acc}. "
                   "Part of the run's spec (a different run id); default none")
    p.add_argument("--force", action="store_true", help="recompute even if the run is finished")
    p.add_argument("--workdir", default="work")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_unlearn)
    return p


def cmd_unlearn(args) -> int:
    from ..defaults import FIXED
    from ..evaluate import format_summary
    from ..spec import RunSpec
    from ..unlearn import unlearn
    from ..weighting import check_ratio
    from ..workdir import Workdir

    check_ratio(args.ratio)
    spec = RunSpec(objective=args.objective, scorer=args.scorer, mode=args.mode, ratio=args.ratio,
                   control=args.control, seed=args.seed, lr=args.lr or FIXED["lr"],
                   epochs=args.epochs or FIXED["epochs"], batch_size=args.batch_size or FIXED["batch_size"],
                   normaliser=args.normaliser, objective_params=_kv(args.objective_param, "--objective-param"),
                   scorer_params=_kv(args.scorer_param, "--scorer-param"), generate=not args.no_generate,
                   save_model=args.save_model, lmeval_tasks=args.lmeval_tasks)
    res = unlearn(spec, Workdir(args.workdir), progress=not (args.quiet or args.json), force=args.force)
    out = {"run_id": res.run_id, "path": str(res.path), "cached": res.cached, "label": spec.label(),
           **res.summary}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        print(f"run {res.run_id} ({spec.label()}){' [cached]' if res.cached else ''} -> {res.path}")
        print(format_summary(res.summary))
        for task, acc in (res.summary.get("lmeval") or {}).items():
            print(f"lm-eval {task:24s}acc {acc if acc is None else f'{acc:.3f}'}")
    return 0


def register_sweep(sub) -> argparse.ArgumentParser:
    """Add ``tueval sweep``."""
    p = sub.add_parser("sweep", help="run a grid of unlearning runs over a process pool",
                       description="Expand GRID.yaml into run specs and run the missing ones over a process pool "
                       "(one torch thread per worker), with a progress bar. Finished runs are reused.",
                       epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", help="grid YAML file")
    p.add_argument("--workers", type=int, default=None, help="processes (default: min(cores, 2))")
    p.add_argument("--dry-run", action="store_true", help="list the specs and which are missing; run nothing")
    p.add_argument("--workdir", default="work")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_sweep)
    return p


def cmd_sweep(args) -> int:
    from ..sweep import load_grid, missing, run_grid
    from ..workdir import Workdir

    wd = Workdir(args.workdir)
    specs = load_grid(args.grid)
    if args.dry_run:
        miss = {id(s) for s in missing(specs, wd)}
        for s in specs:
            print(f"{'missing ' if id(s) in miss else 'done    '} {s.label()} seed={s.seed} lr={s.lr:g}")
        print(f"{len(specs)} specs, {len(miss)} missing")
        return 0
    results = run_grid(specs, wd, workers=args.workers, progress=not (args.quiet or args.json))
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
