"""``tueval demo``: prepare the embedded default, run every analysis and write reports/ (the main job)."""
from __future__ import annotations

import time
from pathlib import Path

from .io import write_json



def demo_analyses() -> tuple[str, ...]:
    """The analyses of the demo in their declared order (cheap score-based ones first, the unlearning grid last)."""
    from .analysis import all_analyses

    return tuple(a.name for a in all_analyses())


def run_demo(workdir: str | Path = "work", profile: str = "default", reports: str | Path = "reports",
             quiet: bool = False, analyses: tuple[str, ...] | None = None, engine: str | None = None,
             address: str | None = None) -> int:
    """Run the main job end to end (``analyses``: default every installed analysis) with the unlearning runs on
    ``engine`` (default: the configured one, ``local``) at ``address``; returns the exit code."""
    import torch

    from .analysis import AnalysisConfig, get_analysis
    from .config import defaults
    from .defaults import SEEDS
    from .prepare import prepare
    from .report.foundation import write_foundation_report
    from .report.index import write_index

    torch.set_num_threads(min(2, torch.get_num_threads()))
    reports = Path(reports)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    prep_profile = "small" if profile == "small" else "default"
    wd = prepare(workdir, prep_profile, progress=not quiet, quiet=quiet)
    timings["prepare_s"] = time.perf_counter() - t0
    cmd = f"tueval demo --workdir {workdir} --profile {profile}"
    _lmeval(wd, reports, quiet)
    write_foundation_report(wd, reports, command=cmd)
    timings["foundation_s"] = time.perf_counter() - t0 - timings["prepare_s"]
    analysis_profile = {"small": "quick", "default": "default", "grid": "grid", "full": "full"}[profile]
    seeds = tuple(SEEDS) if profile != "small" else (0, 1)
    execution = defaults().analysis
    run_on = {"engine": engine or execution.engine, "address": address or execution.address,
              "resources": dict(execution.resources)}
    for name in demo_analyses() if analyses is None else analyses:
        t = time.perf_counter()
        if not quiet:
            print(f"[tueval demo] analysis '{name}' ...", flush=True)
        analysis = get_analysis(name)
        # the overrides are sized for the demo budget (benchmarks/README.md); the small profile is small already
        over = analysis.demo_overrides if profile in ("default", "grid") else {}
        cfg = AnalysisConfig(workdir=wd, reports=reports, seeds=seeds, compute=True,
                             profile=over.get("profile", analysis_profile), scorers=over.get("scorers", ()),
                             progress=not quiet, **run_on)
        analysis(cfg)
        timings[f"{name}_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    write_json(reports / "demo_timings.json", {"profile": profile, "timings": timings})
    write_index(reports, workdir=workdir)  # after the timings: the index states this run's time
    if not quiet:
        print(f"[tueval demo] done in {timings['total_s']:.0f} s; see {reports / 'README.md'}")
    return 0


def _lmeval(wd, reports: Path, quiet: bool) -> None:
    """lm-eval multiple-choice accuracies of both models, into reports/foundation/lmeval.csv."""
    import pandas as pd

    from .evaluation.lmeval import evaluate_workdir_mc
    from .io import write_csv

    rows = []
    for which in ("target", "retain"):
        res = evaluate_workdir_mc(wd.root, which, reuse=True)
        res = res.get("results", res)
        for task, m in res.items():
            if isinstance(m, dict) and "acc" in m:
                rows.append({"model": which, "task": task, "acc": m["acc"], "acc_stderr": m.get("acc_stderr"),
                             "n": m.get("n")})
    if rows:
        write_csv(reports / "foundation" / "lmeval.csv", pd.DataFrame(rows))
        if not quiet:
            print(pd.DataFrame(rows).to_string(index=False))
