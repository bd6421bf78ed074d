"""The retraining form of the intervention test (ROAR-style): unlearn ONLY the scorer's top-q tokens, a random q,
or the bottom-q tokens, and compare what is forgotten, paired by seed.

If a scorer finds the tokens that carry the forget knowledge, unlearning its top-q fraction (hard selection,
control None) should forget more than unlearning a random q (``random_k``: the same count per sequence at random
positions) and more than the bottom q (``bottom_k``: the same count from the least-scored tokens). "Forget more"
is measured as getting closer to the retain model (forget probability as its distance to the retain model's, so
that a collapsed model does not win) and as a higher forget quality.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tueval import defaults
from tueval.analysis import Analysis, AnalysisConfig
from tueval.stats.paired import robust_level_note

NAME = "retrain"
TITLE = "Retraining test: unlearn only the top-q vs a random q vs the bottom-q tokens"
DEFAULT_SCORERS = ("tokenunlearn", "etw", "oracle")
RATIOS = (0.1, 0.3, 0.5)
QUICK_RATIOS = (0.3,)
TOP = "top"
#: arm name -> weighting control of the run
ARMS = {TOP: None, "random_k": "random_k", "bottom_k": "bottom_k"}
CONTROLS = [a for a in ARMS if a != TOP]
#: confirmatory: does top-q forget more? (distance of the forget probability to the retain model's, lower better;
#: log10 forget quality, higher better)
PRIMARY = ("forget_prob_gap", "log10_fq")
SECONDARY = ("model_utility", "forget_truth_ratio", "mia_min_k_gap")
ARM_LABELS = {TOP: "top-q (scorer)", "random_k": "random q", "bottom_k": "bottom-q (scorer)"}


def retrain_cells(scorers: Sequence[str], ratios: Sequence[float], seeds: Sequence[int], objective: str = "ga",
                  arms: Sequence[str] = tuple(ARMS), fixed: dict | None = None, scorer_params: dict | None = None):
    """Every run: for each scorer and q, the top-q, random-q and bottom-q arms (hard selection) over seeds."""
    from tueval.analysis.grid import selection_cells

    return selection_cells(scorers, ratios, seeds, {a: ARMS[a] for a in arms}, objective, fixed, scorer_params)


def analyse(runs, out: Path, alpha: float = 0.05, family: str | tuple = "method",
            settings: dict | None = None, command: str | None = None) -> dict:
    """Verdicts and the report folder of the retraining analysis from a tidy runs table."""
    from tueval.analysis.families import (FAMILIES, VERDICT_TABLE_COLUMNS as COLUMNS, arm_means_table,
                                          arm_summary, better_on_all, family_note, paired_diffs, paired_verdicts)
    from tueval.analysis.runs import long_table, runs_by_selection
    from tueval.plots.tradeoff import selection_curves_figure
    from tueval.report import ReportWriter, fmt, markdown_table, settings_md, verdict_markdown

    verdicts, vframe = paired_verdicts(runs, PRIMARY, alpha=alpha, family=family, method_arm=TOP, controls=CONTROLS)
    _, sframe = paired_verdicts(runs, SECONDARY, alpha=alpha, family="overall", method_arm=TOP, controls=CONTROLS,
                                correction="fdr_bh")
    cols = FAMILIES.get(family, ()) if isinstance(family, str) else tuple(family)
    if not vframe.empty:
        vframe["family_definition"] = (
            "{random q, bottom-q} x metrics per objective, scorer and q" if "method" in cols and "metric" not in cols
            else "{random q, bottom-q} per objective, scorer, q and metric" if "metric" in cols
            else "scorers x q x {random q, bottom-q} x metrics per objective")
    diffs = paired_diffs(runs, [*PRIMARY, *SECONDARY], method_arm=TOP)
    root = Path(out)
    rw = ReportWriter(root, TITLE)
    seeds = sorted(runs["seed"].unique().tolist())
    rw.text("## What was tested\n"
            "ROAR-style intervention by retraining: for each scorer and fraction q, three unlearning runs per seed "
            "with hard selection of q of each answer's tokens: the scorer's **top-q** tokens, a **random q** (same "
            "count per sequence, uniform positions: control `random_k`) and the scorer's **bottom-q** (control "
            "`bottom_k`). If the scorer finds the tokens that carry the forget knowledge, top-q should forget "
            "more than random-q and bottom-q: a forget probability closer to the retain model's (a collapsed "
            "model's probability falls below the retain model's and is as far from it as an unlearned one above "
            "it) and a higher forget quality.\n")
    rw.text("## Settings\n" + settings_md({**(settings or {}), "seeds": f"{seeds} (n={len(seeds)})",
                                          "runs": runs["run_id"].nunique()}))
    rw.text("## Statistics\n"
            "Paired by seed: mean difference top − control, two-sided 95% CI (t below 20 seeds) and bootstrap-t "
            f"CI ({robust_level_note(alpha)}), d_z with its CI, one-sided exact sign-flip test in the better "
            "direction (distance of the forget probability to the retain model's: lower is better; log10 forget "
            "quality: higher is better). A "
            "failed seed takes the worst value of its metric (worst-rank rule). Confirmatory families (Holm): "
            "for each objective, scorer and q, top-q against {random q, bottom-q} on both primary metrics. "
            "\"Beats on both\" is an intersection-union test on the per-comparison decisions at α. Utility, truth "
            "ratio and the distance of the MIA AUC to the retain model's are exploratory (one BH family over the "
            "whole screen).\n\n" + (family_note(vframe, alpha) if not vframe.empty else ""))
    rw.text("## Verdicts (confirmatory)\n" + verdict_markdown(vframe, columns=COLUMNS) if not vframe.empty else
            "## Verdicts\n_(no comparisons)_\n")
    lines = []
    for r in vframe.itertuples():
        word = {"better": "YES", "worse": "no (worse)"}.get(r.decision, "no")
        lines.append(f"- {r.method} top-q beats `{r.control}` on {r.metric}? {word} (Δ={fmt(r.estimate)} "
                     f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}], d_z={fmt(r.effect_size)} [{fmt(r.effect_size_ci_low)}, "
                     f"{fmt(r.effect_size_ci_high)}], p_adj={fmt(r.p_adjusted)}, n={r.n_seeds})")
    if not vframe.empty:
        for r in better_on_all(vframe).itertuples():
            lines.append(f"- {r.method} top-q beats `{r.control}` on both primary metrics (intersection-union)? "
                         f"{'YES' if r.better_on_all else 'no'}")
    rw.text("## In plain words\n" + "\n".join(lines) + "\n")
    index = ("objective", "scorer", "q", "arm")
    summ = arm_summary(runs_by_selection(runs), [*PRIMARY, *SECONDARY], index)
    rw.text("## Per-arm means with 95% CI over seeds\n" + markdown_table(arm_means_table(summ, index)))
    if not sframe.empty:
        rw.text("## Exploratory metrics (one BH family over the whole screen)\n"
                + verdict_markdown(sframe, columns=COLUMNS))
    rw.text("## Figures\n")
    rw.figure("retrain_curves", selection_curves_figure(runs_by_selection(runs), ARM_LABELS),
              "Distance of the forget probability to the retain model's, log10 forget quality and model utility vs "
              "q for each arm (mean ± 95% t-CI over seeds, faint points = single seeds). Numbers: arm_summary.csv.")
    report = rw.finish({"runs_long": long_table(runs), "arm_summary": summ, "paired_diffs": diffs,
                        "verdicts": vframe, "exploratory_secondary": None if sframe.empty else sframe}, command)
    return {"verdicts": [v.to_dict() for v in verdicts], "secondary": sframe.to_dict("records"),
            "n_seeds": len(seeds), "n_runs": int(runs["run_id"].nunique()), "report": str(report),
            "files": [str(root / f) for f in sorted(set(rw.files))]}


def run(cfg: AnalysisConfig) -> dict:
    """Retraining analysis: runs (or reads) top/random/bottom-q runs, writes reports/retrain/, returns verdicts."""
    from tueval.analysis.runs import gather
    from tueval.report import regen_command

    ex = cfg.extra or {}
    scorers = list(cfg.scorers or ex.get("scorers", DEFAULT_SCORERS))
    ratios = [float(q) for q in ex.get("ratios", QUICK_RATIOS if cfg.profile == "quick" else RATIOS)]
    objective = ex.get("objective", "ga")
    fixed = dict(ex.get("fixed", defaults.SHARED))
    runs = gather(cfg, retrain_cells(scorers, ratios, cfg.seeds, objective, fixed=fixed))
    return analyse(runs, Path(cfg.reports) / ANALYSIS.folder, alpha=cfg.alpha,
                   settings={"workdir": str(cfg.workdir.root), "profile": cfg.profile, "objective": objective,
                             "scorers": scorers, "q": ratios, "settings over the objective's own": fixed},
                   command=regen_command(NAME, cfg))


def retrain_verdicts(cfg: AnalysisConfig, scorer: str, ratios: Sequence[float] = (0.3,), objective: str = "ga",
                     controls: Sequence[str] = ("random_k", "bottom_k"), report: bool = False) -> list:
    """Verdicts of ONE scorer's top-q vs ``controls`` at each q on the distance of the forget probability to the
    retain model's and log10 forget quality, Holm over q x controls x metrics; runs (or reads) what it needs. Controls other than random_k and bottom_k (e.g.
    uniform, magnitude_matched) have no retraining form and are skipped; if none is left, both are used."""
    import pandas as pd

    from tueval.analysis.families import paired_verdicts
    from tueval.analysis.runs import gather
    from tueval.stats import verdicts_from_frame

    arms = [TOP, *([c for c in controls if c in CONTROLS] or CONTROLS)]
    runs = gather(cfg, retrain_cells([scorer], ratios, cfg.seeds, objective, arms=arms,
                                     fixed=dict((cfg.extra or {}).get("fixed", defaults.SHARED))))
    if report:
        res = analyse(runs, Path(cfg.reports) / f"check_{NAME}", alpha=cfg.alpha,
                      settings={"scorer": scorer, "q": list(ratios), "objective": objective})
        return verdicts_from_frame(pd.DataFrame(res["verdicts"]))
    verdicts, _ = paired_verdicts(runs, PRIMARY, alpha=cfg.alpha, family=("objective",), method_arm=TOP,
                                  controls=arms[1:])
    return verdicts


ANALYSIS = Analysis(name=NAME, title=TITLE,
                    question="Does unlearning only the scorer's top-q tokens beat a random q and the bottom q?",
                    run=run, demo_order=6, primary=PRIMARY,
                    demo_overrides={"profile": "quick", "scorers": ("tokenunlearn",)})
