"""The run store: state files without pickle, what counts as finished, the per-run lock, the step loop's hooks and
the retain reference cache."""
import json
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from tueval.errors import TuevalError, WriteError
from tueval.loop import LoopState, at_steps, every_epoch, every_n_steps, run_loop
from tueval.store import RunFolder
from tueval.tensorfile import StateFileError, load_state, save_state


def test_state_files_round_trip_types_shared_tensors_and_rng(tmp_path):
    w = torch.randn(4, 3)
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], lr=1e-3)
    p.grad = torch.randn(3)
    opt.step()
    state = {"model": {"embed": w, "lm_head": w, "rows": w[1:], "empty": torch.zeros(0)}, "opt": opt.state_dict(),
             "rng": torch.Generator().manual_seed(3).get_state(), "step": 7, "betas": (0.9, 0.999),
             "log": [{"step": 0, "total": 0.1 + 0.2, "nan": float("nan")}], "keys": {0: "int key", "0": "str key"}}
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert back["model"]["lm_head"] is back["model"]["embed"], "tied weights come back tied"
    assert torch.equal(back["model"]["rows"], w[1:]) and back["model"]["empty"].numel() == 0
    assert back["step"] == 7 and isinstance(back["step"], int) and back["betas"] == (0.9, 0.999)
    assert back["log"][0]["total"] == 0.1 + 0.2 and back["log"][0]["nan"] != back["log"][0]["nan"]
    assert back["keys"] == {0: "int key", "0": "str key"}
    assert back["rng"].dtype == torch.uint8 and torch.equal(back["rng"], state["rng"])
    assert back["opt"]["param_groups"] == opt.state_dict()["param_groups"]
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(StateFileError, match="cannot store a object"):
        save_state(tmp_path / "bad.safetensors", {"x": object()})
    assert not (tmp_path / "bad.safetensors").exists()


@pytest.mark.parametrize("content", [b"", b"not a state file", b"\x80\x04K\x01."])
def test_unreadable_state_files_are_refused_naming_the_file(content, tmp_path):
    p = tmp_path / "c.safetensors"
    p.write_bytes(content)
    with pytest.raises(StateFileError, match="c.safetensors"):
        load_state(p)


def test_truncated_checkpoint_is_refused_not_restarted(tmp_path):
    folder = RunFolder.of(tmp_path, "r1")
    folder.save_checkpoint({"step": 1, "log": [{"step": 0}], "model": {"w": torch.ones(1000)}})
    assert folder.load_checkpoint()["step"] == 1
    p = folder.path / "checkpoint.safetensors"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(TuevalError, match=r"refusing the checkpoint .*checkpoint.safetensors.*delete the run folder"):
        folder.load_checkpoint()


def test_only_a_complete_folder_looks_finished(tmp_path):
    folder = RunFolder.of(tmp_path, "r1")
    assert not folder.is_finished()
    folder.start({"spec": {}, "run_id": "r1"})
    assert (folder.path / "spec.json").exists() and not folder.is_finished(), "spec.json alone is unfinished"
    folder.write_log([{"step": 0}])
    (folder.path / "done.json").write_text("{}")
    assert not folder.is_finished(), "done.json without summary.json is unfinished"
    (folder.path / ".summary.json.x.tmp").write_text("half")
    folder.start({"spec": {}, "run_id": "r1"})
    assert not (folder.path / "done.json").exists(), "a restart drops a stale done.json"
    assert not (folder.path / ".summary.json.x.tmp").exists(), "and temp files of killed writes"
    folder.finish({"forget_quality": 0.5}, steps=1)
    assert folder.is_finished() and folder.summary() == {"forget_quality": 0.5}
    assert json.loads((folder.path / "done.json").read_text()) == {"run_id": "r1", "steps": 1}


def test_the_lock_is_held_across_processes_and_released_on_exit(tmp_path):
    folder = RunFolder.of(tmp_path, "r1")
    code = ("import sys, time; from tueval.store import RunFolder; f = RunFolder.of(sys.argv[1], 'r1')\n"
            "with f.lock(progress=False):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        from filelock import FileLock, Timeout

        with pytest.raises(Timeout):
            FileLock(str(folder.lock_path)).acquire(timeout=0.2)
        holder.kill()  # a crashed holder releases the lock: the OS drops it with the process
        holder.wait(timeout=30)
        with folder.lock(progress=False):
            pass
    finally:
        holder.kill()


def test_loop_runs_hooks_after_each_step_in_order(tmp_path):
    seen = []
    state = LoopState(step=0, total_steps=7, steps_per_epoch=3)
    hooks = [every_n_steps(2, lambda s: seen.append(("n2", s.step))),
             every_epoch(lambda s: seen.append(("epoch", s.step))),
             at_steps((5,), lambda s: seen.append(("at", s.step)))]
    run_loop(lambda step: {"step": step}, state, hooks)
    assert [r["step"] for r in state.log] == list(range(7))
    assert seen == [("n2", 2), ("epoch", 3), ("n2", 4), ("at", 5), ("n2", 6), ("epoch", 6), ("n2", 7)]
    resumed = LoopState(step=4, total_steps=7, steps_per_epoch=3, log=[{"step": i} for i in range(4)])
    with pytest.raises(KeyboardInterrupt):
        run_loop(lambda step: {"step": step}, resumed, [], stop_after=5)
    assert resumed.step == 5 and resumed.epoch == 1
    # stop_step ends the loop early: hooks see that step, the run is done but not finished
    seen.clear()
    stopped = LoopState(step=0, total_steps=7, steps_per_epoch=3, stop_step=5)
    run_loop(lambda step: {"step": step}, stopped, [at_steps((5,), lambda s: seen.append(s.step))])
    assert [r["step"] for r in stopped.log] == list(range(5)) and seen == [5]
    assert stopped.done and not stopped.finished


def _copy_workdir(wd, dst):
    shutil.copytree(wd.root, dst, ignore=shutil.ignore_patterns("runs"))
    from tueval.workdir import Workdir

    return Workdir(dst)


def test_reference_cache_verifies_its_tables(small_workdir, tmp_path):
    from tueval.evaluate import reference

    wd = _copy_workdir(small_workdir, tmp_path / "wd")
    before = reference(wd)
    ret = wd.eval_dir("retain")
    stamp = (ret / "summary.json").stat().st_mtime_ns
    (ret / "forget.parquet").unlink()
    again = reference(wd)
    assert (ret / "forget.parquet").exists() and (ret / "summary.json").stat().st_mtime_ns != stamp
    pd.testing.assert_frame_equal(before.forget, again.forget)
    assert before.mia_aucs == again.mia_aucs
    (ret / "forget.parquet").write_bytes(b"garbage")
    pd.testing.assert_frame_equal(reference(wd).forget, before.forget)


def _cli_unlearn(root, *extra):
    return subprocess.Popen([sys.executable, "-m", "tueval.cli", "unlearn", "--objective", "ga", "--epochs", "2",
                             "--seed", "41", "--workdir", str(root), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # the fast suite: test_executors.py::test_the_same_spec_launched_twice_at_once_is_computed_once
def test_two_identical_runs_at_once_compute_once(small_workdir, tmp_path):
    wd = _copy_workdir(small_workdir, tmp_path / "wd")
    locks = wd.root / "runs" / ".locks"
    first = _cli_unlearn(wd.root)
    try:
        deadline = time.monotonic() + 120
        while not any(locks.glob("*.lock")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = _cli_unlearn(wd.root)
        assert first.poll() is None, "the second started while the first was computing"
        outs = [p.communicate(timeout=600) for p in (first, second)]
    finally:
        first.kill()
    for p, (out, err) in zip((first, second), outs):
        assert p.returncode == 0, err
    a, b = (json.loads(out) for out, _ in outs)
    assert a["run_id"] == b["run_id"] and [f.stem for f in locks.glob("*.lock")] == [a["run_id"]]
    assert a["cached"] is False and b["cached"] is True, "the second waited and read the first one's result"
    assert a["wall_s"] == b["wall_s"], "one computation"


def test_unwritable_targets_give_one_line_naming_the_path(tmp_path, monkeypatch):
    import errno

    import safetensors.torch

    folder = RunFolder.of(tmp_path, "r1")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / ".locks").write_text("a file where the lock folder belongs")
    with pytest.raises(TuevalError, match=r"cannot write .*\.locks/r1\.lock"):
        with folder.lock(progress=False):
            pass

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(WriteError, match=r"cannot write .*checkpoint.safetensors: no space left on device"):
        folder.save_checkpoint({"step": 1})
    assert not (folder.path / "checkpoint.safetensors").exists() and not list(folder.path.glob(".*.tmp"))


def test_an_isolated_hook_leaves_the_training_stream_alone():
    from tueval.loop import every_step, isolated

    def draws(hooks):
        torch.manual_seed(0)
        state = LoopState(step=0, total_steps=4, steps_per_epoch=2)
        run_loop(lambda step: {"x": float(torch.rand(()))}, state, hooks)
        return [r["x"] for r in state.log]

    plain = draws([])
    assert draws([every_step(isolated(lambda s: torch.rand(5)))]) == plain
    assert draws([every_step(lambda s: torch.rand(5))]) != plain
