"""`tueval check`: a faulty scorer gets a clear message and a non-zero exit; a good one gets a verdict table."""
import json
import os
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


def _check(cli, monkeypatch, wd, tmp_path, scorer, *extra):
    """``tueval check`` in this process, the plugin importable from ``tmp_path`` (here and in any worker)."""
    (tmp_path / "my_scorers.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setitem(sys.modules, "my_scorers", None)
    del sys.modules["my_scorers"]  # a fresh import of this test's file; the module is dropped again afterwards
    return cli("check", "--scorer", f"my_scorers:{scorer}", "--workdir", wd.root, "--families", "alignment",
               "--seeds", "6", *extra)


@pytest.mark.parametrize("scorer,fault", [("raises", "boom from the plugin"), ("nan", "NaN")])
def test_faulty_scorer_exits_nonzero_with_a_clear_message(small_workdir, tmp_path, scorer, fault, cli, monkeypatch):
    r = _check(cli, monkeypatch, small_workdir, tmp_path, scorer)
    assert r.returncode == 2
    assert f"my_scorers:{scorer}" in r.stderr and fault.lower() in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_ground_truth_scorer_passes_alignment_family(small_workdir, tmp_path, cli, monkeypatch):
    r = _check(cli, monkeypatch, small_workdir, tmp_path, "gt", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["passed"] and out["verdicts"][0]["decision"] == "better"


@pytest.fixture()
def tiny_profiles(monkeypatch):
    """A 'tiny' profile of each score-based analysis (few examples, coarse grids), for speed."""
    from tueval.analysis import get_analysis
    from tueval.analysis.profiles import AlignmentProfile, InterventionProfile, SNRProfile

    tiny = {"alignment": AlignmentProfile(12, 2, 200, 20),
            "intervention": InterventionProfile(6, 2, (0.0, 0.5, 1.0), (0.2,), 1, 200, bucket=8),
            "snr": SNRProfile(8, 2, (0.3, 1.0), "last_block", 1, 4, (1.0,))}
    for name, prof in tiny.items():
        monkeypatch.setitem(get_analysis(name).profiles, "tiny", prof)


def test_check_families_are_the_analyses_numbers(small_workdir, tmp_path, tiny_profiles):
    """`tueval check` composes the analyses' own functions with their settings and unit of analysis: its
    alignment, intervention and SNR comparisons for one scorer equal the analyses' (alignment and intervention:
    the analyses' verdict tables; SNR: the analysis' reference table and comparisons)."""
    import pandas as pd

    from tueval.analysis import AnalysisConfig, get_analysis
    from tueval.analysis import snr_tables
    from tueval.analysis.forget import load_forget
    from tueval.analysis.scores import compute_scores
    from tueval.check import score_comparisons

    cfg = AnalysisConfig(workdir=small_workdir, reports=tmp_path, seeds=(0, 1), profile="tiny", progress=False,
                         workers=1, scorers=("etw",), cache=False)
    comps = score_comparisons(cfg, "etw", ("alignment", "intervention", "snr"))
    found = {}
    for c in comps:
        r = c["result"] if isinstance(c, dict) else c.result
        get = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
        name = c["metric"] if isinstance(c, dict) else c.metric
        found[name] = tuple(float(get(k)) for k in ("estimate", "ci_low", "ci_high", "p_value"))
    assert set(found) == {"ap_lift[spans]", "ap_lift[counterfactual]", "abpc[attention_mask]", "abpc[replace_token]",
                          "log snr_dir @k=0.3", "log snr_dir @k=soft"}
    for name in ("alignment", "intervention"):
        get_analysis(name)(cfg)
        v = pd.read_csv(tmp_path / name / "verdicts.csv")
        rows = v[(v.method == "etw") & (v.control == "random")]
        assert len(rows) == 2
        for r in rows.itertuples():
            assert found[r.metric] == pytest.approx((r.estimate, r.ci_low, r.ci_high, r.p_value), rel=1e-12)
    prof = get_analysis("snr").profile("tiny")
    data = load_forget(small_workdir, prof.max_examples)
    raw, _ = snr_tables.reference_table(data, prof, (0, 1), ["etw"], compute_scores(data, ["etw"], (0, 1)))
    snr = snr_tables.snr_comparisons(snr_tables.tidy(raw, (0, 1), ["etw"]), ["etw"], prof.ks, 0.05)
    assert {c.metric for c in snr} == {"log snr_dir @k=0.3", "log snr_dir @k=soft"}
    for c in snr:
        r = c.result
        assert found[c.metric] == pytest.approx((r.estimate, r.ci_low, r.ci_high, r.p_value), rel=1e-12)
