"""``tueval demo``: prepare the embedded default, run every analysis and write reports/ (the main job)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .io import write_json

# analyses of the demo, in order (cheap score-based ones first, the unlearning grid last)
DEMO_ANALYSES = ("alignment", "sanity", "intervention", "snr", "controls", "retrain")
# per-analysis overrides of the default demo profile, sized by measurement (see benchmarks/README.md)
DEMO_OVERRIDES = {"retrain": {"profile": "quick", "scorers": ("tokenunlearn",)}}


def run_demo(workdir: str | Path = "work", profile: str = "default", reports: str | Path = "reports",
             quiet: bool = False, analyses: tuple[str, ...] = DEMO_ANALYSES) -> int:
    """Run the main job end to end; returns the exit code."""
    import torch

    from .analysis import AnalysisConfig, get_analysis
    from .defaults import SEEDS
    from .foundation import write_foundation_report
    from .index import write_index
    from .prepare import prepare

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
    for name in analyses:
        t = time.perf_counter()
        if not quiet:
            print(f"[tueval demo] analysis '{name}' ...", flush=True)
        over = DEMO_OVERRIDES.get(name, {}) if profile in ("default", "grid") else {}
        cfg = AnalysisConfig(workdir=wd, reports=reports, seeds=seeds, compute=True,
                             profile=over.get("profile", analysis_profile), scorers=over.get("scorers", ()),
                             progress=not quiet)
        get_analysis(name)(cfg)
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
