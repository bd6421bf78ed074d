"""Executors: the engine setting (flags, grid files, analyses), the failure table, the local pool retrying a
killed worker from its checkpoint, and one spec launched twice at once computing once."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tueval.errors import SpecError
from tueval.executors import EXECUTORS, Executor, Failure, RunsFailedError, current_executor, using
from tueval.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]

#: a plugin scorer (uniform weights) that kills its own process at step 2 the first time it gets there
KILLER = textwrap.dedent('''
    import os, signal

    def killer(model, batch, context):
        marker = os.environ["TUEVAL_TEST_KILL_MARKER"]
        if context is not None and context.step == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return batch.answer_mask.float()
''')


def killer_module(folder: Path) -> Path:
    """``tueval_test_killer.py`` in ``folder`` (importable once ``folder`` is on the path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tueval_test_killer.py").write_text(KILLER)
    return folder


def killed_spec() -> RunSpec:
    return RunSpec(objective="ga", scorer="tueval_test_killer:killer", mode="none", epochs=1, batch_size=4,
                   ckpt_every=1, generate=False, seed=5)


def run_files(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table of a finished run: its log and its per-example rows."""
    return {p.relative_to(run_dir).as_posix(): pd.read_parquet(p) for p in sorted(run_dir.rglob("*.parquet"))}


def assert_same_rows(a: Path, b: Path) -> None:
    ta, tb = run_files(a), run_files(b)
    assert list(ta) == list(tb) and "log.parquet" in ta and "eval/forget.parquet" in ta
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], obj=name)


def assert_intact(run_dir: Path, steps: int | None = None) -> None:
    from tueval.store import RunFolder

    assert RunFolder(run_dir).is_finished()
    assert not (run_dir / "checkpoint.safetensors").exists() and not list(run_dir.rglob(".*.tmp"))
    log = pd.read_parquet(run_dir / "log.parquet")
    assert list(log.step) == list(range(len(log))) and (steps is None or len(log) == steps)
    json.loads((run_dir / "summary.json").read_text())


# ----------------------------------------------------------------------------------------------- settings
def test_engine_and_resources_are_checked_where_they_are_given(tmp_path):
    from tueval.config.grid import load_config

    ok = tmp_path / "ok.yaml"
    ok.write_text("objectives: [ga]\nengine: ray\naddress: auto\nresources: {cpus: 2, gpus: 0.5, memory: 8GiB, "
                  "custom: {A100: 1}}\n")
    g = load_config(ok)
    assert g.settings["engine"] == "ray" and g.settings["address"] == "auto"
    assert g.settings["resources"] == {"cpus": 2.0, "gpus": 0.5, "memory": 8 * 2**30, "custom": {"A100": 1.0}}
    for text, what in [("engine: spark", "'engine'"), ("resources: {cpu: 1}", "resources.cpu"),
                       ("resources: {cpus: 0}", "resources.cpus"), ("resources: {memory: lots}", "resources.memory"),
                       ("resources: [1]", "'resources'"), ("resources: {gpus: -1}", "resources.gpus")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"objectives: [ga]\n{text}\n")
        with pytest.raises(SpecError, match=r"bad\.yaml.*line 2") as e:
            load_config(bad)
        assert what in str(e.value)


@pytest.mark.parametrize("argv", [["sweep", "g.yaml", "--engine", "spark"], ["analyze", "controls", "--engine", "x"],
                                  ["demo", "--engine", "x"]])
def test_commands_refuse_an_unknown_engine(argv, tmp_path, capsys, monkeypatch):
    from tueval.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.yaml").write_text("objectives: [ga]\n")
    assert main([*argv, "--workdir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--engine" in err[0] and "local, ray" in err[0]
    assert not (tmp_path / "work").exists()


def test_importing_tueval_does_not_import_ray():
    code = ("import sys, tueval, tueval.cli, tueval.sweep, tueval.executors, tueval.analysis, tueval.distributed\n"
            "from tueval.cli import build_parser; build_parser()\n"
            "assert 'ray' not in sys.modules and 'accelerate' not in sys.modules, 'imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


class Recorder(Executor):
    """Records what it is asked to compute and fails every run (so nothing is computed)."""

    name = "recorder"
    seen: list = []

    def __init__(self, **settings):
        self.settings = settings

    def run(self, specs, wd, progress=True):
        Recorder.seen.append((self.settings, [s.seed for s in specs]))
        return [Failure(s, f"ValueError: refused seed {s.seed}", attempts=2) for s in specs]


def test_an_analysis_computes_its_runs_on_its_engine_and_failures_come_back_as_a_table(small_workdir):
    from tueval.analysis import Analysis, AnalysisConfig
    from tueval.sweep import require_runs

    EXECUTORS.register("recorder", Recorder, overwrite=True)
    Recorder.seen.clear()
    specs = [RunSpec(objective="ga", epochs=1, seed=s, lr=1.234e-4) for s in (11, 12)]
    analysis = Analysis("probe", "probe", "", run=lambda cfg: require_runs(specs + specs[:1], cfg.workdir, True))
    cfg = AnalysisConfig(workdir=small_workdir, engine="recorder", workers=3, address="ray://head:10001",
                         resources={"gpus": 1})
    with pytest.raises(RunsFailedError) as e:
        analysis(cfg)
    assert Recorder.seen == [({"workers": 3, "address": "ray://head:10001", "resources": {"gpus": 1}}, [11, 12])]
    lines = str(e.value).splitlines()
    assert lines[0].startswith("2 of 2 runs failed") and "attempts" in lines[1] and "error" in lines[1]
    assert "ga/sequence" in lines[2] and "0.0001234" in lines[2] and "refused seed 11" in lines[2]
    assert current_executor() is None, "the analysis' engine does not outlive it"
    with using(Recorder()):
        with pytest.raises(RunsFailedError):
            require_runs(specs[:1], small_workdir, True)
    assert Recorder.seen[-1][1] == [11]


def test_sweep_prints_the_failed_specs_and_exits_1(small_workdir, tmp_path, capsys):
    from tueval.cli import main

    EXECUTORS.register("recorder", Recorder, overwrite=True)
    g = tmp_path / "g.yaml"
    g.write_text("objectives: [ga]\nseeds: [21, 22]\nlrs: [1.234e-4]\nfixed: {epochs: 1}\nengine: recorder\n")
    assert main(["sweep", str(g), "--workdir", str(small_workdir.root), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 runs failed" in err and "refused seed 21" in err and "refused seed 22" in err


# ----------------------------------------------------------------------------------------------- local pool
def test_local_pool_retries_a_killed_worker_and_resumes_from_its_checkpoint(small_workdir, tmp_path, monkeypatch):
    from tueval.executors.local import LocalExecutor
    from tueval.sweep import run_grid
    from tueval.unlearn import run_id, unlearn

    plugins = killer_module(tmp_path / "plugins")
    marker = tmp_path / "killed"
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugins), str(ROOT)]))
    monkeypatch.setenv("TUEVAL_TEST_KILL_MARKER", str(marker))
    wd = small_workdir
    spec = killed_spec()
    rdir = wd.root / "runs" / run_id(spec, wd)
    import shutil

    shutil.rmtree(rdir, ignore_errors=True)
    (res,) = run_grid([spec], wd, progress=False, engine=LocalExecutor(workers=2))
    assert marker.exists(), "the worker was killed mid-run"
    assert_intact(rdir, res.summary["steps"])
    killed = {k: v.copy() for k, v in run_files(rdir).items()}
    fresh = unlearn(spec, wd, progress=False, force=True)  # uninterrupted (the marker is there)
    assert fresh.path == rdir
    for name, table in run_files(rdir).items():
        pd.testing.assert_frame_equal(killed[name], table, obj=name)


def test_the_same_spec_launched_twice_at_once_is_computed_once(small_workdir, tmp_path):
    wd = small_workdir
    args = ["--objective", "ga", "--epochs", "1", "--seed", "31", "--batch-size", "8", "--no-generate", "--json"]
    from tueval.commands.unlearn import register_unlearn  # noqa: F401 - the flags above are the command's
    from tueval.unlearn import run_id

    rid = run_id(RunSpec(objective="ga", epochs=1, seed=31, batch_size=8, generate=False), wd)
    import shutil

    shutil.rmtree(wd.root / "runs" / rid, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tueval", "unlearn", *args, "--workdir", str(wd.root)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    res = [json.loads(o) for o, _ in outs]
    assert {r["run_id"] for r in res} == {rid}
    assert sorted(r["cached"] for r in res) == [False, True], "one computed, the other waited and read it"
    assert res[0]["wall_s"] == res[1]["wall_s"], "one computation"
    assert (wd.root / "runs" / ".locks" / f"{rid}.lock").exists(), "the lock is named after the run"
    assert_intact(wd.root / "runs" / rid, res[0]["steps"])


# ----------------------------------------------------------------------------------------------- run locks
CRITICAL = textwrap.dedent('''
    import os, sys, time
    from tueval.store import RunFolder
    folder, log = RunFolder.of(sys.argv[1], "r1"), sys.argv[2]
    for _ in range(3):
        with folder.lock(progress=False):
            with open(log, "a") as f:
                f.write(f"in {os.getpid()}\\n")
            time.sleep(0.2)
            with open(log, "a") as f:
                f.write(f"out {os.getpid()}\\n")
''')


@pytest.mark.parametrize("kind", ["os", "lease"])
def test_the_run_lock_excludes_other_processes(kind, tmp_path):
    log = tmp_path / "log"
    env = {**os.environ, "TUEVAL_LOCK": kind, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CRITICAL, str(tmp_path), str(log)], env=env) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = log.read_text().split()
    pairs = list(zip(lines[0::4], lines[1::4], lines[2::4], lines[3::4]))
    assert len(pairs) == 6 and all(a == "in" and c == "out" and b == d for a, b, c, d in pairs), lines
    assert not list((tmp_path / "runs" / ".locks").glob("*.lease*")), "a released lease leaves nothing"


def test_a_lease_whose_holder_was_killed_on_this_machine_is_taken_over_at_once(tmp_path):
    from tueval.locks import LeaseLock

    code = ("import sys, time; from tueval.locks import LeaseLock\n"
            "LeaseLock(sys.argv[1], stale=600).acquire(); print('held', flush=True); time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "x.lock")], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        from filelock import Timeout

        with pytest.raises(Timeout):
            LeaseLock(tmp_path / "x.lock", stale=600).acquire(timeout=0.5)
        holder.kill()
        holder.wait(timeout=30)
        lock = LeaseLock(tmp_path / "x.lock", stale=600)
        lock.acquire(timeout=20)  # long before the lease is stale: the holder is dead
        assert lock.is_locked
        lock.release()
    finally:
        holder.kill()


def test_a_lease_from_another_machine_is_taken_over_only_once_its_heartbeat_stops(tmp_path):
    import threading

    from filelock import Timeout

    from tueval.locks import LeaseLock

    lease = tmp_path / "x.lock.lease"
    lease.write_text(json.dumps({"host": "elsewhere", "boot": "another-boot", "pidns": 1, "pid": 1, "token": "t"}))
    stop = threading.Event()

    def beat():  # the other machine's holder, touching its lease
        while not stop.wait(0.1):
            os.utime(lease)

    t = threading.Thread(target=beat)
    t.start()
    try:
        with pytest.raises(Timeout):
            LeaseLock(tmp_path / "x.lock", heartbeat=0.1, stale=0.5, poll=0.05).acquire(timeout=2.0)
    finally:
        stop.set()
        t.join()
    lock = LeaseLock(tmp_path / "x.lock", heartbeat=0.1, stale=0.5, poll=0.05)
    lock.acquire(timeout=10)
    assert json.loads(lease.read_text())["token"] == lock.token
    lock.release()
    assert not lease.exists()


def test_an_unknown_lock_kind_is_refused(monkeypatch, tmp_path):
    from tueval.locks import run_lock

    monkeypatch.setenv("TUEVAL_LOCK", "nfs")
    with pytest.raises(SpecError, match="TUEVAL_LOCK"):
        run_lock(tmp_path / "x.lock")


def test_the_ray_engine_says_how_to_install_ray_and_maps_the_resources(monkeypatch):
    from tueval.errors import TuevalError
    from tueval.executors.ray import RayExecutor

    ex = RayExecutor(resources={"cpus": 4, "gpus": 0.5, "memory": 2**33, "custom": {"A100": 1.0}}, retries=2)
    assert ex.options() == {"num_cpus": 4.0, "num_gpus": 0.5, "max_retries": 2, "retry_exceptions": False,
                            "memory": 2**33, "resources": {"A100": 1.0}}
    assert RayExecutor().options()["num_cpus"] == 1.0 and "memory" not in RayExecutor().options()
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(TuevalError, match=r"pip install 'tueval\[ray\]'"):
        RayExecutor().run([], None)


def test_the_demo_computes_every_analysis_on_its_engine(monkeypatch, tmp_path):
    import tueval.analysis
    import tueval.demo as demo
    import tueval.prepare
    import tueval.report.foundation
    import tueval.report.index
    from tueval.analysis import Analysis
    from tueval.workdir import Workdir

    seen = []
    probe = Analysis("probe", "probe", "", run=lambda cfg: seen.append(
        (cfg.engine, cfg.address, type(current_executor()).__name__)) or {})
    monkeypatch.setattr(tueval.prepare, "prepare", lambda *a, **k: Workdir(tmp_path / "w"))
    monkeypatch.setattr(demo, "_lmeval", lambda *a: None)
    monkeypatch.setattr(tueval.report.foundation, "write_foundation_report", lambda *a, **k: None)
    monkeypatch.setattr(tueval.report.index, "write_index", lambda *a, **k: None)
    monkeypatch.setattr(tueval.analysis, "get_analysis", lambda name: probe)
    kw = dict(profile="small", reports=tmp_path / "r", quiet=True, analyses=("probe", "probe"))
    assert demo.run_demo(tmp_path / "w", engine="ray", address="auto", **kw) == 0
    assert demo.run_demo(tmp_path / "w", **kw) == 0
    assert seen == [("ray", "auto", "RayExecutor")] * 2 + [("local", None, "LocalExecutor")] * 2


def test_a_local_ray_cluster_runs_its_workers_at_the_pools_priority(monkeypatch):
    import tueval.executors.ray as R

    seen = {}

    class FakeRay:
        def is_initialized(self):
            return False

        def init(self, **kw):
            seen["niceness"], seen["address"] = os.environ.get(R.NICENESS_ENV), kw.get("address")

    monkeypatch.setattr(R, "import_ray", lambda: FakeRay())
    monkeypatch.delenv(R.NICENESS_ENV, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    R.RayExecutor().connect()
    assert seen == {"niceness": "0", "address": None}  # Ray's own default is nice 15
    monkeypatch.setenv(R.NICENESS_ENV, "5")  # the user's setting wins
    R.RayExecutor().connect()
    assert seen["niceness"] == "5"
    monkeypatch.delenv(R.NICENESS_ENV)
    R.RayExecutor(address="ray://head:10001").connect()  # an existing cluster: its own settings
    assert seen["niceness"] is None and seen["address"] == "ray://head:10001"
