"""The controls and retrain analyses and the library they are built from (grid, tidy runs table, seed-paired
families) on a FAKE store: synthetic finished runs with planted effects across seeds, found by the engine's own run
ids; plus the figure helpers of tueval.plots."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import tueval_analyses.controls as C
import tueval_analyses.retrain as R
from tueval.analysis import AnalysisConfig, get_analysis
from tueval.analysis.families import identical_arms, method_comparisons, paired_verdicts
from tueval.analysis.grid import BASE, METHOD_ARM, grid_cells, spec_key, unique_specs
from tueval.analysis.runs import gather, method_runs
from tueval.metrics.catalogue import run_metrics
from tueval.errors import MissingRunsError
from tueval.io import write_json
from tueval.unlearn import run_id
from tueval.workdir import Workdir

PLANTED = {"scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3}  # beats every control on FQ and utility
NULL = {"scorer": "etw", "mode": "soft"}  # same distribution as its controls
SEEDS = tuple(range(8))
SEEDS_R = tuple(range(9))  # a Holm family of 16 needs 9 seeds for the exact one-sided sign-flip test


def fake_workdir(root) -> Workdir:
    """A workdir with only a prepare.json: enough for run ids and the store, no models."""
    write_json(root / "prepare.json", {
        "paths": {"benchmark": "benchmark/fake", "tokenizer": "tokenizer/fake", "target": "models/target-fake",
                  "retain": "models/retain-fake", "ground_truth": "ground_truth/fake.parquet"},
        "profile": {"name": "fake", "forget_split": "forget10"}})
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
    cells = grid_cells(["ga"], [PLANTED, NULL], ["random_k", "permuted", "magnitude_matched", "uniform"], SEEDS)
    plant_controls(wd, cells)
    return wd


def cfg_for(wd, tmp_path, **kw) -> AnalysisConfig:
    extra = kw.pop("extra", {})
    kw.setdefault("seeds", SEEDS)
    return AnalysisConfig(workdir=wd, reports=tmp_path / "reports", compute=False, progress=False,
                          extra={"objectives": ["ga"], "methods": [PLANTED, NULL], **extra}, **kw)


def test_controls_detects_planted_effect_not_null(controls_store, tmp_path):
    res = get_analysis("controls")(cfg_for(controls_store, tmp_path, extra={"family": "method", "figures": False}))
    v = pd.DataFrame(res["verdicts"])
    assert len(v) == 2 * 4 * 2  # methods x controls (incl. uniform) x primary metrics
    planted = v[v["method"] == "ga/tokenunlearn-hard0.3"]
    null = v[v["method"] == "ga/etw-soft"]
    assert set(planted["control"]) == {"random_k", "permuted", "magnitude_matched", "uniform"}
    assert (planted["decision"] == "better").all(), planted[["control", "metric", "p_adjusted", "decision"]]
    assert (null["decision"] != "better").all()
    assert (planted["family_size"] == 8).all() and (planted["n_seeds"] == len(SEEDS)).all()
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
    # default family: methods x controls x metrics per objective, 16 members; 8 seeds cannot reach Holm alpha/16
    assert (v["family_size"] == 16).all() and not v["reachable"].any()
    assert "With 8 seeds no comparison in this family can be called 'better'" in md
    long = pd.read_csv(out / "runs_long.csv")
    assert {"objective", "method", "arm", "seed", "metric", "value", "run_id"} <= set(long.columns)
    assert long["run_id"].nunique() == res["n_runs"] == 2 * 4 * 8 + 8  # uniform base shared by both methods
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
        write_run(wd, c.spec, {**summary(1e-3, 0.6, 0.3), "lmeval": lm})
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


def test_paired_verdicts_pure_family_and_direction():
    rows = []
    for s in range(6):
        for arm, fp in (("method", 0.2), ("random_k", 0.5), ("uniform", 0.5)):
            rows.append({"objective": "ga", "method": "ga/x", "arm": arm, "seed": s, "role": "confirmatory",
                         "forget_prob": fp + 0.01 * s, "model_utility": 0.5 + 0.001 * ((s * 7 + len(arm)) % 5)})
    runs = pd.DataFrame(rows)
    vs, frame = paired_verdicts(runs, ["forget_prob"], family="method", alpha=0.05)
    assert [v.decision for v in vs] == ["better", "better"]  # lower forget prob is better; family of 2, n=6
    assert all(v.estimate < 0 and not v.higher_is_better for v in vs)
    vs, _ = paired_verdicts(runs, ["forget_prob", "model_utility"], family="method")
    assert len(vs) == 4 and vs[0].family_size == 4
    assert {v.decision for v in vs if v.metric == "model_utility"} <= {"not better", "worse"}


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
    cells = R.retrain_cells(["oracle", "etw"], [0.1, 0.3], SEEDS_R)
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
    # one Holm family per (objective, scorer at q, metric): top-q vs {random q, bottom-q}
    assert len(v) == 2 * 2 * 2 * 2 and (v["family_size"] == 2).all()
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
    m = run_metrics({"forget_quality": 0.0, "model_utility": 0.5, "forget_prob": 0.2,
                       "mia": {"mia_min_k": 0.3, "privleak": -12.0}})
    assert m["log10_fq"] == pytest.approx(-300) and m["mia_min_k_gap"] == pytest.approx(0.2)
    assert m["privleak_abs"] == 12.0 and np.isnan(run_metrics({})["model_utility"])


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
    controls = ["random_k", "magnitude_matched", "uniform"]
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


def test_grid_profile_is_the_demo_grid_on_both_objectives(tmp_path):
    """`--profile grid`: sequence-level, TokenUnlearn hard and soft, ETW, ATWU, TIF and SatImp, each on GA and NPO
    against its own control and the uniform base, over the demo seeds; every spec resolves."""
    from tueval import defaults
    from tueval.unlearn import resolve

    wd = fake_workdir(tmp_path)
    cfg = AnalysisConfig(workdir=wd, reports=tmp_path / "r", seeds=tuple(defaults.SEEDS), compute=False,
                         progress=False, profile="grid")
    st = C.grid_settings(cfg)
    cells = grid_cells(st["objectives"], st["methods"], st["controls"], cfg.seeds, st["fixed"], st["ratios"],
                         st["lrs"])
    methods = {(c.objective, c.spec.scorer, c.spec.mode) for c in cells if c.arm == METHOD_ARM}
    listed = {("tokenunlearn", "hard"), ("tokenunlearn", "soft"), ("etw", "soft"), ("atwu_proto", "none"),
              ("tif", "none"), ("satimp", "none")}
    assert methods == {(o, s, m) for o in ("ga", "npo") for s, m in listed}
    for method in {c.method for c in cells}:
        arms = {c.arm for c in cells if c.method == method}
        assert BASE in arms and len(arms - {METHOD_ARM, BASE}) == 1, (method, arms)
        assert {c.seed for c in cells if c.method == method} == set(defaults.SEEDS)
    specs = unique_specs(cells)
    assert len(specs) == 2 * (1 + 2 * len(listed)) * len(defaults.SEEDS)
    for spec in specs:
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
    assert names == list(demo_analyses()) == ["alignment", "sanity", "intervention", "snr", "controls", "retrain"]
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

    assert not higher_is_better("forget_prob") and higher_is_better("log10_fq")
    assert label("ap_lift[spans]") == "AP lift" and get("log snr_dir @k=0.3").name == "log_snr_dir"
    assert higher_is_better("not_a_metric") and label("not_a_metric") == "not_a_metric"
    assert len({m.name for m in METRICS.values()}) == len(METRICS)
    with pytest.raises(SpecError):
        Metric("x", "run", True, "x", derive="sqrt")
