"""`--engine ray` on a local Ray cluster (2 CPUs, nothing beyond this machine): the same run folders and rows as
the local pool, a killed worker retried from its checkpoint, the same spec submitted twice computed once."""
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.test_executors import ROOT, assert_intact, assert_same_rows, killed_spec, killer_module, run_files
from tueval.spec import RunSpec

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster of 2 CPUs whose workers can import the test plugin (and see its kill marker)."""
    plugins = killer_module(tmp_path_factory.mktemp("plugins"))
    marker = plugins / "killed"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)]),
                                       "TUEVAL_TEST_KILL_MARKER": str(marker)}})
    yield {"plugins": plugins, "marker": marker}
    ray.shutdown()


def _copy(wd, dst: Path):
    from tueval.workdir import Workdir

    shutil.copytree(wd.root, dst, ignore=shutil.ignore_patterns("runs", "analyses"))
    return Workdir(dst)


GRID = {"objectives": ["ga"], "methods": [{"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3}],
        "controls": [None, "random_k"], "seeds": [0], "fixed": {"epochs": 1, "batch_size": 8, "generate": False}}


def test_a_grid_on_ray_gives_the_local_pools_run_folders_and_rows(cluster, small_workdir, tmp_path):
    from tueval.sweep import expand_grid, run_grid

    specs = expand_grid(GRID)
    local, remote = _copy(small_workdir, tmp_path / "local"), _copy(small_workdir, tmp_path / "ray")
    a = run_grid(specs, local, workers=2, progress=False, engine="local")
    b = run_grid(specs, remote, progress=False, engine="ray")
    assert [r.run_id for r in a] == [r.run_id for r in b] and len({r.run_id for r in a}) == len(specs)
    names = lambda wd: sorted(p.name for p in (wd.root / "runs").iterdir() if not p.name.startswith("."))  # noqa
    assert names(local) == names(remote) == sorted(r.run_id for r in a)
    for ra, rb in zip(a, b):
        files = lambda p: sorted(f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file())  # noqa
        assert files(ra.path) == files(rb.path)
        assert_same_rows(ra.path, rb.path)
        sa, sb = ra.path / "spec.json", rb.path / "spec.json"
        strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "provenance"}  # noqa
        assert strip(sa) == strip(sb)
    again = run_grid(specs, remote, progress=False, engine="ray")
    assert all(r.cached for r in again), "finished runs are skipped"


# the local engine's retry: test_executors.py::test_local_pool_retries_a_killed_worker_and_resumes_from_its_checkpoint
def test_a_killed_ray_worker_is_retried_and_resumes_from_its_checkpoint(cluster, small_workdir, tmp_path,
                                                                       monkeypatch):
    from tueval.executors.ray import RayExecutor
    from tueval.unlearn import run_id, unlearn

    monkeypatch.syspath_prepend(str(cluster["plugins"]))  # the driver resolves the plugin scorer too
    monkeypatch.setenv("TUEVAL_TEST_KILL_MARKER", str(cluster["marker"]))
    wd = _copy(small_workdir, tmp_path / "wd")
    spec = killed_spec()
    rdir = wd.root / "runs" / run_id(spec, wd)
    cluster["marker"].unlink(missing_ok=True)
    assert RayExecutor(retries=2).run([spec], wd, progress=False) == []
    assert cluster["marker"].exists(), "the worker was killed mid-run"
    assert_intact(rdir)
    log = pd.read_parquet(rdir / "log.parquet")
    killed = {k: v.copy() for k, v in run_files(rdir).items()}
    fresh = unlearn(spec, wd, progress=False, force=True)  # uninterrupted: the marker is there
    assert fresh.path == rdir and len(log) == fresh.summary["steps"] > 2
    for name, table in run_files(rdir).items():
        pd.testing.assert_frame_equal(killed[name], table, obj=name)


# the local engine's: test_executors.py::test_the_same_spec_launched_twice_at_once_is_computed_once
@pytest.mark.slow
def test_one_spec_submitted_twice_at_once_computes_once(cluster, small_workdir, tmp_path):
    from tueval.executors.ray import RayExecutor
    from tueval.unlearn import run_id, unlearn

    wd = _copy(small_workdir, tmp_path / "wd")
    spec = RunSpec(objective="npo", epochs=1, batch_size=8, seed=7, generate=False)
    ex = RayExecutor()
    assert ex.run([spec, spec], wd, progress=False) == []  # two tasks at once on 2 CPUs
    assert ex.counts == {"computed": 1, "cached": 1, "failed": 0}, "one computed, the other waited and read it"
    rdir = wd.root / "runs" / run_id(spec, wd)
    assert_intact(rdir)
    first = run_files(rdir)
    mtime = (rdir / "done.json").stat().st_mtime_ns
    assert unlearn(spec, wd, progress=False).cached and (rdir / "done.json").stat().st_mtime_ns == mtime
    fresh = _copy(small_workdir, tmp_path / "fresh")
    assert_same_rows(rdir, unlearn(spec, fresh, progress=False).path)
    assert list(first) == list(run_files(rdir))
