"""Per-run wall time and grid throughput, before vs after the speed-up, side by side on the same machine.

Usage: python benchmarks/run_speed.py --workdir WORKDIR [--repeats 3] [--quick] [--no-grid]
       -> benchmarks/run_speed.md

1. Per-run wall time: each repeat starts one worker process per code (the base revision's via PYTHONPATH, this
   checkout's), alternating; a worker does one untimed warm-up run, then times ``unlearn`` (train + full
   evaluation + run folder) of default GA and NPO runs (seeds 0 and 1, ``force``), the way a sweep worker runs
   them. The new code runs twice: with the base's generation length (64 new tokens: the same work) and with its
   default (``max_new_tokens`` 200, TOFU's). The per-example tables of the same spec are compared, old vs new@64.
2. Grid throughput: ``tueval sweep`` with 2 workers on a GA-heavy grid (GA: uniform base, TokenUnlearn hard with
   random_k/bottom_k, TokenUnlearn soft with permuted; NPO: uniform base; 6 seeds = 42 runs, ``--quick``: 2 seeds
   = 14 runs) on a fresh copy of the workdir, old then new, runs per minute of wall time."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _base  # noqa: E402

GRID = """objectives: [ga, npo]
seeds: {seeds}
methods:
  - {{scorer: uniform, mode: none}}
  - {{scorer: tokenunlearn, mode: hard, ratio: 0.3, objectives: [ga], controls: [null, random_k, bottom_k]}}
  - {{scorer: tokenunlearn, mode: soft, objectives: [ga], controls: [null, permuted]}}
"""


def worker(args) -> None:
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from tueval.spec import RunSpec
    from tueval.unlearn import unlearn
    from tueval.workdir import Workdir

    wd = Workdir(args.workdir)
    extra = {}
    if args.max_new_tokens and "max_new_tokens" in {f.name for f in dataclasses.fields(RunSpec)}:
        extra["max_new_tokens"] = int(args.max_new_tokens)
    t = time.perf_counter()
    unlearn(RunSpec(objective="ga", seed=1000, **extra), wd, progress=False, force=True)
    out = {"first run in a process": time.perf_counter() - t, "runs": []}
    for seed in (0, 1):
        for obj in ("ga", "npo"):
            t = time.perf_counter()
            r = unlearn(RunSpec(objective=obj, seed=seed, **extra), wd, progress=False, force=True)
            out["runs"].append({"objective": obj, "seed": seed, "wall_s": time.perf_counter() - t,
                                "train_s": r.summary.get("train_s"), "path": str(r.path)})
    print(json.dumps(out))


def compare_runs(a: Path, b: Path) -> tuple[float, int, int]:
    """Two runs' evaluation tables: the max absolute difference over every numeric per-example value except the
    ROUGE values of rows whose greedy texts differ, and how many of the generated texts differ (of how many)."""
    import numpy as np
    import pandas as pd

    worst, n_diff, n = 0.0, 0, 0
    for f in sorted((a / "eval").glob("*.parquet")):
        A, B = pd.read_parquet(f), pd.read_parquet(b / "eval" / f.name)
        same_text = np.ones(len(A), dtype=bool)
        if "generated_text" in A:
            same_text = np.array([list(x) == list(y) for x, y in zip(A["generated_text"], B["generated_text"])])
            n_diff, n = n_diff + int((~same_text).sum()), n + len(A)
        for c in A.columns:
            if c in ("example_id", "split", "generated_text"):
                continue
            X = np.asarray(A[c].tolist(), dtype=float)
            Y = np.asarray(B[c].tolist(), dtype=float)
            d = np.abs(X - Y)
            if "rouge" in c.lower():
                d = d[same_text]
            worst = max(worst, float(np.nanmax(d)) if d.size else 0.0)
    return worst, n_diff, n


def sweep(code: Path, wd: Path, grid: Path, workers: int = 2) -> float:
    """Wall seconds of ``tueval sweep GRID --workers N`` run with ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code), "TOKENIZERS_PARALLELISM": "false"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from tueval.cli import main; sys.exit(main())", "sweep",
                    str(grid), "--workdir", str(wd), "--workers", str(workers), "--quiet"], check=True,
                   cwd=tempfile.gettempdir(), env=env, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repeat; the 14-run grid")
    ap.add_argument("--no-grid", action="store_true", help="per-run wall time only")
    ap.add_argument("--base", default=_base.BASE_REV)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-new-tokens", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    repeats = 1 if args.quick else args.repeats
    old_code, new_code = _base.base_code(args.base), _base.ROOT
    arms = {"old": (old_code, ""), "new@64": (new_code, "64"), "new": (new_code, "")}
    tmp = Path(tempfile.mkdtemp(prefix="tueval_speed_"))
    wds = {k: _base.fresh_workdir(Path(args.workdir), tmp / k.replace("@", "_")) for k in arms}
    loads = [_base.load_average()]
    res: dict[str, list[dict]] = {k: [] for k in arms}
    script = Path(__file__).resolve()
    for _ in range(repeats):
        for k, (code, mnt) in arms.items():
            res[k].append(_base.run_worker(script, code, ["--workdir", str(wds[k]), "--max-new-tokens", mnt]))
            loads.append(_base.load_average())
    rows, meds = [], {}
    for k in arms:
        for obj in ("ga", "npo"):
            w = [r["wall_s"] for rep in res[k] for r in rep["runs"] if r["objective"] == obj]
            t = [r["train_s"] for rep in res[k] for r in rep["runs"] if r["objective"] == obj]
            meds[k, obj] = statistics.median(w)
            meds[k, obj, "train"] = statistics.median(t)
        meds[k, "first"] = statistics.median(rep["first run in a process"] for rep in res[k])
    for k in arms:
        rows.append(f"| {k} | {meds[k, 'ga']:.2f} | {meds[k, 'ga', 'train']:.2f} | {meds[k, 'npo']:.2f} | "
                    f"{meds[k, 'npo', 'train']:.2f} | {meds[k, 'first']:.2f} | "
                    f"{meds[k, 'ga'] / meds['old', 'ga']:.2f} | {meds[k, 'npo'] / meds['old', 'npo']:.2f} |")
    diffs = [compare_runs(Path(a["path"]), Path(b["path"])) for a, b in zip(res["old"][-1]["runs"],
                                                                           res["new@64"][-1]["runs"])]
    body = ("## Per-run wall time (train + full evaluation + run folder; warm worker process)\n\n"
            f"Medians over {repeats} interleaved repeat(s) x 2 seeds. Load average during the runs: "
            f"{', '.join(loads)}.\n\n| code | GA s | GA train s | NPO s | NPO train s | first run in a process s | "
            "GA new/old | NPO new/old |\n|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) +
            f"\n\nSame spec, old vs new@64: max |difference| over every per-example value of every table "
            f"(ROUGE only where the greedy texts are equal): {max(d[0] for d in diffs):.1e}; generated texts that "
            f"differ: {sum(d[1] for d in diffs)} of {sum(d[2] for d in diffs)}.\n")
    if not args.no_grid:
        seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4, 5]
        grid = tmp / "grid.yaml"
        grid.write_text(GRID.format(seeds=seeds))
        n_runs = 7 * len(seeds)
        g = {}
        gloads = [_base.load_average()]
        for k, code in (("old", old_code), ("new", new_code)):
            g[k] = sweep(code, _base.fresh_workdir(Path(args.workdir), tmp / f"grid_{k}"), grid)
            gloads.append(_base.load_average())
        body += (f"\n## Grid throughput (`tueval sweep`, 2 workers, {n_runs} runs: 6/7 GA)\n\nLoad average: "
                 f"{', '.join(gloads)}.\n\n| code | wall s | runs/min |\n|---|---:|---:|\n" +
                 "\n".join(f"| {k} | {v:.0f} | {n_runs / v * 60:.1f} |" for k, v in g.items()) +
                 f"\n\nThroughput new/old: {g['old'] / g['new']:.2f}x.\n\nThe grid:\n\n```yaml\n"
                 f"{GRID.format(seeds=seeds)}```\n")
    head = (f"# Per-run wall time and grid throughput, old vs new code\n\nCommand: `python benchmarks/run_speed.py "
            f"--workdir {args.workdir}{' --quick' if args.quick else f' --repeats {repeats}'}"
            f"{' --no-grid' if args.no_grid else ''}` (old = revision {args.base} via PYTHONPATH; new = this "
            "checkout; new@64 = new with the old generation length).\n\n")
    out = Path(__file__).with_name("run_speed.md")
    out.write_text(head + body)
    print(out.read_text())


if __name__ == "__main__":
    main()
