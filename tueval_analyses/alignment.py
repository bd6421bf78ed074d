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
    from tueval.analysis.scores import (GT_CONTROLS, compute_scores, learned_spec, learned_states, setup,
                                        with_gt_controls)
    from tueval.scoring import copied_from_question
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
    labels = A.per_label(rows)
    # the reviewer's "is it just finding the subject name?": the same comparison without the answer tokens copied
    # from the question, and each scorer's values on copied / other fact / non-fact tokens
    copied = copied_from_question(data.batch, data.tokenizer)
    rows_nc = A.all_gt_rows(scores, data, drop=copied)
    summ_nc, _ = A.summaries(rows_nc, prof.n_boot)
    verdicts_nc = verdicts_frame(A.ap_lift_vs_random(rows_nc, names, prof.n_boot, cfg.alpha), cfg.alpha,
                                 "alignment vs random, copied tokens excluded")
    # fact tokens: the spans where annotated, else the counterfactual ground truth
    classes = A.values_by_class(_class_values(data, base, names, seeds),
                                A.token_classes(data, copied, gt=data.gt_sources[0]))
    tables = {"verdicts": verdicts, "summary": summ, "per_seed": per_seed, "per_label": labels,
              "per_label_ap_lift": A.per_label_wide(labels), "nocopy_verdicts": verdicts_nc,
              "nocopy_summary": summ_nc, "nocopy_per_label": A.per_label(rows_nc), "token_classes": classes,
              "span_labels": A.span_copy_counts(data),
              "permutation_null": A.permutation_null(scores, data, seeds, prof.n_perm),
              "per_example": rows[rows.label == "all"].drop(columns=["label"])}
    from tueval.analysis.forget import ground_truth_note

    settings = {"seeds": list(seeds), "ground truth": ground_truth_note(data),
                "examples": f"{len(data.examples)} of {data.n_total} forget examples ({cfg.workdir.forget_split})",
                "scorers": ", ".join(names),
                "learned scorers": ", ".join(f"{k}: the run {learned_spec(k, seeds[0]).label()} per seed "
                                             f"(its preset where a paper's uses it), scorer_state.safetensors"
                                             for k in states) or "none",
                "copied tokens": "answer tokens inside a run of >= 2 consecutive tokens that also occurs in the "
                                 f"question's content ({int(copied.sum())} of {int(data.batch.answer_mask.sum())} "
                                 "answer tokens)"}
    path = _report(cfg, prof, tables, names, settings, t0)
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "summary": summ.to_dict("records"),
            "permutation_null": tables["permutation_null"].to_dict("records"), "wall_s": time.perf_counter() - t0}


def _class_values(data, base, names: list[str], seeds) -> dict:
    """The values compared by token class: each scorer's scores (first seed) and, with TokenUnlearn, its raw
    knowledge signal Delta and entropy H on the target."""
    import torch

    out = {f"{n} score": base.get(n, seeds[0]) for n in base.names()}
    if "tokenunlearn" in names:
        from tueval.scoring import ScoringContext, make_scorer

        sc, ctx = make_scorer("tokenunlearn"), ScoringContext(tokenizer=data.tokenizer)
        d, h = [], []
        for i in range(0, len(data.batch), 64):
            b = data.batch.select(range(i, min(i + 64, len(data.batch))))
            with torch.no_grad():
                di, hi = sc.signals(data.target, b, ctx)
            d.append(di)
            h.append(hi)
        out = {"tokenunlearn knowledge signal (Delta)": torch.cat(d), "tokenunlearn entropy (H)": torch.cat(h),
               **out}
    return out


def _name_finding(classes, spans) -> str:
    """The sentence on TokenUnlearn's knowledge signal by token class, from the computed table."""
    sub = classes[classes.value == "tokenunlearn knowledge signal (Delta)"].set_index("tokens")
    if sub.empty:
        return ""
    v = sub["mean_over_examples"]
    n_sp, n_q = int(spans["spans"].sum()), int(spans["in_question"].sum())
    top = spans.iloc[0] if len(spans) else None
    lab = f" ({int(top['spans'])} of the {n_sp} are `{top['label']}` spans)" if top is not None else ""
    return (f"TokenUnlearn's knowledge signal Delta (|log p with the question - log p with it hidden|, mean over "
            f"examples of each example's mean) is **{v['copied']:.2f}** on answer tokens copied from the question, "
            f"**{v['fact, not copied']:.2f}** on the other fact tokens and **{v['not fact, not copied']:.2f}** on "
            f"non-fact tokens; {n_q} of the {n_sp} ground-truth spans occur verbatim in their question{lab}. "
            "Its alignment advantage therefore partly rides on tokens the question already names: the tables "
            "below repeat the comparison with those tokens left out.")


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
    rep.text("## Per fact label (spans)\nMean AP lift of each label's tokens against the non-GT answer tokens "
             "(chance 0; the other facts' tokens are left out): where each scorer's alignment comes from.\n"
             + markdown_table(tables["per_label_ap_lift"]) + "\nGround-truth spans per label, and how many occur "
             "verbatim in their question:\n" + markdown_table(tables["span_labels"]))
    cls = tables["token_classes"]
    rep.text("## Is it just finding the subject's name?\n" + _name_finding(cls, tables["span_labels"]) + "\n\n"
             "Mean value per token class (copied = inside a run of at least 2 answer tokens that also occurs in "
             "the question's content; fact = inside a ground-truth span); the example is the unit:\n"
             + markdown_table(cls[cls.tokens.isin(["copied", "fact, not copied", "not fact, not copied"])]
                              .pivot_table(index="value", columns="tokens", values="mean_over_examples",
                                           sort=False).reset_index()))
    nc = tables["nocopy_summary"]
    show_nc = nc[nc.metric.isin(TABLE_METRICS)].pivot_table(index=["ground_truth", "scorer"], columns="metric",
                                                             values="mean", sort=False).reset_index()
    rep.text("### Without the copied tokens\nThe same alignment with the copied answer tokens removed from both "
             "the ground truth and the background (a separate Holm family; `nocopy_*.csv`):\n"
             + verdict_markdown(tables["nocopy_verdicts"]) + "\n" + markdown_table(show_nc))
    rep.text("## GT-permutation null\nEach example's GT is shuffled among its answer tokens (count kept); the mean "
             "AP lift must fall to chance (0). `p_perm` is the share of permutations with a mean AP lift at least "
             "the observed one. For tied scores (the binary oracle and anti) the tie-free E[AP] is not the chance "
             "level: their null mean sits below 0, and `lift_over_null` (observed - null mean) is the lift over "
             "the exact permutation chance.\n" + markdown_table(null.drop(columns=["n_perm"])))
    rep.figures(alignment_figures(summ, tables["per_seed"], tables["per_label"], names))
    return rep.finish(tables, regen_command(ANALYSIS.name, cfg), t0)


ANALYSIS = Analysis(name="alignment", title=TITLE, question="Do the scores pick the ground-truth fact tokens?",
                    run=run, demo_order=1, profiles=PROFILES)
