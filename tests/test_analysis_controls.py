"""The controls and retrain analyses and the library they are built from (grid, tidy runs table, seed-paired
families) on a FAKE store: synthetic finished runs with planted effects across seeds, found by the engine's own run
ids; plus the figure helpers of tueval.plots."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import tueval_analyses.controls as C
from tueval import defaults
import tueval_analyses.retrain as R
from tueval.analysis import AnalysisConfig, get_analysis
from tueval.analysis.families import identical_arms, method_comparisons, paired_verdicts
from tueval.analysis.grid import BASE, METHOD_ARM, grid_cells, spec_key, unique_specs
from tueval.analysis.runs import gather, method_runs
from tueval.metrics.catalogue import run_metrics
from tueval.errors import MissingRunsError, SpecError
from tueval.io import write_json
from tueval.unlearn import run_id
from tueval.workdir import Workdir

PLANTED = {"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3}  # beats every control on FQ and utility
NULL = {"scorer": "etw", "mode": "soft"}  # same distribution as its controls
SEEDS = tuple(range(8))
SEEDS_R = tuple(range(9))  # a Holm family of 16 needs 9 seeds for the exact one-sided sign-flip test
STORE_CONTROLS = ["random_k", "permuted", "step_matched", "magnitude_matched", "uniform"]
#: the fake store's runs have summaries but no trajectories: the single-learning-rate families (eval_every 0 is the
#: run default, so the run ids are those of specs without it)
STORE_FIXED = {"eval_every": 0}
RETAIN = {"forget_prob": 0.2, "mia": {"mia_min_k": 0.64}}  # the retain model's reference values


def fake_workdir(root, retain: dict | None = RETAIN) -> Workdir:
    """A workdir with only a prepare.json (enough for run ids and the store, no models) and, unless ``retain`` is
    None, the retain model's evaluation summary (the reference of the distances to the retain model)."""
    write_json(root / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
    if retain is not None:
        write_json(root / "eval" / "retain" / "summary.json", retain)
    return Workdir(root)


def summary(fq: float, mu: float, prob: float, auc: float = 0.6) -> dict:
    return {"forget_quality": fq, "model_utility": mu, "forget_prob": prob, "forget_truth_ratio": 0.6,
            "forget_rougeL": 0.5, "components": {}, "mia": {"mia_min_k": auc, "privleak": (auc - 0.5) * 20},
            "steps": 5, "wall_s": 1.0, "label": "fake"}


def write_run(wd: Workdir, spec, summ: dict) -> None:
    rid = run_id(spec, wd)
    d = wd.root / "runs" / rid
    write_json(d / "spec.json", {"spec": {**spec.to_dict(), "forget_split": "forget10"}, "run_id": rid})
    write_json(d / "summary.json", {**summ, "label": spec.label()})
    write_json(d / "done.json", {"run_id": rid, "steps": 5})


def plant_controls(wd: Workdir, cells) -> None:
    """Planted method: +1.5 log10 FQ and +0.05 utility over every control, per seed; null method: none."""
    rng = np.random.default_rng(0)
    base = {s: (rng.normal(-3, 0.5), rng.normal(0.6, 0.02)) for s in SEEDS}  # seed effect shared by arms
    written = set()
    for c in cells:
        if spec_key(c.spec) in written:
            continue
        written.add(spec_key(c.spec))
        lfq, mu = base[c.seed]
        lfq, mu = lfq + rng.normal(0, 0.1), mu + rng.normal(0, 0.005)
        if c.arm == METHOD_ARM and c.spec.scorer == "tokenunlearn":
            lfq, mu = lfq + 1.5, mu + 0.05
        write_run(wd, c.spec, summary(10 ** lfq, mu, 0.3 + rng.normal(0, 0.01)))


@pytest.fixture(scope="module")
def controls_store(tmp_path_factory):
    wd = fake_workdir(tmp_path_factory.mktemp("wd"))
    cells = grid_cells(["ga"], [PLANTED, NULL], STORE_CONTROLS, SEEDS, STORE_FIXED)
    plant_controls(wd, cells)
    return wd


def cfg_for(wd, tmp_path, **kw) -> AnalysisConfig:
    extra = kw.pop("extra", {})
    kw.setdefault("seeds", SEEDS)
    return AnalysisConfig(workdir=wd, reports=tmp_path / "reports", compute=False, progress=False,
                          extra={"objectives": ["ga"], "methods": [PLANTED, NULL], "fixed": STORE_FIXED,
                                 "controls": [c for c in STORE_CONTROLS if c != "uniform"],
                                 # the store holds each arm at one rate (the demo profile's 3x runs are not in it)
                                 "base_lr_factors": [], "control_lr_factors": [], **extra}, **kw)


def test_controls_detects_planted_effect_not_null(controls_store, tmp_path):
    res = get_analysis("controls")(cfg_for(controls_store, tmp_path, extra={"figures": False}))
    v = pd.DataFrame(res["verdicts"])
    assert res["family"] == "method" and len(v) == 2 * 5 * 2  # methods x controls (incl. uniform) x metrics
    planted = v[v["method"] == "ga/tokenunlearn-hard0.3"]
    null = v[v["method"] == "ga/etw-soft"]
    assert set(planted["control"]) == set(STORE_CONTROLS)
    assert (planted["decision"] == "better").all(), planted[["control", "metric", "p_adjusted", "decision"]]
    assert planted["better_unadjusted"].all() and not null["better_unadjusted"].all()
    assert (null["decision"] != "better").all()
    # the default family: one per objective and method, both primary metrics x every control
    assert (planted["family_size"] == 10).all() and (planted["n_seeds"] == len(SEEDS)).all()
    assert (planted["effect_size_ci_low"] < planted["effect_size"]).all()
    fq = planted[planted["metric"] == "log10_fq"]
    assert np.allclose(fq["estimate"], 1.5, atol=0.2)
    assert (fq["ci_low"] > 0).all()


def test_controls_report_folder(controls_store, tmp_path):
    res = C.run(cfg_for(controls_store, tmp_path, extra={"family": "objective"}))
    out = tmp_path / "reports" / "controls"
    md = (out / "report.md").read_text()
    assert "Verdicts (confirmatory)" in md and "beats `random_k`" in md and "family" in md
    for f in ("verdicts.csv", "runs_long.csv", "paired_diffs.csv", "arm_summary.csv", "pareto_ga.png",
              "pareto_ga.pdf", "paired_ga_log10_fq.png", "paired_ga_model_utility.pdf"):
        assert (out / f).stat().st_size > 0, f
    v = pd.read_csv(out / "verdicts.csv")
    # family "objective": methods x controls x metrics per objective, 20 members; 8 seeds cannot reach alpha/20
    assert (v["family_size"] == 20).all() and not v["reachable"].any()
    assert "With 8 seeds no comparison in this family can be labelled 'better'" in md
    assert "intersection-union" in md and "Better on both primary metrics" in md
    long = pd.read_csv(out / "runs_long.csv")
    assert {"objective", "method", "arm", "seed", "metric", "value", "run_id"} <= set(long.columns)
    assert long["run_id"].nunique() == res["n_runs"] == 2 * 5 * 8 + 8  # uniform base shared by both methods
    # runs without lm-eval: no lm-eval metrics, section or figure
    assert not long["metric"].str.startswith("lmeval").any() and "lm-eval" not in md
    assert not (out / "lmeval_tradeoff.png").exists()


def test_controls_lmeval_metrics_and_figure(tmp_path):
    """extra lmeval_tasks=True: the analysis asks for runs with lmeval_tasks (other run ids) and, from their
    summaries' ``lmeval``, adds the MC accuracies to the tidy CSVs and draws lmeval_tradeoff."""
    wd = fake_workdir(tmp_path / "wd")
    seeds = (0, 1, 2)
    cfg = cfg_for(wd, tmp_path, seeds=seeds, extra={"lmeval_tasks": True, "controls": ["random_k"]})
    with pytest.raises(MissingRunsError):  # the default-run ids (none here) are not the lm-eval runs' ids
        C.run(cfg)
    st = C.grid_settings(cfg)
    fixed = {**st["fixed"], "lmeval_tasks": st["lmeval_tasks"]}
    cells = grid_cells(["ga"], [PLANTED, NULL], ["random_k", "uniform"], seeds, fixed)
    assert all(c.spec.lmeval_tasks == C.LMEVAL_TASKS for c in cells)
    rng = np.random.default_rng(1)
    for c in cells:
        forget = 0.3 if (c.arm == METHOD_ARM and c.spec.scorer == "tokenunlearn") else 0.8
        lm = {"tueval_forget_mc": forget + rng.normal(0, 0.02), "tueval_retain_mc": 0.9,
              "tueval_utility_mc": 0.7 + rng.normal(0, 0.02)}
        write_run(wd, c.spec, {**summary(1e-3 * rng.uniform(0.5, 2), 0.6 + rng.normal(0, 0.02), 0.3), "lmeval": lm})
    res = C.run(cfg)
    out = tmp_path / "reports" / "controls"
    long = pd.read_csv(out / "runs_long.csv")
    acc = long[long["metric"] == "lmeval_forget_mc"]
    assert len(acc) == len(cells) and acc["value"].between(0, 1).all()
    assert {"lmeval_retain_mc", "lmeval_utility_mc"} <= set(long["metric"])
    summ = pd.read_csv(out / "arm_summary.csv")
    planted = summ[(summ["metric"] == "lmeval_forget_mc") & (summ["method"] == "ga/tokenunlearn-hard0.3")
                   & (summ["arm"] == "method")]
    assert planted["mean"].iloc[0] == pytest.approx(0.3, abs=0.05)
    assert (out / "lmeval_tradeoff.png").stat().st_size > 0 and (out / "lmeval_tradeoff.pdf").exists()
    md = (out / "report.md").read_text()
    assert "lm-eval multiple-choice accuracy" in md and "lm-eval tasks" in md
    assert len(res["verdicts"]) == 2 * 2 * 2  # verdicts stay on the confirmatory metrics
    from tueval.plots.tradeoff import lmeval_figure

    fig = lmeval_figure(gather(cfg, cells))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "lm-eval forget MC accuracy (fraction correct)"  # the metric catalogue's label
    assert ax.get_xlabel() == "lm-eval utility MC accuracy (fraction correct)"
    # one point per method + the sequence-level base
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(
        ["ga/tokenunlearn-hard0.3", "ga/etw-soft", "ga/sequence"])


def _pure_runs(n_seeds=7, gaps=(("method", 0.02), ("random_k", 0.3), ("uniform", 0.3))):
    rows = []
    for s in range(n_seeds):
        for arm, gap in gaps:
            rows.append({"objective": "ga", "method": "ga/x", "arm": arm, "seed": s, "role": "confirmatory",
                         "forget_prob_gap": gap + 0.01 * s, "model_utility": 0.5 + 0.001 * ((s * 7 + len(arm)) % 5),
                         "log10_fq": -3.0 + 0.1 * s + (0.5 if arm == "method" else 0.0)})
    return pd.DataFrame(rows)


def test_paired_verdicts_pure_family_and_direction():
    runs = _pure_runs()
    vs, frame = paired_verdicts(runs, ["forget_prob_gap"], family="method", alpha=0.05)
    assert [v.decision for v in vs] == ["better", "better"]  # closer to the retain model is better; n=7
    assert all(v.estimate < 0 and not v.higher_is_better for v in vs)
    vs, _ = paired_verdicts(runs, ["forget_prob_gap", "model_utility"], family="method")
    assert len(vs) == 4 and vs[0].family_size == 4
    assert {v.decision for v in vs if v.metric == "model_utility"} <= {"not better", "worse"}
    with pytest.raises(SpecError):  # the forget probability itself has no better direction
        paired_verdicts(runs.assign(forget_prob=0.3), ["forget_prob"])


def test_default_family_is_one_per_method_over_both_metrics_and_every_control():
    """One Holm family per objective and method over both primary metrics and every control: with 6 seeds and
    two controls (4 comparisons) nothing can be labelled 'better' (1/64 > 0.05/4), with 7 seeds it can."""
    vs, frame = paired_verdicts(_pure_runs(6), ["forget_prob_gap", "log10_fq"])
    assert {v.family_size for v in vs} == {4} and frame["family"].nunique() == 1
    assert all(v.better_unadjusted for v in vs) and not any(v.decision == "better" for v in vs)
    assert (frame["min_seeds_for_family"] == 7).all() and not frame["reachable"].any()
    vs7, frame7 = paired_verdicts(_pure_runs(7), ["forget_prob_gap", "log10_fq"])
    assert all(v.decision == "better" for v in vs7) and frame7["reachable"].all()
    assert C.DEFAULT_FAMILY == "method" and C.grid_settings(
        AnalysisConfig(workdir=None, reports=None, seeds=(0, 1)))["family"] == "method"


def test_failed_seed_counts_against_its_arm():
    """A diverged (NaN) seed of the method is never dropped: it takes the worst value of the group and counts
    as a loss on that seed."""
    runs = _pure_runs(8)
    bad = (runs["arm"] == "method") & (runs["seed"] == 3)
    runs.loc[bad, "log10_fq"] = np.nan
    runs.loc[(runs["arm"] == "uniform") & (runs["seed"] == 5), "model_utility"] = np.inf
    from tueval.analysis.families import paired_diffs

    d = paired_diffs(runs, ["log10_fq", "model_utility"])
    fq = d[(d["metric"] == "log10_fq") & (d["control"] == "random_k")].set_index("seed")
    assert len(fq) == 8 and fq.loc[3, "method_failed"] and fq.loc[3, "diff"] < 0
    assert fq.loc[3, "method_value"] == runs["log10_fq"].min()  # the worst finished run of any arm
    mu = d[(d["metric"] == "model_utility") & (d["control"] == "uniform")].set_index("seed")
    assert mu.loc[5, "control_failed"] and mu.loc[5, "control_value"] == runs.loc[
        np.isfinite(runs["model_utility"]), "model_utility"].min()
    vs, frame = paired_verdicts(runs, ["log10_fq"])
    v = {x.control: x for x in vs}["random_k"]
    assert v.n_seeds == 8 and v.n_failed == 1
    from tueval.analysis.families import arm_summary

    summ = arm_summary(runs, ["log10_fq"], ("arm",))
    assert summ.set_index("arm").loc["method", "n_failed"] == 1 and summ.set_index("arm").loc["method", "n"] == 7


def test_identical_controls_are_reported_and_dropped(tmp_path):
    runs = _pure_runs(7, gaps=(("method", 0.02), ("magnitude_matched", 0.3), ("uniform", 0.3)))
    runs.loc[runs["arm"] == "magnitude_matched", "model_utility"] = runs.loc[runs["arm"] == "uniform",
                                                                             "model_utility"].to_numpy()
    from tueval.analysis.families import degenerate_controls

    same = identical_arms(runs, metrics=("forget_prob_gap", "model_utility", "log10_fq"))
    drop = degenerate_controls(same)
    assert drop[["control", "same_as"]].values.tolist() == [["magnitude_matched", "uniform"]]
    vs, _ = paired_verdicts(runs, ["log10_fq", "model_utility"], drop=drop)
    assert {v.control for v in vs} == {"uniform"} and {v.family_size for v in vs} == {2}


def test_missing_runs_lists_specs_and_command(tmp_path):
    wd = fake_workdir(tmp_path / "empty")
    with pytest.raises(MissingRunsError) as e:
        C.run(cfg_for(wd, tmp_path, seeds=(0, 1)))
    msg = str(e.value)
    assert "ga/tokenunlearn-hard0.3+random_k" in msg and "ga/sequence" in msg
    assert "--no-compute" in msg and "tueval unlearn" in msg
    with pytest.raises(MissingRunsError):
        C.controls_verdicts(cfg_for(wd, tmp_path, seeds=(0, 1)), "tokenunlearn", "hard", 0.3,
                            ["random_k", "uniform"], "ga")


def test_controls_verdicts_one_scorer(controls_store, tmp_path):
    vs = C.controls_verdicts(cfg_for(controls_store, tmp_path), "tokenunlearn", "hard", 0.3,
                             ["random_k", "magnitude_matched", "uniform"], "ga")
    assert len(vs) == 6 and {v.metric for v in vs} == {"log10_fq", "model_utility"}
    assert all(v.family_size == 6 and v.decision == "better" for v in vs)


@pytest.fixture(scope="module")
def retrain_store(tmp_path_factory):
    """top-q of 'oracle' forgets more than random q, which forgets more than bottom q; 'etw' is null."""
    wd = fake_workdir(tmp_path_factory.mktemp("wdr"))
    rng = np.random.default_rng(3)  # a fixed draw; under the null Holm still rejects with probability <= alpha
    cells = R.retrain_cells(["oracle", "etw"], [0.1, 0.3], SEEDS_R, fixed=defaults.SHARED)
    shift = {"top": -0.15, "random_k": 0.0, "bottom_k": 0.1}
    for c in cells:
        eff = shift[c.arm] if c.spec.scorer == "oracle" else 0.0
        prob = 0.5 + eff + 0.02 * (c.seed % 3) + rng.normal(0, 0.01)
        write_run(wd, c.spec, summary(10 ** (-3 - 10 * eff + rng.normal(0, 0.1)), 0.6 + rng.normal(0, 0.01), prob))
    return wd


def test_retrain_detects_planted_effect(retrain_store, tmp_path):
    cfg = AnalysisConfig(workdir=retrain_store, reports=tmp_path / "r", seeds=SEEDS_R, compute=False, progress=False,
                         scorers=("oracle", "etw"), extra={"ratios": [0.1, 0.3]})
    res = get_analysis("retrain")(cfg)
    v = pd.DataFrame(res["verdicts"])
    # one Holm family per (objective, scorer at q): top-q vs {random q, bottom-q} on both primary metrics
    assert len(v) == 2 * 2 * 2 * 2 and (v["family_size"] == 4).all()
    assert set(v["metric"]) == {"forget_prob_gap", "log10_fq"}
    oracle = v[v["method"].str.contains("oracle")]
    assert set(oracle["method"]) == {"ga/oracle-hard0.1", "ga/oracle-hard0.3"}
    assert (oracle["decision"] == "better").all()
    assert (v.loc[v["method"].str.contains("etw"), "decision"] != "better").all()
    out = tmp_path / "r" / "retrain"
    assert (out / "retrain_curves.png").stat().st_size > 0 and (out / "retrain_curves.pdf").exists()
    assert "top-q beats `random_k`" in (out / "report.md").read_text()
    vs = R.retrain_verdicts(cfg, "oracle", ratios=(0.3,))
    assert len(vs) == 4 and all(x.decision == "better" for x in vs)


def test_run_metrics_directions_and_floor():
    s = {"forget_quality": 0.0, "model_utility": 0.5, "forget_prob": 0.2, "mia": {"mia_min_k": 0.3, "privleak": -12.0}}
    m = run_metrics(s, RETAIN)
    assert m["log10_fq"] == pytest.approx(-300) and m["privleak_abs"] == 12.0
    # distances to the retain model: |0.2 - 0.2| and |0.3 - 0.64|, not |0.3 - 0.5|
    assert m["forget_prob_gap"] == pytest.approx(0.0) and m["mia_min_k_gap"] == pytest.approx(0.34)
    collapsed = run_metrics({**s, "forget_prob": 0.048}, {"forget_prob": 0.242})
    assert collapsed["forget_prob_gap"] == pytest.approx(0.194)  # over-forgetting is a distance too
    assert np.isnan(run_metrics(s)["forget_prob_gap"]) and np.isnan(run_metrics({})["model_utility"])


def test_runs_table_reads_the_retain_reference(tmp_path):
    from tueval.analysis.runs import retain_reference

    assert retain_reference(fake_workdir(tmp_path / "a")) == RETAIN
    assert retain_reference(fake_workdir(tmp_path / "b", retain=None)) is None


def test_plots_draw_labelled_figures(tmp_path):
    from tueval import plots

    pts = pd.DataFrame({"arm": ["a", "a", "b", "b"], "x": [0.0, 0.2, 1.0, 1.1], "y": [1.0, 1.2, 0.5, 0.7]})
    from tueval.stats import group_ci

    summ = group_ci(pts, "arm", "x")
    assert summ["n"].tolist() == [2, 2] and (summ["ci_low"] < summ["mean"]).all()
    mean = pts.groupby("arm", as_index=False)[["x", "y"]].mean().assign(lo=lambda d: d.x - .1, hi=lambda d: d.x + .1)
    fig = plots.pareto_plot(mean, "x", "y", "arm", x_ci=("lo", "hi"), points=pts, xlabel="X (units)", ylabel="Y")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "X (units)" and len(ax.get_legend().get_texts()) == 2
    d = pd.DataFrame({"control": ["c1"] * 3 + ["c2"] * 3, "diff": [1, 2, 3, -1, 0, 1]})
    est = pd.DataFrame({"control": ["c1", "c2"], "estimate": [2, 0], "ci_low": [0.5, -2], "ci_high": [3.5, 2]})
    fig2 = plots.paired_strip_plot(d, estimates=est, better="up")
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["c1", "c2"]
    curve = pd.DataFrame({"q": [0.1, 0.3, 0.1, 0.3], "m": [1, 2, 2, 3], "arm": ["a", "a", "b", "b"]})
    curve["ci_low"], curve["ci_high"] = curve["m"] - 0.5, curve["m"] + 0.5
    fig3 = plots.curve_plot(curve, "q", "m", "arm")
    assert len(fig3.axes[0].lines) == 2
    fig4 = plots.bar_ci(curve, "arm", "m", hue="q", baseline=0.5)
    assert len(fig4.axes[0].patches) == 4
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_report_figures_are_byte_reproducible(tmp_path):
    """A report figure saved twice (a second later) gives the same PNG and PDF bytes: re-running the demo with the
    same results leaves the committed reports/ unchanged (the PDF carries no creation date)."""
    import time

    import matplotlib.pyplot as plt

    from tueval.report import ReportWriter

    def save(root):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        ax.set_xlabel("x (units)")
        ReportWriter(root, "t").figure("f", fig)
        return {e: (root / f"f.{e}").read_bytes() for e in ("png", "pdf")}

    a = save(tmp_path / "a")
    time.sleep(1.1)
    assert save(tmp_path / "b") == a


def test_identical_arms_flags_degenerate_controls():
    rows = [{"objective": "ga", "method": "ga/m", "arm": arm, "seed": s, "role": "confirmatory",
             "log10_fq": -2.0 - s - (arm == "method"), "model_utility": 0.5}
            for s in range(3) for arm in ("method", "magnitude_matched", "uniform")]
    same = identical_arms(pd.DataFrame(rows))
    assert same[["arm", "same_as"]].values.tolist() == [["magnitude_matched", "uniform"]]


def test_check_tradeoff_family_from_comparisons(controls_store, tmp_path):
    """`tueval check`'s trade-off family: the uncorrected comparisons carry per-seed diffs, so check can correct
    them together with its other families; the planted method beats every control, the null one does not."""
    from tueval.check import tradeoff_comparisons
    from tueval.stats import beats_all, verdict_table

    cfg = cfg_for(controls_store, tmp_path)
    controls = ["random_k", "step_matched", "uniform"]
    comps = tradeoff_comparisons(cfg, "tokenunlearn", "hard", 0.3, controls, "ga")
    assert len(comps) == len(controls) * 2 and all(len(c.result.diffs) == len(SEEDS) for c in comps)
    assert beats_all(verdict_table(comps, alpha=0.05, correction="holm"))
    # the same numbers as the controls analysis' own verdicts for that method
    vs = {(v.metric, v.control): v for v in C.controls_verdicts(cfg, "tokenunlearn", "hard", 0.3, controls, "ga")}
    for c in comps:
        v = vs[(c.metric, c.control)]
        assert (c.result.estimate, c.result.ci_low, c.result.p_value) == (v.estimate, v.ci_low, v.p_value)
    null = method_comparisons(method_runs(cfg, "etw", "soft", None, ["permuted", "uniform"], "ga"), C.PRIMARY)
    assert not beats_all(verdict_table(null, alpha=0.05, correction="holm"))


def test_full_profile_grid_covers_every_scorer_objective_and_control(tmp_path):
    """`--profile full`: every scorer family on every objective against every control (plus the sweeps), and
    every one of its run specs resolves (names and settings valid) before hours of computing start."""
    from tueval import defaults
    from tueval.unlearn import resolve

    wd = fake_workdir(tmp_path)
    cfg = AnalysisConfig(workdir=wd, reports=tmp_path / "r", seeds=(0, 1), compute=False, progress=False,
                         profile="full")
    st = C.grid_settings(cfg)
    cells = grid_cells(st["objectives"], st["methods"], st["controls"], cfg.seeds, st["fixed"], st["ratios"],
                         st["lrs"])
    pairs = {(c.objective, c.spec.scorer) for c in cells if c.arm == METHOD_ARM}
    scorers = {m["scorer"] for m in defaults.FULL_METHODS}
    assert pairs == {(o, s) for o in defaults.FULL_OBJECTIVES for s in scorers}
    arms = {(c.method, c.arm) for c in cells}
    for method in {c.method for c in cells}:
        assert {a for m, a in arms if m == method} >= {METHOD_ARM, *defaults.FULL_CONTROLS, BASE}, method
    specs = unique_specs(cells)
    assert len(specs) > 1000
    for spec in specs:
        resolve(spec, wd)


def test_grid_profile_is_every_preset_against_its_controls(tmp_path):
    """`--profile grid`: every listed paper preset on its own objective (TokenUnlearn also on NPO), each against
    its informative control, step_matched and its uniform base, over the analysis seeds; every spec resolves."""
    from tueval import defaults
    from tueval.presets import expand_method
    from tueval.unlearn import resolve

    wd = fake_workdir(tmp_path)
    cfg = AnalysisConfig(workdir=wd, reports=tmp_path / "r", seeds=tuple(defaults.SEEDS), compute=False,
                         progress=False, profile="grid")
    st = C.grid_settings(cfg)
    cells = grid_cells(st["objectives"], st["methods"], st["controls"], cfg.seeds, st["fixed"], st["ratios"],
                         st["lrs"])
    methods = {(c.objective, c.spec.scorer, c.spec.mode) for c in cells if c.arm == METHOD_ARM}
    listed = {(m["objective"], m["scorer"], m["mode"]) for m in map(expand_method, defaults.GRID_METHODS)}
    assert methods == listed
    assert {("ga", "tokenunlearn", "hard"), ("npo", "tokenunlearn", "hard"), ("tpo", "tif", "none"),
            ("graddiff", "etw", "soft")} <= methods
    for method in {c.method for c in cells}:
        arms = {c.arm for c in cells if c.method == method}
        assert BASE in arms and "step_matched" in arms and len(arms - {METHOD_ARM, BASE}) == 2, (method, arms)
        assert {c.seed for c in cells if c.method == method} == set(defaults.SEEDS)
    assert len(defaults.SEEDS) >= 7
    for spec in unique_specs(cells):
        resolve(spec, wd)


def test_registry_finds_every_analysis_and_the_library_never_imports_them():
    """The analyses are found through the entry points (demo order, report folder, question from each
    descriptor), and no module of the library imports them."""
    import ast
    from pathlib import Path

    import tueval
    from tueval.analysis import all_analyses
    from tueval.demo import demo_analyses

    names = [a.name for a in all_analyses()]
    assert names == list(demo_analyses()) == ["alignment", "sanity", "intervention", "snr", "controls", "replication",
                                              "retrain"]
    assert all(a.question.endswith("?") and a.folder == a.name for a in all_analyses())
    assert get_analysis("controls").primary == C.PRIMARY and get_analysis("retrain").demo_overrides
    offenders = []
    for p in Path(tueval.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{p.name}: {m}" for m in mods if m.split(".")[0] in ("tueval_analyses", "analyses")]
    assert not offenders


def test_metric_catalogue_drives_directions_and_labels():
    from tueval.errors import SpecError
    from tueval.metrics.catalogue import METRICS, Metric, get, higher_is_better, label

    from tueval.metrics.catalogue import direction

    assert not higher_is_better("forget_prob_gap") and higher_is_better("log10_fq")
    assert direction("forget_prob") is None and direction("mia_min_k") is None and direction("nope") is None
    with pytest.raises(SpecError):  # no better direction: refused, not guessed
        higher_is_better("forget_prob")
    assert label("ap_lift[spans]") == "AP lift" and get("log snr_dir @k=0.3").name == "log_snr_dir"
    assert higher_is_better("not_a_metric") and label("not_a_metric") == "not_a_metric"
    assert len({m.name for m in METRICS.values()}) == len(METRICS)
    with pytest.raises(SpecError):
        Metric("x", "run", True, "x", derive="sqrt")
