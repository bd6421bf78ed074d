"""Replication over model pairs: do the controls analysis' confirmatory verdicts hold when the target and retain
models are trained again with another training seed?

The controls grid (the same methods, controls, seeds and fixed settings as ``tueval analyze controls`` under the
same profile) runs on each of K independently trained target/retain pairs of the same benchmark (pair 0: the
workdir; pair k: ``<workdir>/pairs/<k>/``, models trained with training seed k, prepared when missing,
``tueval.pairs``). Each pair gets the controls analysis' confirmatory verdicts (utility at matched forgetting,
Holm per objective and method); each comparison is pooled over the pairs by a stratified test (seeds nested in
pairs, ``tueval.stats.stratified``) in the same families; and the report says which verdicts hold on every pair.

Settings (``extra``, or the analysis config file): ``pairs``, the number of pairs K (default 2), or for a workdir
prepared from a config (whose models cannot be trained here) the other pairs' prepared workdirs as a list; plus
every grid key of the controls analysis.
"""
from __future__ import annotations

from pathlib import Path

from tueval.analysis import Analysis, AnalysisConfig

NAME = "replication"
TITLE = "Replication over independently trained model pairs"
MATCHED_UNIT = "utility difference at matched forgetting (utility_est, 0-1 scale)"
SINGLE_UNIT = "difference method - control (log10 forget quality, or model utility on its 0-1 scale)"


def pair_request(cfg: AnalysisConfig) -> tuple[int, list[str] | None]:
    """(K, the other pairs' workdirs or None) from ``cfg.extra['pairs']`` (default 2 pairs, trained)."""
    from tueval.analysis.replication import DEFAULT_PAIRS
    from tueval.pairs import pairs_setting

    v = (cfg.extra or {}).get("pairs", DEFAULT_PAIRS)
    v = pairs_setting("pairs", v)
    return (len(v) + 1, v) if isinstance(v, list) else (v, None)


def run(cfg: AnalysisConfig) -> dict:
    """Replication analysis: prepares the missing pairs, runs (or reads) the controls grid on each, writes
    reports/replication/ and returns the pooled and per-pair verdicts."""
    import time

    from tueval.analysis.controls_grid import grid_settings
    from tueval.analysis.replication import replication_tables, run_pairs
    from tueval.pairs import pair_workdirs

    t0 = time.perf_counter()
    st = grid_settings(cfg)
    k, paths = pair_request(cfg)
    pairs = pair_workdirs(cfg.workdir, k, paths, progress=cfg.progress, quiet=not cfg.progress,
                          train=cfg.compute)
    results = run_pairs(cfg, st, pairs)
    by_pair, pooled = replication_tables(results, cfg.alpha, st["family"])
    out = Path(cfg.reports) / ANALYSIS.folder
    paths_out = write_report(out, cfg, st, results, by_pair, pooled, k, paths, started=t0)
    return {"verdicts": pooled.to_dict("records"), "by_pair": by_pair.to_dict("records"), "n_pairs": len(pairs),
            "family": st["family"], "holds_on_every_pair": int(pooled["holds_on_every_pair"].sum())
            if not pooled.empty else 0, **paths_out}


def _pairs_table(results):
    """One row per pair: its training seed, workdir, target and retain evaluation, runs read."""
    import pandas as pd

    from tueval.pairs import eval_summary
    from tueval.workdir import Workdir

    rows = []
    for r in results:
        wd = Workdir(r.workdir)
        tgt, ret = eval_summary(wd, "target"), eval_summary(wd, "retain")
        rows.append({"pair": r.pair, "train_seed": r.train_seed, "workdir": r.workdir,
                     "target model_utility": tgt.get("model_utility"), "target forget_prob": tgt.get("forget_prob"),
                     "retain forget_prob": ret.get("forget_prob"), "runs": r.n_runs,
                     "degenerate controls left out": ", ".join(f"{d.method}/{d.control}" for d in
                                                               r.dropped.itertuples()) or "none"})
    return pd.DataFrame(rows)


def _shown(df):
    """``df`` with its count columns as text, so a report table prints 0 as 0 (not as the float 0.000)."""
    counts = ["pair", "train_seed", "runs", "n_seeds", "n_failed", "family_size", *("n_pairs", "pairs_better",
                                                                                   "pairs_same_label")]
    return df.assign(**{c: df[c].map(lambda v: "" if v is None or v != v else str(int(v)))
                        for c in counts if c in df})


def write_report(root: Path, cfg: AnalysisConfig, st: dict, results, by_pair, pooled, k: int, paths,
                 started: float | None = None) -> dict:
    """report.md, verdicts_by_pair.csv, pooled_verdicts.csv, pairs.csv and the forest plot in ``root``."""
    from tueval.analysis.families import VERDICT_TABLE_COLUMNS as COLUMNS, family_note
    from tueval.analysis.grid import method_name
    from tueval.analysis.replication import POOLED_COLUMNS, holds_table
    from tueval.plots.replication import replication_figures
    from tueval.report import ReportWriter, markdown_table, regen_command, settings_md, verdict_markdown

    matched = all(r.matched for r in results)
    rw = ReportWriter(root, TITLE)
    rw.text("## What was tested\n"
            "A verdict that flips when the target model is trained again is a finding about one model, not about "
            "the method. The controls analysis' grid (same methods, controls, seeds and settings) ran on "
            f"{len(results)} independently trained target/retain model pairs of the same benchmark: pair 0 is the "
            "workdir, pair k has target and retain models trained with training seed k (model initialisation and "
            "data order), everything else equal. Per pair the confirmatory comparison is the controls analysis' "
            + ("(utility at matched forgetting, both estimands)" if matched else
               "(the primary metrics at one learning rate: these runs write no trajectories)")
            + ", with its Holm families; pooled over the pairs, one stratified test per comparison."
            + (" Between the two checkpoints around the method's level a control's utility is read at the higher "
               "one for 'better' (`estimate`) and at the lower one for 'worse' (`estimate_favourable`); "
               "`estimate_interpolated` is the linear interpolation, for reference." if matched else "") + "\n")
    rw.text("## Settings\n" + settings_md({
        "workdir": str(cfg.workdir.root), "profile": cfg.profile,
        "model pairs": (f"{k} (pair 0 + the prepared workdirs {paths})" if paths else
                        f"{k} (pair 0 + trained pairs in {cfg.workdir.root / 'pairs'})"),
        "objectives": st["objectives"], "methods": [method_name(m) for m in st["methods"]],
        "controls": st["controls"], "settings over each objective's and preset's own": st["fixed"],
        "seeds per pair": f"{list(cfg.seeds)} (n={len(cfg.seeds)})", "Holm family": st["family"],
        "alpha": cfg.alpha}))
    rw.text("## The model pairs\n" + markdown_table(_shown(_pairs_table(results))))
    rw.text("## Statistics\n"
            "Per pair: exactly the controls analysis' verdicts (one-sided sign-flip test over that pair's seeds, "
            "t- and bootstrap-t CIs, Holm within one family per objective and method over both estimands and every "
            "control; a control identical to another arm on that pair is left out).\n\n"
            "Pooled: the estimate is the mean over pairs of each pair's mean difference (every pair weighs the "
            "same). Its test is a sign-flip permutation test of that statistic over all seed-level differences "
            "(exact up to 16 differences in all): under the null that each seed's difference is symmetric about 0 "
            "it is exact whatever each pair's spread, so the pair is a stratum. Its CI is a Welch-Satterthwaite "
            "t-interval over the pairs' standard errors, with a stratified bootstrap-t interval (seeds resampled "
            "within each pair) as the skew-robust CI; the pooled labels use the same rule and Holm families as a "
            "single pair's. This is a **fixed-effect (stratified) test**: it asks whether the effect averaged over "
            "these pairs is non-zero. With so few pairs a between-pair variance (a random effect) cannot be "
            "estimated, so the statement about other model pairs is the count: **holds on every pair** means the "
            "pooled label is 'better' and every pair's own Holm label is 'better' too.\n\n"
            + (family_note(pooled, cfg.alpha) if not pooled.empty else ""))
    rw.text("## Holds on every pair\n" + markdown_table(holds_table(pooled)))
    readings = ["estimate_favourable", "estimate_interpolated"] if matched else []
    rw.text("## Pooled verdicts\n" + verdict_markdown(_shown(pooled), columns=[*COLUMNS, *readings,
                                                                               *POOLED_COLUMNS]))
    for r in results:
        v = by_pair[by_pair["pair"] == r.pair]
        rw.text(f"## Pair {r.pair} (training seed {r.train_seed if r.train_seed is not None else 'given'})\n"
                f"Workdir `{r.workdir}`.\n\n" + verdict_markdown(_shown(v), columns=COLUMNS))
    if bool((cfg.extra or {}).get("figures", True)):
        rw.text("## Figure\n")
        rw.figures(replication_figures(by_pair, pooled, MATCHED_UNIT if matched else SINGLE_UNIT))
    command = regen_command(NAME, cfg) + (f" --pairs {k}" if not paths else f" --pairs {','.join(paths)}")
    report = rw.finish({"verdicts_by_pair": by_pair, "pooled_verdicts": pooled, "pairs": _pairs_table(results)},
                       command, started)
    return {"report": str(report), "files": [str(root / f) for f in sorted(set(rw.files))]}


ANALYSIS = Analysis(name=NAME, title=TITLE,
                    question="Do the controls verdicts hold on independently trained target/retain model pairs "
                             "(per pair, pooled, and on every pair)?",
                    run=run, demo_order=6)
