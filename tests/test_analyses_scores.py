"""The score-based analyses (alignment, sanity, intervention, snr): their helpers on toy data, and each analysis end to
end with the quick profile on the session's small prepared workdir."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tueval.analysis.forget import token_labels
from tueval.metrics.snr_grid import snr_grid
from tueval.stats import crossed_bootstrap, paired_matrix, unit_comparison
from tueval.weighting import control_weightings as weightings


# ------------------------------------------------------------------------------------------------ helpers (fast)
def test_crossed_bootstrap_does_not_shrink_with_replicated_seeds():
    rng = np.random.default_rng(0)
    row = rng.normal(size=(1, 60))
    est1, lo1, hi1 = crossed_bootstrap(row, 2000, seed=1)
    est3, lo3, hi3 = crossed_bootstrap(np.repeat(row, 3, axis=0), 2000, seed=1)
    assert lo1 < est1 < hi1 and est1 == pytest.approx(est3)
    # identical seed rows carry no new information: the interval must not narrow by sqrt(3)
    assert (hi3 - lo3) == pytest.approx(hi1 - lo1, rel=0.2)


def test_paired_matrix_broadcasts_a_deterministic_arm():
    m = pd.DataFrame({"seed": -1, "example_id": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]})
    c = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "example_id": list("abcabc"), "v": [0.0] * 3 + [1.0] * 3})
    D, n_seeds = paired_matrix(m, c, "v")
    assert D.shape == (2, 3) and n_seeds == 2
    np.testing.assert_allclose(D, [[1, 2, 3], [0, 1, 2]])


def test_unit_comparison_detects_a_shift_and_not_its_absence():
    rng = np.random.default_rng(1)
    ex = [f"e{i}" for i in range(40)]
    base = rng.normal(size=40)
    ctrl = pd.DataFrame({"seed": 0, "example_id": ex, "v": base})
    better = unit_comparison(ctrl.assign(v=base + 0.5), ctrl, "v", metric="m", method_name="x", control_name="c")
    same = unit_comparison(ctrl, ctrl, "v", metric="m", method_name="x", control_name="c")
    assert better["result"]["ci_low"] > 0 and better["result"]["p_value"] < 0.01
    assert same["result"]["estimate"] == 0 and same["result"]["p_value"] == 1.0


def test_token_labels_mark_exactly_the_span_tokens(toy_examples, tiny_tokenizer, toy_batch):
    lab = token_labels(toy_examples, tiny_tokenizer)
    assert lab.shape == tuple(toy_batch.gt_mask.shape)
    assert np.array_equal(lab != "", toy_batch.gt_mask.numpy())
    assert set(lab[lab != ""]) <= {s.label for e in toy_examples for s in e.spans}


def test_weightings_controls(toy_batch):
    ans = toy_batch.answer_mask
    gt = toy_batch.gt_mask & ans
    scores = {"m": torch.rand(ans.shape, generator=torch.Generator().manual_seed(0))}
    w = weightings(scores, gt, ans, (0.3, 1.0), seed=0)
    counts = {k: (w[(k, "0.3")] > 0).sum(1) for k in ("m", "oracle", "anti", "random_k")}
    for k in ("oracle", "anti", "random_k"):
        assert torch.equal(counts[k], counts["m"])  # same count of selected tokens per answer
    assert torch.equal(w[("uniform", "1")], ans.float())
    mm = w[("magnitude_matched", "0.3")]
    assert torch.allclose(mm / mm[ans].max(), ans.float())  # a rescaled uniform
    assert ((w[("oracle", "0.3")] > 0) & ~gt).sum() <= ((w[("m", "0.3")] > 0) & ~gt).sum()


def test_snr_routes_agree(tiny_model, toy_batch):
    """Per-token gradient route == tueval.metrics.snr.snr_report on every metric."""
    torch.manual_seed(0)
    ans = toy_batch.answer_mask
    gt = toy_batch.gt_mask & ans
    w = weightings({"m": torch.rand(ans.shape)}, gt, ans, (0.5, 1.0), seed=0, soft=True)
    w = {k: v for k, v in w.items() if k[0] in ("m", "oracle", "uniform", "random_k")}
    splits = [([0, 1, 2, 3], [4, 5, 6, 7]), ([4, 5, 6, 7], [0, 1, 2, 3])]
    a = snr_grid(tiny_model, toy_batch, splits, [w, w], gt, params=None, route="tokens")
    b = snr_grid(tiny_model, toy_batch, splits, [w, w], gt, params=None, route="report")
    key = ["split", "weighting", "k"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert list(a.weighting) == list(b.weighting)
    for col in ("snr_dir", "inv_b_simple", "composition_ratio", "cos_mean_u", "tr_sigma", "mean_proj"):
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-4, atol=1e-9)


# ------------------------------------------------------------------------------------------------ end to end
def _cfg(wd, tmp_path, **kw):
    from tueval.analysis import AnalysisConfig

    return AnalysisConfig(workdir=wd, reports=Path(tmp_path), seeds=(0, 1), profile="quick", progress=False,
                          workers=1, **kw)


def _files_ok(folder: Path) -> None:
    assert (folder / "report.md").stat().st_size > 500
    for ext in ("csv", "png", "pdf"):
        assert list(folder.glob(f"*.{ext}")), f"no .{ext} in {folder}"
    text = (folder / "report.md").read_text()
    assert "Regenerate with" in text and "decision" in text


def test_alignment_quick(small_workdir, tmp_path):
    from tueval.analysis import get_analysis

    res = get_analysis("alignment")(_cfg(small_workdir, tmp_path))
    folder = tmp_path / "alignment"
    _files_ok(folder)
    s = pd.read_csv(folder / "summary.csv")
    lift = s[s.metric == "ap_lift"].set_index(["ground_truth", "scorer"])
    ap = s[s.metric == "ap"].set_index(["ground_truth", "scorer"])["mean"]
    for gt in ("spans", "counterfactual"):
        assert ap[(gt, "oracle")] == pytest.approx(1.0)
        r = lift.loc[(gt, "random")]
        assert r.ci_low < 0 < r.ci_high  # random is at chance
        assert lift.loc[gt]["mean"].idxmin() == "anti"
        assert lift.loc[gt]["mean"].idxmax() == "oracle"
    null = pd.DataFrame(res["permutation_null"])
    cont = null[null.scorer.isin(["random", "tokenunlearn", "etw"])]
    assert (cont.null_mean.abs() < 0.01).all()  # shuffled GT: alignment falls to chance
    assert ((null.observed_ap_lift > null.null_q975) == null.scorer.isin(["tokenunlearn", "etw", "oracle"])).all()
    v = pd.read_csv(folder / "verdicts.csv").set_index(["metric", "method"])
    assert v.loc[("ap_lift[spans]", "oracle"), "decision"] == "better"
    assert v.loc[("ap_lift[spans]", "anti"), "decision"] != "better"
    assert v.family_size.iloc[0] == len(v)
    # per label, and the variant without the tokens copied from the question (the subject's name)
    wide = pd.read_csv(folder / "per_label_ap_lift.csv").set_index("scorer")
    assert "name" in wide.columns and wide.loc["oracle"].min() > wide.loc["random"].max()
    nc = pd.read_csv(folder / "nocopy_verdicts.csv")
    assert set(nc.method) >= {"tokenunlearn", "etw", "oracle"} and nc.family.str.contains("copied").all()
    assert "name" not in set(pd.read_csv(folder / "nocopy_per_label.csv").label)
    cls = pd.read_csv(folder / "token_classes.csv").set_index(["value", "tokens"])["mean_over_examples"]
    delta = "tokenunlearn knowledge signal (Delta)"
    assert cls[(delta, "copied")] > cls[(delta, "fact, not copied")]
    assert f"**{cls[(delta, 'copied')]:.2f}** on answer tokens copied" in (folder / "report.md").read_text()


@pytest.mark.slow
def test_intervention_quick(small_workdir, tmp_path):
    from tueval.analysis import get_analysis

    get_analysis("intervention")(_cfg(small_workdir, tmp_path))
    folder = tmp_path / "intervention"
    _files_ok(folder)
    m = pd.read_csv(folder / "metrics.csv")
    abpc = m[m.metric == "abpc"].set_index(["operator", "scorer"])
    for op in ("attention_mask", "replace_token"):
        r = abpc.loc[(op, "random")]
        assert r.ci_low < 0 < r.ci_high  # a random ranking has no area between LeRF and MoRF
        # anti is the oracle's order reversed: its ABPC mirrors the oracle's
        assert abpc.loc[(op, "anti"), "mean"] == pytest.approx(-abpc.loc[(op, "oracle"), "mean"], abs=1e-6)
    c = pd.read_csv(folder / "curves.csv")
    q0 = c[(c.curve == "deletion") & (c.q == 0)]
    assert np.allclose(q0.f_mean, q0.f_mean.iloc[0])  # nothing removed: every curve starts at f(x)
    assert len(pd.read_csv(folder / "rank_agreement.csv")) >= 1


@pytest.mark.slow
def test_sanity_quick(small_workdir, tmp_path):
    from tueval.analysis import get_analysis

    get_analysis("sanity")(_cfg(small_workdir, tmp_path))
    folder = tmp_path / "sanity"
    _files_ok(folder)
    cas = pd.read_csv(folder / "cascading_randomisation.csv")
    last = cas[cas.depth == cas.depth.max()].set_index("scorer")["mean"]
    for ctrl in ("random", "oracle", "anti"):
        assert last[ctrl] == pytest.approx(1.0)  # model-independent scores survive randomisation
    assert last["etw"] < 0.9 and last["tokenunlearn"] < 0.9  # model-reading scores do not
    kd = pd.read_csv(folder / "knowledge_dependence.csv").set_index(["ground_truth", "scorer"])
    assert bool(kd.loc[("spans", "etw"), "model_dependent"]) and not bool(kd.loc[("spans", "oracle"),
                                                                                   "model_dependent"])
    h = pd.read_csv(folder / "heuristic_alignment.csv")
    assert {"rarity", "position", "entropy"} <= set(h.scorer)
    ent = h.set_index(["ground_truth", "scorer"])["mean"]
    assert ent[("spans", "entropy")] == pytest.approx(ent[("spans", "etw")])  # ETW is the entropy heuristic


@pytest.mark.slow
def test_snr_quick(small_workdir, tmp_path):
    from tueval.analysis import get_analysis

    get_analysis("snr")(_cfg(small_workdir, tmp_path))
    folder = tmp_path / "snr"
    _files_ok(folder)
    t = pd.read_csv(folder / "per_seed.csv", keep_default_na=False, na_values=[""])
    t["k"] = t.k.astype(str)
    for seed, g in t.groupby("seed"):
        v = g.set_index(["weighting", "k"])
        # scale invariance: magnitude-matched uniform weights give the uniform metrics
        for col in ("snr_dir", "composition_ratio", "cos_mean_u"):
            assert v.loc[("magnitude_matched", "0.1"), col] == pytest.approx(v.loc[("uniform", "1"), col], rel=1e-4)
        # the oracle's top-10% is (almost) pure signal, anti's pure noise: composition bounds every method
        comp = g[g.k == "0.1"].set_index("weighting").composition_ratio
        assert comp["anti"] == 0.0
        assert comp["oracle"] >= comp.drop(["oracle"]).max()
    ck = pd.read_csv(folder / "checkpoints.csv")
    assert ck.step.nunique() >= 2 and 0 in set(ck.step)
