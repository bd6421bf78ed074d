"""Gradient SNR analysis: does selecting tokens by a scorer raise the signal-to-noise ratio of the forget gradient?

Signal = gradient of the GT-token losses, noise = the rest (tueval.metrics.snr). Primary: directional SNR along a
held-out oracle direction u (the forget examples are split per seed into a reference half, which gives u, and an
evaluation half); secondaries: 1/B_simple, composition ratio, cosine to u. Each scorer's weights (hard top-k at
several k, and soft) are compared with every control (uniform, random_k with the same count, permuted, magnitude
matched, oracle, anti) at the reference model and at checkpoints along a GA unlearning run
(``tueval.metrics.snr_grid`` computes many weightings exactly from per-token gradients).
"""
from __future__ import annotations

import time
from dataclasses import asdict

from tueval.analysis import Analysis, AnalysisConfig
from tueval.analysis.profiles import SNRProfile

PROFILES = {
    "quick": SNRProfile(16, 2, (0.1, 0.3, 1.0), "last_block", 1, 8, (0.5, 1.0)),
    "default": SNRProfile(64, None, (0.1, 0.3, 0.5, 1.0), "last_block", 2, 24),  # sized for the demo budget
    "full": SNRProfile(None, None, (0.1, 0.2, 0.3, 0.5, 1.0), None, None, None),
}
CACHE_VERSION = 1  # bump when the cached per-seed tables change meaning
TITLE = "Gradient signal-to-noise of token selections"
PRIMARY_COLUMNS = ["weighting", "kind", "k", "log10_snr_dir", "log10_snr_dir_ci_low", "log10_snr_dir_ci_high",
                   "inv_b_simple", "composition_db", "cos_mean_u", "n_seeds"]


def run(cfg: AnalysisConfig) -> dict:
    """Gradient SNR of every scorer's selections against the controls, at the reference and along unlearning."""
    import numpy as np
    import pandas as pd

    from tueval.analysis import snr_tables as T
    from tueval.analysis.cache import cached_tables
    from tueval.analysis.forget import load_forget
    from tueval.analysis.scores import compute_scores, learned_states, method_names, setup
    from tueval.metrics.snr import select_params

    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    methods = method_names(names)

    def compute() -> dict[str, pd.DataFrame]:
        data = load_forget(cfg.workdir, prof.max_examples)
        states = learned_states(cfg, names, seeds)
        scores = compute_scores(data, methods, seeds, states=states)
        raw, splits = T.reference_table(data, prof, seeds, methods, scores)
        cps, steps = T.checkpoint_table(cfg, data, prof, seeds, methods, states, scores)
        n_params = int(sum(dict(data.target.named_parameters())[n].numel()
                           for n in select_params(data.target, prof.params)))
        meta = {"n_examples": len(data.examples), "n_total": data.n_total, "n_ref": len(splits[0][0]),
                "n_eval": len(splits[0][1]), "n_eval_mean": float(np.mean([len(ev) for _, ev in splits])),
                "n_params": n_params, "route": str(raw.route.iloc[0]), "steps": ",".join(map(str, steps)),
                "ground_truth": data.primary_gt}
        return {"raw": raw, "checkpoints": cps, "meta": pd.DataFrame([meta])}

    tabs = cached_tables(cfg.workdir, "snr", {"version": CACHE_VERSION, "profile": asdict(prof), "seeds": list(seeds),
                                             "scorers": names}, compute, use_cache=cfg.cache)
    cps, meta = tabs["checkpoints"], tabs["meta"].iloc[0]
    t = T.tidy(tabs["raw"], seeds, methods)
    t_curves = T.with_uniform_endpoint(t, methods + ["random_k", "oracle", "anti"])
    summ = T.seed_summary(t_curves, ["weighting", "kind", "k", "k_frac"])
    verdicts, explore = T.snr_verdicts(T.snr_comparisons(t, methods, prof.ks, cfg.alpha), methods, prof, cfg.alpha)
    if not verdicts.empty:
        verdicts["n_examples"] = int(meta.n_eval_mean)
    ck = T.seed_summary(cps, ["weighting", "step"]) if len(cps) else None
    tables = {"verdicts": verdicts, "verdicts_exploratory": None if explore.empty else explore, "summary": summ,
              "per_seed": t,
              "normalised_position": T.normalised_position(t, methods), "checkpoints_per_seed": cps,
              "checkpoints": ck}
    path = _report(cfg, prof, tables, t_curves, methods, seeds, meta, t0)
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "summary": summ.to_dict("records"),
            "checkpoints": ck.to_dict("records") if ck is not None else [], "wall_s": time.perf_counter() - t0}


def _report(cfg: AnalysisConfig, prof: SNRProfile, tables: dict, t_curves, methods: list[str], seeds, meta,
            t0: float):
    from tueval.analysis.snr_tables import observations
    from tueval.plots.snr import snr_figures
    from tueval.report import ReportWriter, markdown_table, regen_command, settings_md, verdict_markdown

    summ, explore, npos, ck, cps = (tables[k] for k in ("summary", "verdicts_exploratory", "normalised_position",
                                                        "checkpoints", "checkpoints_per_seed"))
    steps = [int(x) for x in str(meta.steps).split(",") if x]
    rep = ReportWriter(cfg.reports / ANALYSIS.folder, TITLE)
    rep.text("## What was tested\nDoes weighting the forget loss by a scorer's selection make the per-example "
             "gradients point more reliably along the forget direction? For each forget example i and weights w, "
             "signal s_i = gradient of the GT-token (annotated span) losses, noise n_i = gradient of the other "
             "answer tokens' losses, g_i = s_i + n_i. Per seed the examples are split into a reference half, which "
             "gives the oracle direction u = normalised sum of the reference s_i(1), and an evaluation half. "
             "**Primary**: directional SNR (mean_i <g_i,u>)^2 / var_i <g_i,u>. Secondaries: 1/B_simple = |G|^2 / "
             "tr(Sigma) (unbiased per-example estimators; negative when the mean gradient is small), composition "
             "ratio ||sum s||^2/||sum n||^2 in dB, cos(sum g, u). Selections: each scorer's hard top-k (ceil(k n_i) "
             "tokens per answer) and soft weights (mean 1 per answer). Controls: random_k (the same count at random "
             "positions; for hard 0/1 weights `permuted` is the same distribution, so it is reported for soft "
             "weights only), uniform (k = 1), magnitude_matched (uniform rescaled to the selection's total: every "
             "metric here is scale-invariant, so it equals uniform - shown as a check), oracle (GT first) and anti "
             "(GT last).")
    rep.text("## Settings\n" + settings_md({
        "workdir": cfg.workdir.root, "profile": cfg.profile, "seeds": list(seeds),
        "examples": f"{int(meta.n_examples)} of {int(meta.n_total)} forget examples (fixed sample when capped); "
                    f"reference/evaluation halves of {int(meta.n_ref)}/{int(meta.n_eval)} per seed",
        "parameters": f"{prof.params or 'all'} ({int(meta.n_params):,} parameters differentiated)",
        "k": list(prof.ks), "scorers": ", ".join(methods),
        "ground truth": (f"{meta.get('ground_truth', 'spans')} (signal = its tokens; the counterfactual ground truth "
                         "where the forget split has no span annotations)"),
        "route": f"{meta.route} (tueval.metrics.snr_grid: per-token gradients give every weighting exactly)",
        "checkpoints": f"GA uniform run per seed (defaults.FIXED), snapshots at steps {steps}, seeds "
                       f"{sorted(set(cps.seed)) if len(cps) else []}, k = {prof.primary_k}, "
                       f"{prof.checkpoint_examples or 'all'} evaluation examples",
        "CI of means": "t-interval over seeds (reported from 3 seeds on)",
        "unit / test": "the seed (it draws the split and the random controls); paired difference of log SNR "
                       "(scorer - random_k for hard k, scorer - permuted for soft), t-interval and exact sign-flip "
                       f"p; confirmatory: k = {prof.primary_k:g} and soft, Holm within each scorer's family of 2; "
                       "the other k of the sweep: exploratory, Benjamini-Hochberg",
        "power note": f"with {len(seeds)} seeds the smallest one-sided sign-flip p is {0.5 ** len(seeds):.3g}; Holm "
                      f"over a family of 2 needs p < {cfg.alpha / 2:.3g} for the first step."
                      " The splits of different seeds share examples, so seeds are not independent replicates and "
                      "the p-values are approximate."}))
    rep.text("## Verdicts: does each scorer's selection beat random_k (hard) / permuted (soft) on log SNR?\n"
             + verdict_markdown(tables["verdicts"]))
    if explore is not None:
        rep.text("## Exploratory: the other k of the sweep (Benjamini-Hochberg, not claims)\n"
                 + verdict_markdown(explore))
    prim = summ[summ.k.isin([f"{prof.primary_k:g}", "soft", "1"])]
    rep.text(f"## Metrics at k = {prof.primary_k:g}, soft and uniform (means over seeds)\n"
             + markdown_table(prim[PRIMARY_COLUMNS]))
    line = observations(summ, prof.primary_k)
    if line:
        rep.text("## Observations\n" + line)
    if len(npos):
        rep.text("## Normalised position (SNR - SNR_random_k) / (SNR_oracle - SNR_random_k)\n0 = random, "
                 "1 = oracle.\n" + markdown_table(npos))
    if ck is not None:
        rep.text("## Along unlearning (log10 directional SNR)\n"
                 + markdown_table(ck[["weighting", "step", "log10_snr_dir", "log10_snr_dir_ci_low",
                                      "log10_snr_dir_ci_high", "n_seeds"]]))
    rep.figures(snr_figures(summ, t_curves, cps, ck, methods, prof.primary_k))
    return rep.finish(tables, regen_command(ANALYSIS.name, cfg), t0)


ANALYSIS = Analysis(name="snr", title=TITLE, question="Does token selection raise the gradient signal-to-noise ratio?",
                    run=run, demo_order=4, profiles=PROFILES)
