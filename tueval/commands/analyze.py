"""``tueval analyze NAME``, ``tueval report`` and ``tueval check``: the reviewers' questions as reports."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config.schema import PROFILES
from ..errors import SpecError
from .flags import add_engine_flags, flag_value

ANALYZE_DESC = """Answer one reviewer question and write reports/<NAME>/ (report.md with the verdict table, CSVs of
every number plotted, figures as PNG and PDF). Analyses:
{analyses}
Missing unlearning runs are computed (use --no-compute to list them instead)."""


def _analyses_listing() -> str:
    from ..analysis import all_analyses

    return "\n".join(f"  {a.name:13s} {a.question}" for a in all_analyses())


def _common(p) -> None:
    from ..config import defaults

    d = defaults().analysis
    p.add_argument("--config", metavar="FILE", default=None,
                   help="grid/analysis YAML (the format of `tueval sweep FILE`): objectives, methods, controls, "
                   "fixed, ratios, lrs, seeds, scorers and the settings below; a flag given wins over the file")
    p.add_argument("--workdir", default=None, help=f"prepared workdir (default ./{d.workdir})")
    p.add_argument("--reports", default=None, help=f"report root (default ./{d.reports})")
    p.add_argument("--seeds", type=int, default=None, help=f"number of seeds, >= 1 (default {len(d.seeds)})")
    p.add_argument("--scorers", default=None, help="comma-separated scorers to analyse (default: the analysis' set)")
    p.add_argument("--profile", default=None, choices=list(PROFILES),
                   help=f"quick: CI-sized; default: demo-sized; grid: every seed-paper method on GA and NPO in the "
                   f"controls analysis (other analyses as default); full: every ratio, lr and control "
                   f"(default {d.profile})")
    p.add_argument("--workers", type=int, default=None, help="processes for unlearning runs, >= 1 (default 2)")
    p.add_argument("--alpha", type=float, default=None, help=f"significance level in (0, 1) (default {d.alpha})")
    add_engine_flags(p, d.engine)
    p.add_argument("--quiet", action="store_true")


def analysis_settings(args, grid=None):
    """The AnalysisSettings of parsed flags and an optional GridConfig: a flag given, else the file's value,
    else the default (tueval/configs/defaults.yaml); every value checked."""
    from ..config import AnalysisSettings, checks, defaults
    from ..config.checks import at_least_one, open_unit
    from ..config.schema import name_list
    from ..executors import engine_name

    d = defaults().analysis
    file = dict(grid.settings) if grid is not None else {}
    given = set(grid.given) if grid is not None else set()

    def pick(flag_val, key, default):
        return flag_val if flag_val is not None else file.get(key, default)

    seeds = (tuple(range(flag_value(at_least_one, "--seeds", args.seeds))) if args.seeds is not None else
             tuple(grid.axes["seed"]) if "seeds" in given else d.seeds)
    scorers = (flag_value(name_list, "--scorers", args.scorers) if args.scorers is not None else
               tuple(grid.axes["scorer"]) if "scorers" in given else d.scorers)
    _check_scorers(scorers)
    alpha = pick(args.alpha, "alpha", d.alpha)
    workers = pick(args.workers, "workers", d.workers)
    engine, address = pick(args.engine, "engine", d.engine), pick(args.address, "address", d.address)
    return AnalysisSettings(workdir=pick(args.workdir, "workdir", d.workdir),
                            reports=pick(args.reports, "reports", d.reports), seeds=seeds,
                            profile=pick(args.profile, "profile", d.profile),
                            alpha=flag_value(open_unit, "--alpha", alpha) if args.alpha is not None else alpha,
                            workers=(flag_value(at_least_one, "--workers", workers)
                                     if args.workers is not None else workers),
                            scorers=scorers,
                            engine=flag_value(engine_name, "--engine", engine) if args.engine else engine,
                            address=flag_value(checks.text, "--address", address) if args.address else address,
                            resources=file.get("resources", d.resources))


def _check_scorers(names) -> None:
    from ..scoring import SCORERS

    for n in names:
        try:
            SCORERS.get(n)
        except SpecError as e:
            raise SpecError(f"--scorers: {e}") from None


def _config(args, st, **extra):
    from ..analysis import AnalysisConfig
    from ..workdir import Workdir

    return AnalysisConfig(workdir=Workdir(st.workdir), reports=Path(st.reports), seeds=st.seeds,
                          compute=not getattr(args, "no_compute", False), scorers=st.scorers, alpha=st.alpha,
                          profile=st.profile, workers=st.workers, progress=not args.quiet, extra=extra,
                          cache=not getattr(args, "no_cache", False), engine=st.engine, address=st.address,
                          resources=dict(st.resources))


def register_analyze(sub):
    p = sub.add_parser("analyze", help="run one reviewer analysis and write its report",
                       description=ANALYZE_DESC.format(analyses=_analyses_listing()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="an analysis named above, module:attr, or all")
    _common(p)
    p.add_argument("--no-compute", action="store_true", help="do not run missing unlearning runs; list them")
    p.add_argument("--no-cache", action="store_true", help="recompute the per-example tables instead of reading "
                   "them from WORKDIR/analyses/ (they are keyed by the analysis settings and the workdir's models)")
    p.add_argument("--lmeval-tasks", default="", metavar="TASK[,TASK...]",
                   help="controls only: also score every run with these lm-eval tasks (e.g. tueval_forget_mc,"
                        "tueval_retain_mc,tueval_utility_mc, or 'all' for the three) and plot them; runs with tasks "
                        "are separate cached runs")
    p.add_argument("--pairs", default=None, metavar="K|DIR[,DIR...]",
                   help="replication only: the number of independently trained model pairs (default 2; pair k is "
                        "trained in WORKDIR/pairs/k/ when missing), or, for a workdir prepared from a config, the "
                        "prepared workdirs of the other pairs")
    p.add_argument("--json", action="store_true", help="print the analysis result as JSON")
    p.set_defaults(handler=cmd_analyze)


def cmd_analyze(args) -> int:
    import sys

    from ..analysis import all_analyses, get_analysis
    from ..config.checks import tasks
    from ..config.grid import SWEEP_ONLY, load_config

    builtin = [a.name for a in all_analyses()]
    names = builtin if args.name == "all" else [args.name]
    try:
        runs = {name: get_analysis(name) for name in names}  # unknown names fail before any work
    except SpecError:
        if args.name in builtin:
            raise
        raise SpecError(f"unknown analysis '{args.name}'; valid: {', '.join(builtin)}, all (or an installed or "
                        "module:function analysis)") from None
    grid = load_config(args.config) if args.config else None
    st = analysis_settings(args, grid)
    base = grid.analysis_extra() if grid is not None else {}
    if grid is not None and not args.quiet:
        unused = [k for k in SWEEP_ONLY if k in grid.given]
        if unused:
            print(f"tueval analyze: note: {grid.source}: {', '.join(unused)} only shape `tueval sweep`; the "
                  "analyses choose their own runs", file=sys.stderr)
    extra = {}
    if args.lmeval_tasks:
        extra["lmeval_tasks"] = True if args.lmeval_tasks == "all" else args.lmeval_tasks
        if args.lmeval_tasks != "all":
            flag_value(tasks, "--lmeval-tasks", args.lmeval_tasks)
    pairs = {}
    if args.pairs is not None:
        from ..pairs import pairs_setting

        v = args.pairs.strip()
        pairs["pairs"] = flag_value(pairs_setting, "--pairs", int(v) if v.isdigit() else
                                    [x.strip() for x in v.split(",") if x.strip()])
    out = {}
    for name, run in runs.items():
        own = extra if name == "controls" else pairs if name == "replication" else {}
        res = run(_config(args, st, **base, **own)) or {}
        out[name] = res
        if not args.json:
            print(f"{name}: wrote {Path(st.reports) / name / 'report.md'}")
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


def register_report(sub):
    p = sub.add_parser("report", help="write reports/README.md: each seed paper's claim and the suite's verdict",
                       description="Collect the analyses' verdict tables under REPORTS and write the index "
                       "REPORTS/README.md stating each seed paper's claim and the suite's verdict.")
    p.add_argument("--reports", default="reports")
    p.add_argument("--workdir", default="work")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from ..report.index import write_index

    path = write_index(Path(args.reports), workdir=args.workdir)
    print(f"wrote {path}")
    return 0


def register_check(sub):
    p = sub.add_parser("check", help="a scorer against the controls: exit 0 only if it beats every one",
                       description="Run the confirmatory family for ONE scorer (alignment, intervention, SNR, "
                       "trade-off) against the named controls, print the verdict table and exit 0 only when the "
                       "scorer beats every control on every confirmatory metric: the intersection-union of the one-sided "
                       "per-comparison decisions at --alpha (that claim needs no multiplicity correction; the printed "
                       "labels are Holm-adjusted over all comparisons). Usable from a user's pytest: assert subprocess.run([...]).returncode == 0.",
                       epilog="example: tueval check --scorer my_module:my_scorer --against random_k,"
                       "step_matched,uniform --seeds 8 --json")
    p.add_argument("--scorer", required=True, help="a registered scorer name or module:function")
    p.add_argument("--mode", default="hard", choices=["hard", "soft", "none"])
    p.add_argument("--ratio", type=float, default=0.3, help="fraction kept by hard selection, in (0, 1]")
    p.add_argument("--objective", default="ga")
    p.add_argument("--against", default="random_k,step_matched,uniform",
                   help="controls (default random_k,step_matched,uniform: the same number of random tokens, a "
                   "uniform update of the method's step size, the sequence-level base)")
    p.add_argument("--families", default="alignment,intervention,snr,tradeoff",
                   help="confirmatory families to run (default all four)")
    p.add_argument("--workdir", default="work")
    p.add_argument("--reports", default=None, help="also write a report folder here")
    p.add_argument("--seeds", type=int, default=8, help="seeds, >= 2 (default 8: enough for an exact one-sided "
                   "sign-flip p below alpha in every comparison, and for the Holm labels of a small family)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level in (0, 1) (default 0.05)")
    p.add_argument("--profile", default="quick", choices=["quick", "default", "full"])
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_check)


def check_check_args(args) -> None:
    """Check every ``tueval check`` flag (names through the registries) before any work."""
    from ..config import checks
    from ..config.grid import UNIFORM
    from ..objectives import OBJECTIVES

    _check_scorers([args.scorer])
    try:
        OBJECTIVES.get(args.objective)
    except SpecError as e:
        raise SpecError(f"--objective: {e}") from None
    flag_value(checks.unit_ratio, "--ratio", args.ratio)
    flag_value(lambda f, v: checks.integer(f, v, low=2), "--seeds", args.seeds)
    flag_value(checks.open_unit, "--alpha", args.alpha)
    if args.workers is not None:
        flag_value(checks.at_least_one, "--workers", args.workers)
    for c in (c.strip() for c in args.against.split(",")):
        if c != UNIFORM:
            flag_value(checks.control, "--against", c)


def cmd_check(args) -> int:
    from ..check import run_check

    check_check_args(args)
    return run_check(args)


COMMANDS = {"analyze": register_analyze, "report": register_report, "check": register_check}
