"""Grid throughput: `--engine ray` (a local Ray cluster of 2 CPUs, 1 CPU per run) against the local process pool
(2 workers) on the same demo-like grid, each measurement a fresh process on a fresh copy of the workdir, in the
order pool, ray, ray, pool (ABBA: drift in the machine's load cancels in the means).

Usage: python benchmarks/ray_throughput.py [--quick | --grid demo] [--workdir /tmp/wd_small] [--reps 2]
Writes benchmarks/ray_throughput.md (goal: ray <= 1.1 x the pool's wall time on the demo grid). ``--quick``: 4
runs, one measurement each (about 3 min on an idle 2-core machine); the default: the 12 runs of a controls-like
grid (GA and NPO x TokenUnlearn hard 0.3, its random_k control and the uniform base x 2 seeds), 2 measurements
each; ``--grid demo``: the demo's controls grid (every preset, its controls and bases, the analysis' seeds and
shared settings, trajectories included), on the small workdir, 2 measurements each.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRID = {"methods": [{"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3}],
        "controls": [None, "random_k", "uniform"], "fixed": {"epochs": 3, "generate": True}}


def grid(quick: bool) -> dict:
    """The benchmark grid: controls-like; quick is GA with 2 arms x 2 seeds."""
    if quick:
        return {**GRID, "objectives": ["ga"], "controls": [None, "uniform"], "seeds": [0, 1]}
    return {**GRID, "objectives": ["ga", "npo"], "seeds": [0, 1]}


def demo_specs(workdir: str) -> list:
    """The specs of the demo's controls grid (analysis profile ``default``, its seeds and shared settings)."""
    from tueval import defaults
    from tueval.analysis import AnalysisConfig
    from tueval.analysis.grid import grid_cells, unique_specs
    from tueval.workdir import Workdir
    from tueval_analyses.controls import grid_settings

    st = grid_settings(AnalysisConfig(workdir=Workdir(workdir), profile="default"))
    return unique_specs(grid_cells(st["objectives"], st["methods"], st["controls"], defaults.SEEDS, st["fixed"],
                                   st["ratios"], st["lrs"], st["base_lr_factors"], st["control_lr_factors"]))


def one(engine: str, workdir: str, quick: bool, which: str = "small") -> dict:
    """Time one sweep in this process: the whole call (pool start or Ray cluster start included) and the runs."""
    t0 = time.perf_counter()
    from tueval.executors import make_executor
    from tueval.sweep import expand_grid, run_grid
    from tueval.workdir import Workdir

    specs = demo_specs(workdir) if which == "demo" else expand_grid(grid(quick))
    ex = make_executor(engine, workers=2)
    start_s = 0.0
    if engine == "ray":
        t = time.perf_counter()
        import ray

        from tueval.executors.ray import NICENESS_ENV

        os.environ.setdefault(NICENESS_ENV, "0")  # as tueval's own local cluster: the pool's priority, not nice 15
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        start_s = time.perf_counter() - t
    t = time.perf_counter()
    run_grid(specs, Workdir(workdir), progress=False, engine=ex)
    runs_s = time.perf_counter() - t
    return {"engine": engine, "runs": len(specs), "runs_s": runs_s, "cluster_start_s": start_s,
            "total_s": time.perf_counter() - t0, "computed": ex.counts["computed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 runs, one measurement per engine")
    ap.add_argument("--grid", choices=["small", "demo"], default="small",
                    help="small: the 12-run controls-like grid; demo: the demo's controls grid")
    ap.add_argument("--workdir", default=None, help="a prepared small workdir (default: prepare one in a temp dir)")
    ap.add_argument("--reps", type=int, default=None, help="measurements per engine (default 2; 1 with --quick)")
    ap.add_argument("--one", choices=["local", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "ray_throughput.md"))
    ap.add_argument("--note", default="", help="a note on the machine's load, printed beside the load averages")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.workdir, args.quick, args.grid)))
        return
    from tueval.prepare import prepare

    tmp = Path(tempfile.mkdtemp(prefix="tueval_raybench_"))
    base = args.workdir or str(prepare(tmp / "base", "small", progress=False, quiet=True).root)
    reps = args.reps or (1 if args.quick else 2)
    order = ["local", "ray"] if reps == 1 else (["local", "ray", "ray", "local"] * ((reps + 1) // 2))[: 2 * reps]
    rows, loads = [], []
    for i, engine in enumerate(order):
        wd = tmp / f"wd{i}"
        shutil.copytree(base, wd, ignore=shutil.ignore_patterns("runs", "analyses"))
        loads.append(os.getloadavg()[0])
        cmd = [sys.executable, __file__, "--one", engine, "--workdir", str(wd), "--grid", args.grid] + (
            ["--quick"] if args.quick else [])
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(rows[-1], f"load {loads[-1]:.1f}", flush=True)
        shutil.rmtree(wd)
    shutil.rmtree(tmp, ignore_errors=True)
    write(rows, loads, args, Path(args.out))


def write(rows: list[dict], loads: list[float], args, out: Path) -> None:
    """The results table and the ratios (means over the measurements of each engine)."""
    mean = lambda e, k: statistics.mean(r[k] for r in rows if r["engine"] == e)  # noqa: E731
    ratio_total = mean("ray", "total_s") / mean("local", "total_s")
    ratio_runs = mean("ray", "runs_s") / mean("local", "runs_s")
    cmd = "python benchmarks/ray_throughput.py" + (" --quick" if args.quick else "") + (
        " --grid demo" if args.grid == "demo" else "") + (f" --reps {args.reps}" if args.reps else "")
    lines = [
        "# Grid throughput: Ray vs the local process pool", "",
        f"Command: `{cmd}` (each measurement a fresh process on a fresh copy of a small workdir; order "
        f"{', '.join(r['engine'] for r in rows)}). Machine: {os.cpu_count()} cores, no GPU; 1-minute load average "
        f"at the start of each measurement: {', '.join(f'{x:.1f}' for x in loads)}"
        + (f" ({args.note})." if args.note else "."),
        "", f"Grid: {rows[0]['runs']} unlearning runs ("
        + ("the demo's controls grid: every preset with its controls and bases, the analysis' seeds, checkpoint "
           "evaluations every epoch; " if args.grid == "demo" else "")
        + "3 epochs over forget10 of the small profile + full "
        "evaluation each); local: 2 worker processes; ray: `ray.init(num_cpus=2)`, 1 CPU per run, workers at nice 0 "
        "(`RAY_worker_niceness=0`, what tueval sets for a local cluster: Ray's default of nice 15 let the other jobs "
        "on this machine take the cores and made the same grid 2.41x slower).", "",
        "| # | engine | runs computed | cluster start s | runs s | total s |", "|---|---|---|---|---|---|"]
    lines += [f"| {i + 1} | {r['engine']} | {r['computed']} | {r['cluster_start_s']:.1f} | {r['runs_s']:.1f} | "
              f"{r['total_s']:.1f} |" for i, r in enumerate(rows)]
    lines += ["", f"**Ray / pool wall time: {ratio_total:.2f} (whole sweep, Ray's cluster start included), "
              f"{ratio_runs:.2f} (the runs alone).** Goal: <= 1.1.", ""]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
