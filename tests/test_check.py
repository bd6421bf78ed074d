"""`tueval check`: a faulty scorer gets a clear message and a non-zero exit; a good one gets a verdict table."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

PLUGIN = textwrap.dedent('''
    import torch

    def raises(model, batch):
        raise RuntimeError("boom from the plugin")

    def nan(model, batch):
        return torch.full(batch["input_ids"].shape, float("nan"))

    def gt(model, batch):
        return batch["gt_mask"].float()
''')


def _check(wd, tmp_path, scorer, *extra):
    (tmp_path / "my_scorers.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "tueval.cli", "check", "--scorer", f"my_scorers:{scorer}",
                           "--workdir", str(wd.root), "--families", "alignment", "--seeds", "6", *extra],
                          capture_output=True, text=True, env=env)


@pytest.mark.parametrize("scorer,fault", [("raises", "boom from the plugin"), ("nan", "NaN")])
def test_faulty_scorer_exits_nonzero_with_a_clear_message(small_workdir, tmp_path, scorer, fault):
    r = _check(small_workdir, tmp_path, scorer)
    assert r.returncode == 2
    assert f"my_scorers:{scorer}" in r.stderr and fault.lower() in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_ground_truth_scorer_passes_alignment_family(small_workdir, tmp_path):
    r = _check(small_workdir, tmp_path, "gt", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["passed"] and out["verdicts"][0]["decision"] == "better"
