"""The analysis cache: computed once per key, keyed by the workdir's models, nothing half-written on a crash."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tueval.analysis.cache import cache_dir, cached_tables
from tueval.workdir import Workdir


def fake_workdir(root, target="models/target-a"):
    paths = {"benchmark": "b", "tokenizer": "t", "target": target, "retain": "models/retain-a", "ground_truth": "g"}
    root.mkdir(parents=True, exist_ok=True)
    (root / "prepare.json").write_text(json.dumps({"paths": paths}))
    return Workdir(root)


def test_cached_once_per_key(tmp_path):
    wd = fake_workdir(tmp_path / "wd")
    calls = []

    def compute():
        calls.append(1)
        return {"a": pd.DataFrame({"x": [1.0, 2.0], "s": ["u", "v"]}), "meta": pd.DataFrame([{"n": 2}])}

    first = cached_tables(wd, "demo", {"k": 1}, compute)
    again = cached_tables(wd, "demo", {"k": 1}, compute)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first["a"], again["a"])
    cached_tables(wd, "demo", {"k": 2}, compute)  # other settings: recomputed
    cached_tables(wd, "demo", {"k": 1}, compute, use_cache=False)  # asked to recompute
    assert len(calls) == 3


def test_key_includes_models(tmp_path):
    a, b = fake_workdir(tmp_path / "a"), fake_workdir(tmp_path / "b", target="models/target-b")
    assert cache_dir(a, "demo", {"k": 1}).name != cache_dir(b, "demo", {"k": 1}).name


def test_crash_leaves_nothing(tmp_path):
    wd = fake_workdir(tmp_path / "wd")

    def boom():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cached_tables(wd, "demo", {"k": 1}, boom)
    d = tmp_path / "wd" / "analyses" / "demo"
    assert not d.exists() or not any(d.iterdir())


def test_atomic_files_get_usual_permissions(tmp_path):
    import os
    import stat

    from tueval.io import write_text

    p = write_text(tmp_path / "a.txt", "x")
    m = os.umask(0)
    os.umask(m)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~m
