"""``tueval analyze NAME``, ``tueval report`` and ``tueval check``: the reviewers' questions as reports."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ANALYZE_DESC = """Answer one reviewer question and write reports/<NAME>/ (report.md with the verdict table, CSVs of
every number plotted, figures as PNG and PDF). Analyses:
{analyses}
Missing unlearning runs are computed (use --no-compute to list them instead)."""


def _analyses_listing() -> str:
    from ..analysis import all_analyses

    return "\n".join(f"  {a.name:13s} {a.question}" for a in all_analyses())


def _common(p, seeds_default: int = 6) -> None:
    p.add_argument("--workdir", default="work", help="prepared workdir (default ./work)")
    p.add_argument("--reports", default="reports", help="report root (default ./reports)")
    p.add_argument("--seeds", type=int, default=seeds_default, help=f"number of seeds (default {seeds_default})")
    p.add_argument("--scorers", default="", help="comma-separated scorers to analyse (default: the analysis' set)")
    p.add_argument("--profile", default="default", choices=["quick", "default", "grid", "full"],
                   help="quick: CI-sized; default: demo-sized; grid: issue #3 demo grid (controls: every seed-paper "
                   "method on GA and NPO; other analyses as default); full: every ratio, lr and control")
    p.add_argument("--workers", type=int, default=None, help="processes for unlearning runs (default 2)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--quiet", action="store_true")


def _config(args, **extra):
    from ..analysis import AnalysisConfig
    from ..workdir import Workdir

    return AnalysisConfig(workdir=Workdir(args.workdir), reports=Path(args.reports),
                          seeds=tuple(range(args.seeds)), compute=not getattr(args, "no_compute", False),
                          scorers=tuple(s for s in args.scorers.split(",") if s), alpha=args.alpha,
                          profile=args.profile, workers=args.workers, progress=not args.quiet, extra=extra,
                          cache=not getattr(args, "no_cache", False))


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
    p.add_argument("--json", action="store_true", help="print the analysis result as JSON")
    p.set_defaults(handler=cmd_analyze)


def cmd_analyze(args) -> int:
    from ..analysis import all_analyses, get_analysis

    names = [a.name for a in all_analyses()] if args.name == "all" else [args.name]
    extra = {}
    if args.lmeval_tasks:
        extra["lmeval_tasks"] = True if args.lmeval_tasks == "all" else args.lmeval_tasks
    out = {}
    for name in names:
        run = get_analysis(name)
        res = run(_config(args, **(extra if name == "controls" else {}))) or {}
        out[name] = res
        if not args.json:
            print(f"{name}: wrote {Path(args.reports) / name / 'report.md'}")
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
                       "scorer beats every control on every confirmatory metric (Holm-adjusted, one-sided, at "
                       "--alpha). Usable from a user's pytest: assert subprocess.run([...]).returncode == 0.",
                       epilog="example: tueval check --scorer my_module:my_scorer --against random_k,"
                       "magnitude_matched,uniform --seeds 6 --json")
    p.add_argument("--scorer", required=True, help="a registered scorer name or module:function")
    p.add_argument("--mode", default="hard", choices=["hard", "soft", "none"])
    p.add_argument("--ratio", type=float, default=0.3)
    p.add_argument("--objective", default="ga")
    p.add_argument("--against", default="random_k,magnitude_matched,uniform",
                   help="controls (default random_k,magnitude_matched,uniform)")
    p.add_argument("--families", default="alignment,intervention,snr,tradeoff",
                   help="confirmatory families to run (default all four)")
    p.add_argument("--workdir", default="work")
    p.add_argument("--reports", default=None, help="also write a report folder here")
    p.add_argument("--seeds", type=int, default=8, help="seeds (default 8: with an exact sign-flip test and Holm "
                   "over the family, fewer seeds cannot reach p < alpha)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--profile", default="quick", choices=["quick", "default", "full"])
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_check)


def cmd_check(args) -> int:
    from ..check import run_check

    return run_check(args)


COMMANDS = {"analyze": register_analyze, "report": register_report, "check": register_check}
