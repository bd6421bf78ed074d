"""Per-process caches: models (fresh copies), collated splits, the retain reference."""
from __future__ import annotations

import torch

from tueval.data.collate import collate
from tueval.evaluate import reference
from tueval.workdir import Workdir, model_cache


def test_model_cache_returns_fresh_copies(small_workdir):
    wd = Workdir(small_workdir.root)
    m1, tok1 = wd.load_model("target")
    with torch.no_grad():
        for p in m1.parameters():
            p.add_(1.0)
    m2, tok2 = wd.load_model("target")
    model_cache.clear()
    m3, _ = wd.load_model("target")
    for a, b, c in zip(m1.parameters(), m2.parameters(), m3.parameters()):
        assert not torch.equal(a, b) and torch.equal(b, c)
    assert tok1 is tok2
    assert m2.training == m3.training


def test_collated_split_equals_collate(small_workdir):
    wd = Workdir(small_workdir.root)
    _, tok = wd.load_model("target")
    got = wd.collated("forget10", tok)
    want = collate(wd.benchmark.split("forget10"), tok)
    assert torch.equal(got.input_ids, want.input_ids) and torch.equal(got.gt_mask, want.gt_mask)
    assert got.example_ids == want.example_ids
    assert Workdir(small_workdir.root).collated("forget10", tok) is got


def test_reference_is_read_again_when_its_files_change(small_workdir, tmp_path):
    import shutil

    root = tmp_path / "wd"
    shutil.copytree(small_workdir.root, root, ignore=shutil.ignore_patterns("runs"))
    wd = Workdir(root)
    r1 = reference(wd)
    assert reference(Workdir(root)) is r1
    f = root / "eval" / "retain" / "forget.parquet"
    t = r1.forget.copy()
    t.loc[0, "avg_gt_loss"] = 123.0
    t.to_parquet(f)
    r2 = reference(Workdir(root))
    assert r2 is not r1 and r2.forget["avg_gt_loss"].iloc[0] == 123.0
