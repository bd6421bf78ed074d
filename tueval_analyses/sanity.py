"""Sanity checks of token scorers: knowledge dependence (scores from the target vs the retain model; does the shift
concentrate on GT tokens?), cascading layer randomisation (Spearman decay per scorer) and heuristic controls
(token rarity, position, entropy, surprisal alone) reported as extra scorers next to the methods."""
from __future__ import annotations

import time

from tueval.analysis import Analysis, AnalysisConfig
from tueval.analysis.profiles import SanityProfile

PROFILES = {"quick": SanityProfile(24, 2, 2, 1000), "default": SanityProfile(64, None, 3, 2000),
            "full": SanityProfile(None, None, None, 9999)}
TITLE = "Sanity checks of the token scorers"


def run(cfg: AnalysisConfig) -> dict:
    """Knowledge dependence, cascading randomisation and heuristic controls for every scorer."""
    import pandas as pd

    from tueval.analysis import sanity_checks as S
    from tueval.analysis.alignment_tables import all_gt_rows
    from tueval.analysis.forget import load_forget
    from tueval.analysis.scores import ScoreSet, compute_scores, learned_states, method_names, setup, with_gt_controls
    from tueval.stats import verdicts_frame

    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    cseeds = seeds[:prof.cascade_seeds] if prof.cascade_seeds else seeds
    methods = method_names(names)
    data = load_forget(cfg.workdir, prof.max_examples)
    states = learned_states(cfg, names, seeds)
    st = compute_scores(data, names, seeds, states=states)
    sr = compute_scores(data, names, seeds, model=data.retain, ref_model=data.retain, states=states)
    # 1. knowledge dependence, 2. cascading randomisation, 3. heuristics scored like scorers
    kd = S.knowledge_dependence(st, sr, data)
    kd_sum, kd_seed, items_kd = S.knowledge_dependence_family(kd, names, prof.n_boot, cfg.alpha)
    cas = S.cascade(data, names, cseeds, states, gt=data.primary_gt)
    cas_sum, items_cas = S.randomisation_family(cas, names, prof.n_boot, cfg.alpha)
    hs = S.heuristic_score_set(data, cfg.workdir)
    al = all_gt_rows(with_gt_controls(data, st, names, seeds, extra=hs), data)
    al = al[al.label == "all"]
    al_sum, items_h = S.heuristic_family(al, methods, hs.names(), prof.n_boot, cfg.alpha)
    v_h = verdicts_frame(items_h, cfg.alpha, "method vs best heuristic", equivalence_margin=prof.margin)
    verdicts = pd.concat([v for v in (verdicts_frame(items_kd, cfg.alpha, "knowledge dependence"),
                                      verdicts_frame(items_cas, cfg.alpha, "randomisation sensitivity"), v_h)
                          if not v.empty], ignore_index=True)
    r2 = S.heuristic_r2(ScoreSet({k: v for k, v in st.scores.items() if k[0] in methods}, st.seeds), hs, data, seeds)
    tables = {"verdicts": verdicts, "knowledge_dependence": kd_sum, "knowledge_dependence_per_seed": kd_seed,
              "knowledge_dependence_per_example": kd, "cascading_randomisation": cas_sum,
              "cascading_randomisation_per_example": cas, "heuristic_alignment": al_sum, "heuristic_r2": r2}
    settings = {"seeds": list(seeds), "randomisation seeds": list(cseeds),
                "examples": f"{len(data.examples)} of {data.n_total} forget examples (fixed sample when capped)",
                "scorers": ", ".join(names), "heuristics": ", ".join(hs.names())}
    path = _report(cfg, prof, tables, v_h, names, hs.names(), settings, t0)
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "cascade": cas_sum.to_dict("records"),
            "knowledge_dependence": kd_sum.to_dict("records"), "heuristics": al_sum.to_dict("records"),
            "wall_s": time.perf_counter() - t0}


def _report(cfg: AnalysisConfig, prof: SanityProfile, tables: dict, v_h, names: list[str], heur: list[str],
            settings: dict, t0: float):
    from tueval.plots.scores import sanity_figures
    from tueval.report import ReportWriter, markdown_table, regen_command, settings_md, verdict_markdown

    rep = ReportWriter(cfg.reports / ANALYSIS.folder, TITLE)
    rep.text("## What was tested\n1. **Knowledge dependence** (data-randomisation analogue): every scorer scores the "
             "forget examples with the target model and with the retain model (which never saw these facts). A "
             "scorer that claims to find forget-specific tokens must change, and the change |delta| should sit on "
             "GT tokens (AP lift of |delta| against GT > 0). Scorers whose scores do not depend on the scored model "
             "(controls; TIF reads the retain model in both conditions) have no shift and are not tested.\n"
             "2. **Cascading randomisation** (Adebayo et al. 2018): the target's blocks are re-initialised top-down, "
             "then the embeddings and the rest; Spearman rho of the scores against the intact model's. A scorer "
             "that reads the model's knowledge decays towards 0.\n"
             "3. **Heuristic controls**: single heuristics (token rarity in the target's training answers, position "
             "late/early, predictive entropy, surprisal) scored like a scorer. Each method is compared with the "
             "best heuristic (chosen after the fact, which favours the heuristic); 'equivalent' (TOST, margin "
             f"{prof.margin} AP lift) means the heuristic matches the method.")
    rep.text("## Settings\n" + settings_md({
        "workdir": cfg.workdir.root, "profile": cfg.profile, **settings,
        "unit / CI / test": "per-example values (seed -1 = deterministic scorer); crossed bootstrap over seeds and "
                            f"examples ({prof.n_boot} resamples); one-sided sign-flip test over examples; Holm "
                            "within each family",
        "equivalence margin": prof.margin}))
    rep.text("## Verdicts\n" + verdict_markdown(tables["verdicts"]))
    if not v_h.empty:
        matches = v_h[v_h.decision.isin(["equivalent", "not better", "worse"])]
        if len(matches):
            rep.text("**Heuristic matches**: the following methods do not beat the best single heuristic:\n"
                     + markdown_table(matches[["metric", "method", "control", "estimate", "decision"]]))
    cas_sum = tables["cascading_randomisation"]
    final = cas_sum[cas_sum.depth == cas_sum.depth.max()][["scorer", "randomised", "mean", "ci_low", "ci_high"]]
    rep.text("## Knowledge dependence (AP lift of |score shift|)\n" + markdown_table(tables["knowledge_dependence"]))
    rep.text("## Cascading randomisation: Spearman rho when fully randomised\n" + markdown_table(final))
    rep.text("## Heuristic controls: AP lift next to the scorers\n" + markdown_table(tables["heuristic_alignment"]))
    rep.text("## How much of each scorer's ranking the heuristics explain\nR^2 of an OLS fit of the scorer's "
             "within-example rank on the heuristics' ranks (pooled answer tokens), and Spearman with each.\n"
             + markdown_table(tables["heuristic_r2"]))
    rep.figures(sanity_figures(cas_sum, tables["knowledge_dependence"], tables["knowledge_dependence_per_seed"],
                               tables["heuristic_alignment"], names, heur))
    return rep.finish(tables, regen_command(ANALYSIS.name, cfg), t0)


ANALYSIS = Analysis(name="sanity", title=TITLE,
                    question="Do the scores depend on the model's knowledge, and do they beat trivial heuristics?",
                    run=run, demo_order=2, profiles=PROFILES)
