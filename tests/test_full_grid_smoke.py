"""Smoke test of `--profile full`: every scorer family on every objective, and every control, takes a real training
step (scorer -> weighting -> objective -> backward) on the small workdir with finite losses (about a minute on
2 cores; it found that the engine never attached IdkPO's refusal answers)."""
from __future__ import annotations

import math
import shutil
from dataclasses import replace

import pytest

from tueval.analysis import AnalysisConfig
from tueval.analysis.grid import METHOD_ARM, grid_cells, unique_specs
from tueval.tensorfile import load_state
from tueval.unlearn import run_id, unlearn
from tueval_analyses.controls import grid_settings


def _specs(wd):
    """Each method on each objective, plus every control on every method for GA and on one method per objective."""
    cfg = AnalysisConfig(workdir=wd, seeds=(0,), compute=False, progress=False, profile="full")
    st = grid_settings(cfg)
    cells = grid_cells(st["objectives"], st["methods"], st["controls"], (0,), st["fixed"])
    first_method = {}
    keep = []
    for c in cells:
        first_method.setdefault(c.objective, c.method)
        if c.arm == METHOD_ARM or c.objective == "ga" or c.method == first_method[c.objective]:
            keep.append(c.spec)
    return unique_specs([type("Cell", (), {"spec": s})() for s in keep])


def test_every_full_grid_combination_takes_a_finite_step(small_workdir):
    specs = _specs(small_workdir)
    assert len(specs) > 100
    failures = []
    for spec in specs:
        spec = replace(spec, epochs=1, ckpt_every=1, generate=False)
        rdir = small_workdir.root / "runs" / run_id(spec, small_workdir)
        shutil.rmtree(rdir, ignore_errors=True)
        try:
            with pytest.raises(KeyboardInterrupt):
                unlearn(spec, small_workdir, progress=False, stop_after=1)
            log = load_state(rdir / "checkpoint.safetensors")["log"]
            row = log[0]
            if not all(math.isfinite(row[k]) for k in ("total", "forget", "retain", "grad_norm")):
                failures.append(f"{spec.label()}: non-finite step {row}")
        except Exception as e:  # noqa: BLE001 - collect every failing combination
            failures.append(f"{spec.label()}: {type(e).__name__}: {e}")
        finally:
            shutil.rmtree(rdir, ignore_errors=True)
    assert not failures, "\n".join(failures)
