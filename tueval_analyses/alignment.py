"""Alignment analysis: do token scores find the ground-truth (GT) tokens? AP, AP lift with CI, ROC-AUC, P/R/F1@|GT|,
IoU-F1, pointing game and relevance mass per scorer, per fact label, for both ground truths (annotated spans and the
counterfactual target-vs-retain mask), plus the GT-permutation null and verdicts "scorer beats random" (Holm)."""
from __future__ import annotations

import time

from tueval.analysis import Analysis, AnalysisConfig
from tueval.analysis.profiles import AlignmentProfile

PROFILES = {"quick": AlignmentProfile(None, 2, 1000, 100), "default": AlignmentProfile(None, None, 2000, 200),
            "full": AlignmentProfile(None, None, 9999, 1000)}
TITLE = "Alignment of token scores with ground-truth tokens"
TABLE_METRICS = ("ap", "ap_lift", "ap_lift_prevalence", "roc_auc", "f1_at_k", "iou_f1", "pointing_game")


def run(cfg: AnalysisConfig) -> dict:
    """Alignment of every scorer with both ground truths, the permutation null and the verdicts vs random."""
    from tueval.analysis import alignment_tables as A
    from tueval.analysis.forget import load_forget
    from tueval.analysis.scores import GT_CONTROLS, compute_scores, learned_states, setup, with_gt_controls
    from tueval.stats import verdicts_frame

    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    data = load_forget(cfg.workdir, prof.max_examples)
    states = learned_states(cfg, names, seeds)
    base = compute_scores(data, [n for n in names if n not in GT_CONTROLS], seeds, states=states)
    scores = with_gt_controls(data, base, names, seeds)
    rows = A.all_gt_rows(scores, data)
    summ, per_seed = A.summaries(rows, prof.n_boot)
    verdicts = verdicts_frame(A.ap_lift_vs_random(rows, names, prof.n_boot, cfg.alpha), cfg.alpha,
                              "alignment vs random")
    tables = {"verdicts": verdicts, "summary": summ, "per_seed": per_seed, "per_label": A.per_label(rows),
              "permutation_null": A.permutation_null(scores, data, seeds, prof.n_perm),
              "per_example": rows[rows.label == "all"].drop(columns=["label"])}
    from tueval.analysis.forget import ground_truth_note

    settings = {"seeds": list(seeds), "ground truth": ground_truth_note(data),
                "examples": f"{len(data.examples)} of {data.n_total} forget examples ({cfg.workdir.forget_split})",
                "scorers": ", ".join(names),
                "learned scorers": ", ".join(f"{k}: one GA run per seed (defaults.FIXED), scorer_state.safetensors"
                                             for k in states) or "none"}
    path = _report(cfg, prof, tables, names, settings, t0)
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "summary": summ.to_dict("records"),
            "permutation_null": tables["permutation_null"].to_dict("records"), "wall_s": time.perf_counter() - t0}


def _report(cfg: AnalysisConfig, prof: AlignmentProfile, tables: dict, names: list[str], settings: dict, t0: float):
    from tueval.plots.scores import alignment_figures
    from tueval.report import ReportWriter, markdown_table, regen_command, settings_md, verdict_markdown

    summ, null = tables["summary"], tables["permutation_null"]
    rep = ReportWriter(cfg.reports / ANALYSIS.folder, TITLE)
    rep.text("## What was tested\nDo the scorers rank ground-truth (GT) answer tokens above the other answer "
             "tokens? Each scorer scores the forget examples on the target (reference) model; we compare the "
             "scores with two ground truths: **spans** (tokens overlapping an annotated fact span, "
             "`batch.gt_mask`) and **counterfactual** (tokens the target predicts more than 1 nat better than the "
             "retain model, `attach_counterfactual`). `oracle` and `anti` are defined per ground truth (the GT "
             "mask and its reversal), so the oracle is the upper bound and anti the lower bound for both.\n\n"
             "**AP lift** = AP minus its exact chance level E[AP] of a random ranking of that example (the core's "
             "`ap_lift`; the conventional AP - prevalence is biased upwards on short answers and is reported as "
             "`ap_lift_prevalence`). Single-class examples (no GT token, or only GT tokens) have no AP and are "
             "left out.")
    rep.text("## Settings\n" + settings_md({
        "workdir": cfg.workdir.root, "profile": cfg.profile, **settings,
        "controls": "random (chance), oracle (upper bound), anti (lower bound)",
        "unit": "deterministic scorers give the same scores for every seed; their per-example rows are the unit "
                "(seed -1 in the CSVs). Seeds drive the random scorer and the learned (ATWU) runs.",
        "CI": f"crossed bootstrap over seeds and examples ({prof.n_boot} resamples): examples are shared by all "
              "seeds, so seeds and examples are resampled independently (the ordinary bootstrap over examples "
              "when there is one seed row)",
        "test": "one-sided sign-flip test over examples of the seed-averaged AP-lift difference (scorer - "
                "random); Holm over every scorer x ground truth; decision 'better' needs adjusted p < alpha and "
                "a CI above 0",
        "alpha": cfg.alpha, "permutations": prof.n_perm}))
    rep.text("## Verdicts: does each scorer beat random on AP lift?\n" + verdict_markdown(tables["verdicts"]))
    show = summ[summ.metric.isin(TABLE_METRICS)]
    wide = show.pivot_table(index=["ground_truth", "scorer"], columns="metric", values="mean", sort=False).reset_index()
    lift = summ[summ.metric == "ap_lift"][["ground_truth", "scorer", "ci_low", "ci_high", "n_examples"]]
    wide = wide.merge(lift.rename(columns={"ci_low": "ap_lift_ci_low", "ci_high": "ap_lift_ci_high"}),
                      on=["ground_truth", "scorer"])
    rep.text("## Alignment metrics (means over examples and seeds)\n" + markdown_table(wide))
    rep.text("## GT-permutation null\nEach example's GT is shuffled among its answer tokens (count kept); the mean "
             "AP lift must fall to chance (0). `p_perm` is the share of permutations with a mean AP lift at least "
             "the observed one. For tied scores (the binary oracle and anti) the tie-free E[AP] is not the chance "
             "level: their null mean sits below 0, and `lift_over_null` (observed - null mean) is the lift over "
             "the exact permutation chance.\n" + markdown_table(null.drop(columns=["n_perm"])))
    rep.figures(alignment_figures(summ, tables["per_seed"], tables["per_label"], names))
    return rep.finish(tables, regen_command(ANALYSIS.name, cfg), t0)


ANALYSIS = Analysis(name="alignment", title=TITLE, question="Do the scores pick the ground-truth fact tokens?",
                    run=run, demo_order=1, profiles=PROFILES)
