"""Helpers of the before/after benchmarks: the code of a base revision in a temporary folder, worker
subprocesses that import either code, machine load."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_REV = "f579162"
"""The last commit before the evaluation speed-up (the "old" code of the before/after benchmarks)."""


def committed_csv(rev: str, rel: str):
    """The CSV at path ``rel`` (from the repository root) as committed at ``rev``, or None where it is not there."""
    import io

    import pandas as pd

    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{rel}"], capture_output=True, text=True)
    return None if shown.returncode else pd.read_csv(io.StringIO(shown.stdout))


def base_code(rev: str = BASE_REV) -> Path:
    """A temporary folder holding ``tueval/`` and ``tueval_analyses/`` of revision ``rev`` (git archive; the
    repository is not touched): the installed entry points name ``tueval_analyses``, which must be the revision's
    own, not this checkout's."""
    out = Path(tempfile.mkdtemp(prefix="tueval_base_"))
    tree = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", rev], check=True, capture_output=True,
                          text=True).stdout.split()
    paths = [d for d in ("tueval", "tueval_analyses") if d in tree]
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *paths], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=data, check=True)
    return out


def run_worker(script: Path, code: Path, args: list[str], timeout: float = 3600) -> dict:
    """Run ``script --worker ARGS`` with ``code`` first on the import path (cwd outside the repository, so that
    ``tueval`` comes from ``code``); returns the JSON object it prints last."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([sys.executable, str(script), "--worker", *args], cwd=tempfile.gettempdir(), env=env,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"worker failed ({code}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def timed(fn) -> tuple[float, object]:
    """(wall seconds, result) of one call of ``fn``."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def load_average() -> str:
    """The machine load (``uptime``'s load averages)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def fresh_workdir(src: Path, dst: Path) -> Path:
    """A copy of the prepared workdir ``src`` without its runs (and without analysis caches)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("runs", "analyses"))
    return dst


def peak_gflops(repeats: int = 5) -> float:
    """Best fp32 matmul throughput of this process (GFLOP/s) over square products of 512 and 1024."""
    import torch

    best = 0.0
    for n in (512, 1024):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def count_flops(fn) -> float:
    """Matmul FLOPs executed by ``fn()`` (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def demo_pair_trajectories(workdir: str | Path, pairs: int = 2, extra: dict | None = None):
    """Per model pair of the demo grid (analysis profile ``default``, read from the run cache; nothing is trained):
    (pair, its workdir, the grid's frontier runs, their trajectories, the retain model's forget probability)."""
    from dataclasses import replace

    from tueval.analysis.controls_grid import grid_runs, grid_settings
    from tueval.analysis.matched_tables import frontier_runs, load_trajectories
    from tueval.analysis.registry import AnalysisConfig
    from tueval.analysis.runs import retain_reference
    from tueval.pairs import pair_workdirs
    from tueval.workdir import Workdir

    wd = Workdir(Path(workdir))
    cfg = AnalysisConfig(workdir=wd, seeds=tuple(range(7)), compute=False, progress=False, extra=extra or {})
    st = grid_settings(cfg)
    for p, w in enumerate(pair_workdirs(wd, pairs, None, progress=False, quiet=True, train=False)):
        runs = frontier_runs(grid_runs(replace(cfg, workdir=w), st))
        yield p, w, runs, load_trajectories(runs, w), retain_reference(w)["forget_prob"]
