"""Replication over model pairs: the stratified pooled test (planted effect found, nulls rejected at no more than
alpha, a pair that disagrees breaks "holds on every pair"), pair workdirs trained with another training seed on the
same benchmark without touching pair 0, the error for a config workdir without pairs, and the analysis end to end
on the quick profile."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tueval.analysis.families import family_verdicts
from tueval.analysis.replication import (POOLED_COLUMNS, PairResult, agreement, by_pair_frame, pooled_verdicts,
                                         replication_tables)
from tueval.errors import TuevalError
from tueval.io import write_json
from tueval.stats.stratified import (stratified_from_diffs, stratified_sign_flip_pvalue, stratified_t_interval,
                                     stratum_means)

ALPHA = 0.05


# ------------------------------------------------------------------------------------------- the pooled statistic
def test_estimate_is_the_mean_of_pair_means_whatever_the_seed_counts():
    rng = np.random.default_rng(1)
    d = np.r_[rng.normal(1.0, 1, 4), rng.normal(3.0, 1, 10)]
    s = np.r_[[0] * 4, [1] * 10]
    r = stratified_from_diffs(d, s)
    assert r.estimate == pytest.approx(np.mean([d[:4].mean(), d[4:].mean()]))
    assert r.estimate != pytest.approx(d.mean())  # not the seed-weighted mean
    assert np.allclose(stratum_means(d, s), [d[:4].mean(), d[4:].mean()])
    assert r.n == 14 and r.ci_low < r.estimate < r.ci_high and r.robust_ci_low < r.estimate < r.robust_ci_high
    assert np.mean(r.diffs) == pytest.approx(r.estimate)


def test_planted_effect_on_both_pairs_is_detected():
    rng = np.random.default_rng(2)
    d = np.r_[rng.normal(1.5, 1, 7), rng.normal(1.5, 2, 7)]
    r = stratified_from_diffs(d, np.r_[[0] * 7, [1] * 7])
    assert r.p_value < 0.001 and r.ci_low > 0 and r.robust_ci_low > 0
    assert r.effect_size > 0 and r.effect_size_ci_low < r.effect_size < r.effect_size_ci_high


@pytest.mark.parametrize("n0,n1,sd0,sd1", [(7, 7, 1.0, 1.0), (7, 7, 1.0, 5.0), (4, 10, 3.0, 0.5)])
def test_null_is_rejected_at_most_alpha(n0, n1, sd0, sd1):
    """Simulated nulls (symmetric seed differences, pairs with different spreads and seed counts): the one-sided
    stratified sign-flip test rejects at alpha no more often than alpha + 3 Monte-Carlo SEs."""
    sims = 4000
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.normal(0, sd0, (sims, n0)), rng.normal(0, sd1, (sims, n1))], axis=1)
    p = stratified_sign_flip_pvalue(d, np.r_[[0] * n0, [1] * n1])
    rate = float(np.mean(p < ALPHA))
    assert rate <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / sims), rate
    assert rate > 0.02  # the exact test is not vacuous either


def test_welch_interval_covers_under_heteroscedastic_pairs():
    sims, rng = 2000, np.random.default_rng(4)
    s = np.r_[[0] * 6, [1] * 6]
    hit = 0
    for _ in range(sims):
        d = np.r_[rng.normal(0.5, 0.5, 6), rng.normal(0.5, 4, 6)]
        lo, hi = stratified_t_interval(d, s)
        hit += lo <= 0.5 <= hi
    assert hit / sims >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / sims)


def test_a_stratum_with_one_seed_is_refused():
    from tueval.errors import DataError

    with pytest.raises(DataError, match="at least 2"):
        stratified_from_diffs([1.0, 2.0, 3.0], [0, 0, 1])


# ---------------------------------------------------------------------------------------- per pair and pooled
def _diffs(effects: dict[str, float], seeds: int, rng, sd: float = 0.3) -> pd.DataFrame:
    """Per-seed differences of one method against two controls on both primary metrics, effect per control."""
    rows = []
    for control, eff in effects.items():
        for metric in ("log10_fq", "model_utility"):
            for s in range(seeds):
                d = eff + rng.normal(0, sd)
                rows.append({"objective": "ga", "method": "ga/m", "control": control, "metric": metric, "seed": s,
                             "method_value": d, "control_value": 0.0, "diff": d, "method_failed": False,
                             "control_failed": False})
    return pd.DataFrame(rows)


def _pair(k: int, diffs: pd.DataFrame) -> PairResult:
    _, v = family_verdicts(diffs, ALPHA, "method")
    return PairResult(k, k, f"/wd/{k}", diffs, v, pd.DataFrame(), matched=False, n_runs=0)


def test_holds_on_every_pair_only_when_every_pair_agrees():
    rng = np.random.default_rng(5)
    # random_k: strong effect on both pairs; uniform: strong on pair 0, none on pair 1 (the verdict flips)
    results = [_pair(0, _diffs({"random_k": 1.0, "uniform": 1.2}, 7, rng)),
               _pair(1, _diffs({"random_k": 1.0, "uniform": 0.0}, 7, rng))]
    by_pair, pooled = replication_tables(results, ALPHA)
    assert list(by_pair["pair"].unique()) == [0, 1] and by_pair["train_seed"].tolist()[:1] == [0]
    assert set(POOLED_COLUMNS) <= set(pooled.columns) and (pooled["n_pairs"] == 2).all()
    # the pooled family is the per-pair one: per objective and method, both metrics and both controls
    assert (pooled["family_size"] == 4).all() and (pooled["n_seeds"] == 14).all()
    rk = pooled[pooled["control"] == "random_k"]
    assert (rk["decision"] == "better").all() and rk["holds_on_every_pair"].all()
    assert (rk["pairs_better"] == 2).all() and (rk["pairs_same_label"] == 2).all()
    un = pooled[pooled["control"] == "uniform"]
    pair1 = by_pair[(by_pair["pair"] == 1) & (by_pair["control"] == "uniform")]
    assert (pair1["decision"] != "better").all()
    assert not un["holds_on_every_pair"].any() and (un["pairs_better"] <= 1).all()
    # a pooled "better" that is not better on pair 1 is counted as such
    assert ((un["decision"] == "better") <= (un["pairs_same_label"] == 1)).all()


def test_opposite_effects_pool_to_not_better():
    rng = np.random.default_rng(6)
    results = [_pair(0, _diffs({"random_k": 2.0}, 7, rng)), _pair(1, _diffs({"random_k": -2.0}, 7, rng))]
    pooled = agreement(pooled_verdicts(results, ALPHA), by_pair_frame(results))
    assert (pooled["decision"] != "better").all() and not pooled["holds_on_every_pair"].any()
    # pair 0 says better, pair 1 worse, the pool neither
    assert (pooled["pairs_better"] == 1).all() and (pooled["pairs_same_label"] == 0).all()


def test_pooled_p_is_the_stratified_sign_flip():
    rng = np.random.default_rng(7)
    results = [_pair(0, _diffs({"random_k": 0.4}, 5, rng)), _pair(1, _diffs({"random_k": 0.2}, 9, rng, 1.0))]
    pooled = pooled_verdicts(results, ALPHA)
    d = pd.concat([r.diffs.assign(pair=r.pair) for r in results])
    g = d[(d["control"] == "random_k") & (d["metric"] == "log10_fq")]
    row = pooled[pooled["metric"] == "log10_fq"].iloc[0]
    assert row["p_value"] == pytest.approx(stratified_sign_flip_pvalue(g["diff"].to_numpy(), g["pair"].to_numpy()))
    assert row["estimate"] == pytest.approx(g.groupby("pair")["diff"].mean().mean())


# ---------------------------------------------------------------------------------------------- config workdirs
def test_config_workdir_without_pairs_says_what_to_give(tmp_path):
    from tueval.analysis import AnalysisConfig, get_analysis
    from tueval.pairs import pair_workdirs
    from tueval.workdir import Workdir

    write_json(tmp_path / "prepare.json", {"paths": {"benchmark": "benchmark/b"}, "source": {"name": "tofu"},
                                           "profile": {"name": "config", "forget_split": "forget10"}})
    wd = Workdir(tmp_path)
    with pytest.raises(TuevalError, match=r"prepared from a config.*pairs: \[WORKDIR"):
        pair_workdirs(wd, 2)
    cfg = AnalysisConfig(workdir=wd, reports=tmp_path / "reports", seeds=(0, 1), profile="quick", progress=False)
    with pytest.raises(TuevalError, match="pairs"):
        get_analysis("replication")(cfg)
    with pytest.raises(TuevalError, match="is not a prepared workdir"):
        pair_workdirs(wd, 2, paths=[tmp_path / "nowhere"])


def test_cli_error_is_one_line(tmp_path, capsys):
    from tueval.cli import main

    write_json(tmp_path / "prepare.json", {"paths": {"benchmark": "benchmark/b"}, "source": {"name": "tofu"},
                                           "profile": {"name": "config", "forget_split": "forget10"}})
    rc = main(["analyze", "replication", "--workdir", str(tmp_path), "--reports", str(tmp_path / "r"),
               "--profile", "quick", "--seeds", "2", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "pairs" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["analyze", "replication", "--pairs", "1", "--workdir", str(tmp_path), "--quiet"]) == 2
    assert "pairs" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ pair workdirs
def _synthetic(root):
    """A synthetic workdir's manifest and its benchmark and tokenizer folders (no models)."""
    for d, f in (("benchmark/b1", "forget10.jsonl"), ("tokenizer/t1", "tokenizer.json")):
        (root / d).mkdir(parents=True)
        (root / d / f).write_text("{}\n")
    prof = {"name": "small", "benchmark": {"profile": "small"}, "vocab_size": 1024, "model": {},
            "train": {"batch_size": 16}, "forget_split": "forget10", "cf_threshold": 1.0}
    write_json(root / "prepare.json", {"profile": prof, "paths": {"benchmark": "benchmark/b1",
                                                                   "tokenizer": "tokenizer/t1"}})


def test_pair_k_is_prepared_with_training_seed_k_beside_pair_0(tmp_path, monkeypatch):
    """Without training (``prepare`` stubbed): pair k's profile is pair 0's with train.seed k, its root is
    pairs/k/, it starts from copies of pair 0's benchmark and tokenizer, and pair 0's files are not touched."""
    import tueval.prepare
    from tueval.pairs import pair_workdirs
    from tueval.workdir import Workdir

    _synthetic(tmp_path)
    before = (tmp_path / "prepare.json").read_bytes()
    seen = []

    def fake_prepare(root, prof, **kw):
        root = Path(root)
        seen.append((root, prof))
        assert (root / "benchmark" / "b1" / "forget10.jsonl").is_file() and (root / "tokenizer" / "t1").is_dir()
        write_json(root / "prepare.json", {"profile": prof.to_dict(), "paths": {"benchmark": "benchmark/b1",
                                                                                "tokenizer": "tokenizer/t1"}})
        return Workdir(root)

    monkeypatch.setattr(tueval.prepare, "prepare", fake_prepare)
    pairs = pair_workdirs(tmp_path, 3, progress=False, quiet=True)
    assert [p.root for p in pairs] == [tmp_path, tmp_path / "pairs" / "1", tmp_path / "pairs" / "2"]
    assert [prof.train["seed"] for _, prof in seen] == [1, 2]
    assert all(prof.train["batch_size"] == 16 and prof.name == "small" for _, prof in seen)
    assert (tmp_path / "prepare.json").read_bytes() == before and not (tmp_path / "models").exists()


def test_pairs_must_share_the_benchmark(tmp_path):
    from tueval.pairs import pair_workdirs

    _synthetic(tmp_path / "a")
    _synthetic(tmp_path / "b")
    m = json.loads((tmp_path / "b" / "prepare.json").read_text())
    write_json(tmp_path / "b" / "prepare.json", {**m, "paths": {**m["paths"], "benchmark": "benchmark/other"}})
    with pytest.raises(TuevalError, match="is not pair 0's"):
        pair_workdirs(tmp_path / "a", 2, paths=[tmp_path / "b"])
    with pytest.raises(TuevalError, match="not prepared"):
        pair_workdirs(tmp_path / "a", 2, train=False)


@pytest.fixture(scope="module")
def pairs(small_workdir):
    from tueval.pairs import pair_workdirs

    before = (small_workdir.manifest_path.read_bytes(), dict(small_workdir.manifest["paths"]))
    return before, pair_workdirs(small_workdir, 2, progress=False, quiet=True)


@pytest.mark.slow  # trains the two models of pair 1 (about 3 CPU-minutes on the small profile)
def test_pair_one_has_other_weights_on_the_same_benchmark(small_workdir, pairs):
    from safetensors.numpy import load_file

    (manifest_bytes, paths), (p0, p1) = pairs
    assert p0.root == small_workdir.root and p1.root == small_workdir.root / "pairs" / "1"
    # pair 0 is untouched: the same prepare.json bytes and model paths, so its cached runs stay valid
    assert small_workdir.manifest_path.read_bytes() == manifest_bytes
    assert p0.manifest["paths"] == paths
    m1 = json.loads(p1.manifest_path.read_text())
    assert m1["profile"]["train"]["seed"] == 1 and m1["paths"]["benchmark"] == paths["benchmark"]
    assert m1["paths"]["tokenizer"] == paths["tokenizer"]
    assert (p1.path("benchmark") / "forget10.jsonl").read_bytes() == (p0.path("benchmark") /
                                                                      "forget10.jsonl").read_bytes()
    for which in ("target", "retain"):
        assert m1["paths"][which] != paths[which]
        w0 = load_file(str(p0.path(which) / "model.safetensors"))
        w1 = load_file(str(p1.path(which) / "model.safetensors"))
        assert w0.keys() == w1.keys()
        assert any(not np.array_equal(w0[k], w1[k]) for k in w0)
    assert (p1.eval_dir("retain") / "summary.json").is_file()


@pytest.mark.slow
def test_pairs_are_reused(small_workdir, pairs):
    from tueval.pairs import pair_workdirs

    _, (_, p1) = pairs
    stamp = p1.manifest_path.stat().st_mtime_ns
    again = pair_workdirs(small_workdir, 2, progress=False, quiet=True, train=False)
    assert again[1].root == p1.root and p1.manifest_path.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_replication_quick_end_to_end(small_workdir, pairs, tmp_path):
    from tueval.analysis import AnalysisConfig, get_analysis

    cfg = AnalysisConfig(workdir=small_workdir, reports=tmp_path, seeds=(0, 1), profile="quick", progress=False,
                         extra={"pairs": 2})
    res = get_analysis("replication")(cfg)
    out = tmp_path / "replication"
    by_pair, pooled = pd.read_csv(out / "verdicts_by_pair.csv"), pd.read_csv(out / "pooled_verdicts.csv")
    assert res["n_pairs"] == 2 and len(pooled) > 0
    assert {"pair", "train_seed", "decision", "estimate", "p_adjusted", "n_not_bracketed"} <= set(by_pair.columns)
    assert sorted(by_pair["pair"].unique()) == [0, 1] and by_pair["train_seed"].tolist().count(1) > 0
    assert set(POOLED_COLUMNS) <= set(pooled.columns) and (pooled["n_pairs"] == 2).all()
    assert set(pooled["metric"]) == {"utility_at_matched_fq", "utility_at_matched_fp"}
    assert pooled["holds_on_every_pair"].dtype == bool
    # pair 0's verdicts are the controls analysis' on the same workdir
    ctl = pd.DataFrame(get_analysis("controls")(AnalysisConfig(
        workdir=small_workdir, reports=tmp_path / "c", seeds=(0, 1), profile="quick", progress=False,
        extra={"figures": False}))["verdicts"])
    p0 = by_pair[by_pair["pair"] == 0]
    key = ["method", "control", "metric"]
    m = ctl.merge(p0, on=key, suffixes=("", "_r"))
    assert len(m) == len(ctl) and np.allclose(m["estimate"], m["estimate_r"])
    assert (m["decision"] == m["decision_r"]).all()
    md = (out / "report.md").read_text()
    assert "Holds on every pair" in md and "fixed-effect" in md and (out / "replication_forest.png").is_file()


def test_pairs_setting_in_an_analysis_file(tmp_path):
    from tueval.config.checks import FieldError
    from tueval.config.grid import load_config

    for text, want in (("pairs: 3\n", 3), ("pairs: [w1, w2]\n", ["w1", "w2"])):
        (tmp_path / "a.yaml").write_text("objectives: [ga]\n" + text)
        assert load_config(tmp_path / "a.yaml").analysis_extra()["pairs"] == want
    (tmp_path / "a.yaml").write_text("objectives: [ga]\npairs: 1\n")
    with pytest.raises(FieldError, match="line 2.*pairs"):
        load_config(tmp_path / "a.yaml")


def test_pooled_worse_must_hold_with_not_bracketed_seeds_counted_for_the_method():
    """As for one pair: seeds whose control never reached the method's level count against the method for
    'better', and a pooled 'worse' must survive counting them for the method."""
    from tueval.analysis.matched_tables import matched_verdicts
    from tueval.stats.matched import NOT_BRACKETED, OK

    rng = np.random.default_rng(8)
    results = []
    for k in (0, 1):
        status = np.array([OK] * 2 + [NOT_BRACKETED] * 5, dtype=object)
        ok = -1.0 + rng.normal(0, 0.05, 7)
        diff = np.where(status == OK, ok, min(0.0, ok[:2].min()))  # the worst-rank fill of the matched table
        d = pd.DataFrame({"objective": "ga", "method": "ga/m", "control": "uniform",
                          "metric": "utility_at_matched_fq", "seed": range(7), "method_value": diff,
                          "control_value": 0.0, "diff": diff, "method_failed": status != OK,
                          "control_failed": False, "level": 0.0, "status": status, "n_control_runs": 1})
        _, v = matched_verdicts(d, ALPHA)
        results.append(PairResult(k, k, f"/wd/{k}", d, v, pd.DataFrame(), matched=True, n_runs=0))
    naive = family_verdicts(pd.concat([r.diffs.assign(pair=r.pair) for r in results])[
        ["objective", "method", "control", "metric", "seed", "method_value", "control_value", "diff",
         "method_failed", "control_failed"]], ALPHA, "method")[1]
    assert (naive["decision"] == "worse").all()  # all 14 seeds below 0: worse, if the unmatched seeds counted
    pooled = pooled_verdicts(results, ALPHA)
    assert (pooled["decision"] == "not better").all() and (pooled["n_not_bracketed"] == 10).all()
