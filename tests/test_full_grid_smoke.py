"""Smoke test of `--profile full`: every scorer family on every objective, and every control, takes a real training
step (scorer -> weighting -> objective -> backward) on the small workdir with finite losses (it found that the
engine never attached IdkPO's refusal answers). The fast suite steps a covering set (each objective, method and
control once, seconds); the slow suite every other combination (about a minute on 2 cores)."""
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


def _cover(specs):
    """The first spec that brings a new objective, method (scorer and mode) or control: every one of them at least
    once, in a dozen steps."""
    seen, keep = set(), []
    for s in specs:
        keys = {("objective", s.objective), ("method", s.scorer, s.mode), ("control", s.control)}
        if not keys <= seen:
            keep.append(s)
            seen |= keys
    return keep


# the fast suite takes a step with every objective, method and control; the slow one with every other combination
@pytest.mark.parametrize("part", ["cover", pytest.param("rest", marks=pytest.mark.slow)])
def test_every_full_grid_combination_takes_a_finite_step(small_workdir, part):
    specs = _specs(small_workdir)
    assert len(specs) > 100
    cover = _cover(specs)
    assert {s.objective for s in cover} == {s.objective for s in specs}
    assert {(s.scorer, s.mode) for s in cover} == {(s.scorer, s.mode) for s in specs}
    assert {s.control for s in cover} == {s.control for s in specs}
    specs = cover if part == "cover" else [s for s in specs if s not in cover]
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
