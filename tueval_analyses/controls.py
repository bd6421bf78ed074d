"""Controls on the forget-utility trade-off: does each token-level method beat its own weighting controls, paired
by seed?

For every objective and method the grid holds the method itself, the method with each control (``random_k``:
as many tokens at random positions, redrawn every step; ``random_k_fixed``: the same, one fixed random subset per
example across epochs; ``permuted``: its own weights shuffled within the sequence; ``magnitude_matched``: uniform
weights with the method's total weight, token-count normalised; ``step_matched``: uniform weights with the
parameter step rescaled to the method's) and the sequence-level base (``uniform``: scorer uniform, mode none), all
over the same seeds with ``defaults.FIXED`` settings. Runs become the tidy runs table (``tueval.analysis.runs``),
which ``analyse`` turns into seed-paired verdicts (``tueval.analysis.families``): Holm labels per method over both
primary metrics and every control, intersection-union "better on both" and "beats every control", BH over the
whole exploratory screen; controls identical to another arm are reported and left out.

lm-eval: with ``extra={"lmeval_tasks": True}`` (the three exported tasks) or a list of task names, every run is
computed with ``RunSpec.lmeval_tasks`` (other run ids than the default runs: off by default so cached runs are
reused). Runs whose summaries hold ``lmeval`` add the MC accuracies ``lmeval_forget_mc`` (lower is better),
``lmeval_retain_mc`` and ``lmeval_utility_mc`` to runs_long.csv and arm_summary.csv (descriptive, no verdicts)
and the figure ``lmeval_tradeoff``; without them the report is unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tueval import defaults
from tueval.analysis import Analysis, AnalysisConfig
from tueval.stats.paired import robust_level_note
# the grid and its confirmatory metrics are library code (shared with the replication analysis)
from tueval.analysis.controls_grid import (DEFAULT_FAMILY, LMEVAL_TASKS, PRIMARY, QUICK_METHODS,  # noqa: F401
                                           QUICK_OBJECTIVES, SCREEN_FAMILY, SECONDARY, SWEEP_LRS, SWEEP_RATIOS,
                                           grid_runs, grid_settings, matched_result, refine_setting)

NAME = "controls"
TITLE = "Controls on the forget-utility trade-off"


def run(cfg: AnalysisConfig) -> dict:
    """Controls analysis: runs (or reads) the grid, writes reports/controls/, returns verdicts and paths."""
    from tueval.analysis.bracketing import FACTOR
    from tueval.analysis.grid import method_name
    from tueval.report import regen_command

    st = grid_settings(cfg)
    lm_setting = {"lm-eval tasks": list(st["lmeval_tasks"])} if st["lmeval_tasks"] else {}
    runs = grid_runs(cfg, st)
    return analyse(runs, Path(cfg.reports) / ANALYSIS.folder, alpha=cfg.alpha, family=st["family"],
                   matched=matched_result(runs, cfg, st["fixed"], st["family"], st["refine"],
                                          st["bracket_rounds"]),
                   settings={"workdir": str(cfg.workdir.root), "profile": cfg.profile,
                             "objectives": st["objectives"], "methods": [method_name(m) for m in st["methods"]],
                             "controls": st["controls"], "settings over each objective's and preset's own": st["fixed"],
                             "sweep ratios": st["ratios"] or "none", "sweep learning rates": st["lrs"] or "none",
                             "uniform base also at its learning rate x": st["base_lr_factors"] or "none",
                             "other controls also at their learning rate x": st["control_lr_factors"] or "none",
                             "bracketing rounds (controls re-dosed by a search over the learning rate where a "
                             f"seed is not bracketed, steps of {FACTOR:g}x outside the rates tried)":
                                 st["bracket_rounds"],
                             "Holm family": st["family"], "exploratory screen": "BH over every method, control "
                                                                              "and secondary metric",
                             "trajectory checkpoints (eval_every)": st["fixed"].get("eval_every") or "none",
                             **lm_setting},
                   command=regen_command(NAME, cfg), figures=bool((cfg.extra or {}).get("figures", True)))


def analyse(runs, out: Path, alpha: float = 0.05, family: str = DEFAULT_FAMILY, settings: dict | None = None,
            command: str | None = None, figures: bool = True, matched=None) -> dict:
    """The pure half of ``run``: verdicts and the report folder from a tidy runs table (and, with ``matched``,
    the matched-forgetting comparison, which is then the confirmatory verdict)."""
    from dataclasses import replace

    from tueval.analysis.families import (degenerate_controls, identical_arms, paired_diffs, paired_verdicts,
                                          without_controls)
    from tueval.analysis.matched_tables import matched_verdicts

    same = identical_arms(runs)
    drop = degenerate_controls(same)
    verdicts, vframe = paired_verdicts(runs, PRIMARY, alpha=alpha, family=family, drop=drop)
    _, sframe = paired_verdicts(runs, SECONDARY, alpha=alpha, family=SCREEN_FAMILY, correction="fdr_bh", drop=drop)
    diffs = paired_diffs(runs, [*PRIMARY, *SECONDARY])
    if matched is not None:
        mdiffs = without_controls(matched.diffs, drop)
        matched = replace(matched, diffs=mdiffs, verdicts=matched_verdicts(mdiffs, alpha, family)[1])
    paths = write_report(Path(out), runs, vframe, sframe, diffs, settings or {}, command or "", alpha, figures,
                         same=same, dropped=drop, matched=matched)
    confirmatory = (matched.verdicts.to_dict("records") if matched is not None
                    else [v.to_dict() for v in verdicts])
    return {"verdicts": confirmatory, "single_lr_verdicts": [v.to_dict() for v in verdicts],
            "secondary": sframe.to_dict("records"), "family": family, "dropped_controls": drop.to_dict("records"),
            "n_seeds": int(runs["seed"].nunique()), "n_runs": int(runs["run_id"].nunique()), **paths}


READINGS = ("estimate_favourable", "estimate_interpolated")
MATCHED_NAMES = {"utility_at_matched_fq": "utility at matched forget quality",
                 "utility_at_matched_fp": "utility at matched forget-probability distance"}


def bracketing_text(runs) -> str:
    """The report section on the bracketing runs (``tueval.analysis.bracketing``)."""
    from tueval.analysis.bracketing import FACTOR
    from tueval.report import markdown_table

    head = ("### Bracketing runs\nWhere a control's runs did not reach a method's final forget level on some seed, "
            "the control ran again on every seed of that comparison at the next rate of a search for the rate whose "
            "run reaches furthest towards the level (`bracket_rounds` rounds, `tueval.analysis.bracketing`; "
            "`bracketing.csv` lists the runs), and those runs joined its frontier. Per seed, where the run that "
            f"reached furthest is at the largest rate tried, the rate goes up {FACTOR:g}x; where it is still moving "
            "towards the level at its end (under-dosed), the next rate is the geometric mean of its rate and the next "
            "larger one; where it turned back before its end (GA's forget quality falls again after collapse), the "
            f"geometric mean with the next smaller one, or {FACTOR:g}x below. The first round also runs {FACTOR:g}x "
            "the largest rate, so bracketing only adds runs to a control's frontier. A seed whose method ended short "
            "of the target model's own level is not re-dosed (no dose forgets less than none). Seeds still not "
            "bracketed count against the method (`n_not_bracketed`); `step_matched` takes the method's step size by "
            "construction and is never re-dosed.\n")
    if runs.empty:
        return head + "\nNo bracketing run was needed: every re-dosable control reached every seed's level.\n"
    per = (runs.groupby(["objective", "method", "arm", "round", "lr"], sort=False)
           .agg(runs=("run_id", "size")).reset_index())
    return head + markdown_table(per)


def _matched_sections(rw, matched, alpha: float) -> dict:
    """The report sections and tables of the matched-forgetting comparison; returns its tables."""
    from tueval.analysis.families import VERDICT_TABLE_COLUMNS as COLUMNS, better_on_all, family_note, plain_summary
    from tueval.analysis.lr_bracket import bracket_table
    from tueval.report import markdown_table, verdict_markdown

    v = matched.verdicts
    rw.text("## Confirmatory: utility at matched forgetting\n"
            "A method that unlearns less keeps more utility, so the verdict compares utility at the same amount "
            "of forgetting. Every run evaluates checkpoints along its trajectory (the checkpoint evaluation: the "
            "whole forget split, so forget quality and forget probability are the final evaluation's; utility is "
            "the likelihood part of model utility on a fixed retain subset, `utility_est`). Per seed, the "
            "method's level is its final checkpoint; each control's trajectory (step 0 = the target model) "
            "passes that level between two of its checkpoints (the first crossing), and its utility there is only "
            "known to lie between theirs: 'better' is tested with the control given the higher of the two "
            "(`estimate`), a 'worse' label must also hold with the lower (`estimate_favourable`), and the linear "
            "interpolation is shown for reference (`estimate_interpolated`). Denser checkpoints narrow the gap "
            "between the readings (`eval_every` of the profile's methods). Two "
            "estimands of the level: log10 forget quality, and the distance of the forget probability to the "
            "retain model's (so over-forgetting is not rewarded). A seed whose control never reaches the method's "
            "level is **not bracketed** and counts against the method (worst-rank value, `n_not_bracketed`), never "
            "dropped; a 'worse' label must also hold with those seeds counted for the method (they were never "
            "compared). The uniform base and the other controls also run at multiples of their learning rate where "
            "the profile says so (`base_lr_factors`, `control_lr_factors`): a control's frontier over those runs "
            "then reaches methods that forget more than it does at its own rate. Tests and labels as in "
            "Statistics below: one Holm family per objective and method over both estimands and every control; "
            "\"better on both\" is intersection-union.\n\n"
            + (family_note(v, alpha) if not v.empty else ""))
    rw.text("### Verdicts\n" + verdict_markdown(v, columns=[*COLUMNS, *READINGS, "n_not_bracketed"]))
    if not v.empty:
        rw.text("### Better on both estimands (intersection-union)\n" + markdown_table(better_on_all(v)))
        rw.text("### In plain words\n" + plain_summary(v, MATCHED_NAMES))
    tables = {"matched_diffs": matched.diffs, "hypervolumes": matched.hypervolumes,
              "trajectories": matched.trajectories}
    if matched.bracketing is not None:
        tables["bracketing"] = matched.bracketing
        rw.text(bracketing_text(matched.bracketing))
    if matched.refinements is not None:
        tables["refinements"] = matched.refinements
        rw.text(f"### Refinement runs\n{len(matched.refinements)} control runs were trained again with a checkpoint "
                "at every step inside the segments this comparison reads (`refine: true`; "
                "`tueval.analysis.refine`), each checked to end exactly where its run ended; "
                "`refinements.csv` lists them.\n")
    hv = matched.hypervolumes
    if not hv.empty:
        g = hv.groupby(["objective", "method", "arm", "metric"], sort=False)["value"]
        rw.text("### Dominated area (hypervolume, descriptive)\n"
                "Area of the forget-utility plane an arm's checkpoints dominate beyond the target model's forget "
                "level and above utility 0 (mean over seeds; larger is better; no test).\n"
                + markdown_table(g.mean().unstack("metric").reset_index()))
    if "lr" in matched.trajectories:
        br = bracket_table(matched.trajectories)
        if not br.empty:
            tables["lr_bracket"] = br
            rw.text("### Does the uniform base bracket the methods?\n"
                    "Per objective, on the forget probability: `low` and `high` are the base's learning rates "
                    "whose trajectories (from the target model's checkpoint to the run's end, mean over seeds) "
                    "reach the weakest and the strongest method's final level, `lrs` the grid's rates between "
                    "them, `add` the rates to add where no rate reaches (a factor 3 beyond the grid). Per seed "
                    "and estimand, the verdicts' `n_not_bracketed` says what this mean hides.\n"
                    + markdown_table(br))
    return tables


def write_report(root: Path, runs, verdicts, secondary, diffs, settings: dict, command: str, alpha: float,
                 figures: bool = True, same=None, dropped=None, matched=None) -> dict[str, Any]:
    """Write report.md, the CSVs and (unless ``figures`` is False) the figures of the analysis into ``root``;
    ``same`` / ``dropped``: the identical arms and the controls left out of the families because of them."""
    import pandas as pd

    from tueval.analysis.families import (VERDICT_TABLE_COLUMNS as COLUMNS, arm_means_table, arm_summary,
                                          better_on_all, family_note, identical_arms, plain_summary)
    from tueval.analysis.runs import lmeval_columns, long_table
    from tueval.plots.tradeoff import tradeoff_figures
    from tueval.report import ReportWriter, markdown_table, settings_md, verdict_markdown

    rw = ReportWriter(root, TITLE)
    seeds = sorted(runs["seed"].unique().tolist())
    conf = runs[runs["role"] == "confirmatory"]
    same = identical_arms(runs) if same is None else same
    dropped = pd.DataFrame() if dropped is None else dropped
    rw.text("## What was tested\n"
            "Does each token-level method beat its own controls on the forget-utility trade-off? Every method is "
            "run with the same seeds as: `random_k` (as many tokens per sequence at uniformly drawn positions, "
            "redrawn every step, same total weight), `random_k_fixed` (the same, but one fixed random subset per "
            "example for the whole run: a static scorer hits the same tokens every epoch too), `permuted` (its own "
            "weights shuffled within each sequence), `magnitude_matched` (uniform weights on every answer token, "
            "scaled to the method's total weight, normalised by the token count), `step_matched` (uniform weights; "
            "every optimiser step rescaled to the norm of the step the method takes from the same parameters, "
            "batch and optimiser state: the same size of update, spent on every token) and `uniform` (the "
            "sequence-level base: scorer uniform, mode none). Under AdamW a loss scaled by a constant is not a "
            "smaller update (Adam renormalises it), so only `step_matched` matches the size of the update. Arms "
            "are paired by seed (the seed fixes data order and sampling); the seed is the unit of analysis.\n")
    rw.text("## Settings\n" + settings_md({**settings, "seeds": f"{seeds} (n={len(seeds)})",
                                          "runs": f"{conf['run_id'].nunique()} confirmatory, "
                                                  f"{runs.loc[runs['role'] == 'sweep', 'run_id'].nunique()} sweep"}))
    rw.text("## Statistics\n"
            "Estimand: the mean over seeds of the paired difference method − control, with its 95% CI (Student-t "
            "below 20 seeds, bootstrap-t from 20), the bootstrap-t CI (robust to skewed differences; "
            f"{robust_level_note(alpha)}, as the calibration on skewed nulls needs) and "
            "d_z with its noncentral-t 95% CI. Test: one-sided sign-flip permutation test in the better direction "
            "(exact up to 16 seeds). Metrics: log10 forget quality (KS p-value; higher is better) and model "
            "utility (higher is better) are **confirmatory**; the distance of the forget probability to the retain "
            "model's, the distance of the Min-K% MIA AUC to the retain model's AUC and |privleak| (all lower is "
            "better) are exploratory: one Benjamini-Hochberg family over the whole screen, not used for claims. "
            "A failed seed (NaN or diverged metric) is never dropped: it takes the worst value of that metric over "
            "every arm and seed of the method (worst-rank rule) and counts against its arm (`n_failed`). "
            "Per comparison at α (`better_unadjusted`): p < α AND both CIs exclude 0 on the better side. Labels: "
            "'better' is the same with the Holm-adjusted p, within one family per objective and method over both "
            "primary metrics and every control; 'worse' mirrors it; otherwise 'not better' (which never means "
            "'no worse'). \"Better on both\" and \"beats every control\" are intersection-union tests on the "
            "per-comparison decisions (`tueval check` uses the same rule).\n\n" + family_note(verdicts, alpha)
            if not verdicts.empty else "## Statistics\n_(no comparisons)_\n")
    if not same.empty:
        rw.text("## Degenerate controls\nThese arms gave the same metrics as another arm of the same method on every "
                "seed (within 0.1%), so the comparison against them tests nothing new (e.g. `magnitude_matched` "
                "equals `uniform` for soft weights, whose total weight is the token count, and `random_k` equals "
                "`uniform` when the method's weights have no zeros):\n" + markdown_table(same))
        if not dropped.empty:
            rw.text("Left out of the verdict families (the arm named first in each pair that is not the method "
                    "or the uniform base):\n" + markdown_table(dropped))
        rw.table("identical_arms", same)
    mtables = _matched_sections(rw, matched, alpha) if matched is not None else {}
    single = ("## At one learning rate (secondary: the arms forget different amounts)\n"
              "The same families at each arm's final checkpoint, at the preset's learning rate. A method that "
              "forgets less keeps more utility here without being better: read these with the matched comparison "
              "above.\n" if matched is not None else "## Verdicts (confirmatory)\n")
    rw.text(single + verdict_markdown(verdicts, columns=COLUMNS))
    if not verdicts.empty:
        rw.text("### Better on both primary metrics (intersection-union)\n"
                + markdown_table(better_on_all(verdicts)))
        rw.text("### In plain words\n" + plain_summary(verdicts))
    index = ["objective", "method", "arm"]
    rw.text("## Per-arm means with 95% CI over seeds\n"
            + markdown_table(arm_means_table(arm_summary(conf, [*PRIMARY, *SECONDARY]), index)))
    lm = lmeval_columns(runs)
    if lm:
        rw.text("## lm-eval multiple-choice accuracy (descriptive)\n"
                "Accuracy (fraction correct, chance 0.25 with 4 choices) of the unlearned model on the workdir's "
                "exported lm-eval tasks: `lmeval_forget_mc` (lower = more forgetting), `lmeval_retain_mc` and "
                "`lmeval_utility_mc` (higher = more kept). Mean [95% CI] over seeds; no tests.\n"
                + markdown_table(arm_means_table(arm_summary(conf, lm), index)))
    if not secondary.empty:
        rw.text("## Exploratory metrics (one BH family over the whole screen, not confirmatory)\n"
                + verdict_markdown(secondary, columns=COLUMNS))
    if figures:
        rw.text("## Figures\n")
        if matched is not None:
            from tueval.plots.trajectories import trajectory_figures

            rw.figures(trajectory_figures(matched.trajectories))
        rw.figures(tradeoff_figures(runs, diffs, verdicts, PRIMARY))
    # the index reads verdicts*.csv: the confirmatory table is the matched comparison when there is one
    vt = ({"verdicts": matched.verdicts, "single_lr_verdicts": verdicts} if matched is not None
          else {"verdicts": verdicts})
    report = rw.finish({"runs_long": long_table(runs), "arm_summary": arm_summary(runs, [*PRIMARY, *SECONDARY, *lm]),
                        "paired_diffs": diffs, **vt, **mtables,
                        "exploratory_secondary": None if secondary.empty else secondary}, command)
    return {"report": str(report), "files": [str(root / f) for f in sorted(set(rw.files))]}


def controls_verdicts(cfg: AnalysisConfig, scorer: str, mode: str, ratio: float | None, controls: list[str],
                      objective: str, report: bool = False) -> list:
    """Verdicts of ONE scorer vs ``controls`` (control names and/or ``uniform``) on the confirmatory trade-off
    metrics, Holm over controls x metrics (identical controls left out); runs (or reads) what it needs;
    ``report`` also writes reports/check_controls/."""
    from tueval.analysis.families import degenerate_controls, identical_arms, paired_verdicts, without_controls
    from tueval.analysis.runs import method_runs

    runs = method_runs(cfg, scorer, mode, ratio, controls, objective)
    drop = degenerate_controls(identical_arms(runs))
    matched = matched_result(runs, cfg, dict((cfg.extra or {}).get("fixed", defaults.SHARED)), "method",
                             refine_setting(cfg))
    if matched is not None:  # the trade-off claim is the matched-forgetting one
        from tueval.analysis.matched_tables import matched_verdicts

        verdicts, _ = matched_verdicts(without_controls(matched.diffs, drop), cfg.alpha, "method")
    else:
        verdicts, _ = paired_verdicts(runs, PRIMARY, alpha=cfg.alpha, family="method", drop=drop)
    if report:
        analyse(runs, Path(cfg.reports) / f"check_{NAME}", alpha=cfg.alpha, family="method",
                settings={"scorer": scorer, "mode": mode, "ratio": ratio, "objective": objective,
                          "controls": list(controls)}, matched=matched)
    return verdicts


ANALYSIS = Analysis(name=NAME, title=TITLE,
                    question="Does the method beat random-token selection, its own permuted weights, a "
                             "step-matched uniform update and the sequence-level base?",
                    run=run, demo_order=5, primary=PRIMARY)
