"""Sanity checks of token scorers: knowledge dependence (scores from the target vs the retain model; does the shift
concentrate on GT tokens?), cascading layer randomisation (Spearman decay per scorer) and heuristic controls
(token rarity, position, entropy, surprisal alone) reported as extra scorers next to the methods."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from analyses.alignment import (GT_SOURCES, ScoreSet, alignment_rows, build_scorer,
                                compute_scores, crossed_bootstrap, learned_states, load_forget, method_names,
                                plot_setup, regen_command, settings_md, setup, unit_comparison, value_matrix,
                                verdict_md, verdicts_frame)
from tueval.analysis import AnalysisConfig, register_analysis
from tueval.report import ReportWriter, markdown_table

HEURISTICS = ("rarity", "position", "position_early", "entropy", "surprisal")


@dataclass(frozen=True)
class SanityProfile:
    """Size of one sanity run: examples cap, seeds cap, randomisation seeds cap, bootstrap, equivalence margin."""

    max_examples: int | None
    max_seeds: int | None
    cascade_seeds: int | None
    n_boot: int
    margin: float = 0.02  # AP lift: a heuristic within this of a method "matches" it (pre-set, TOST)


PROFILES = {"quick": SanityProfile(24, 2, 2, 1000), "default": SanityProfile(64, None, 3, 2000),
            "full": SanityProfile(None, None, None, 9999)}


# ---------------------------------------------------------------------------------------------------------------
def knowledge_dependence(st: ScoreSet, sr: ScoreSet, data) -> pd.DataFrame:
    """Per (scorer, seed, GT, example): the score shift target -> retain (``score_shift``) and whether the scorer's
    scores depend on the scored model at all (``model_dependent``)."""
    from tueval.metrics import score_shift

    ans = data.batch.answer_mask
    frames = []
    for name in st.names():
        for sk in st.seed_keys(name):
            seed = st.seeds[0] if sk is None else sk
            a, b = st.get(name, seed), sr.get(name, seed)
            dep = not torch.equal(a[ans], b[ans])
            for gt in GT_SOURCES:
                df = score_shift(a, b, data.gt(gt), ans, data.ids)
                df.insert(0, "model_dependent", dep)
                df.insert(0, "ground_truth", gt)
                df.insert(0, "seed", -1 if sk is None else sk)
                df.insert(0, "scorer", name)
                frames.append(df)
    return pd.concat(frames, ignore_index=True)


def cascade(data, names, seeds, states, gt: str = "spans") -> pd.DataFrame:
    """Cascading randomisation rows per (scorer, seed): Spearman of the scores before vs after re-initialising the
    top blocks (then embeddings and the rest) of the target model; seed = the re-initialisation seed."""
    from tueval.metrics import cascading_randomisation
    from tueval.scoring import ScoringContext

    frames = []
    for name in names:
        for seed in seeds:
            sc = build_scorer(name, gt, states.get(name, {}).get(seed))

            def fn(model, batch, sc=sc, seed=seed):
                torch.manual_seed(seed)
                ctx = ScoringContext(ref_model=model, retain_model=data.retain, tokenizer=data.tokenizer,
                                     generator=torch.Generator().manual_seed(seed))
                return sc.score(model, batch, ctx)

            df = cascading_randomisation(data.target, fn, data.batch, seed=seed)
            df.insert(0, "seed", seed)
            df.insert(0, "scorer", name)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def heuristic_score_set(data, wd) -> ScoreSet:
    """Heuristic control scores on the forget batch (deterministic): rarity (from the target's training answers),
    position (late high), position_early (early high), entropy and surprisal of the target model."""
    from tueval.data.collate import collate
    from tueval.metrics import heuristic_scores, token_counts_from_ids

    train = collate(wd.benchmark.train_examples("target", wd.forget_split), data.tokenizer)
    counts = token_counts_from_ids(train.input_ids, len(data.tokenizer), train.answer_mask)
    h = heuristic_scores(data.batch, data.target, counts)
    ans = data.batch.answer_mask
    h["position_early"] = torch.where(ans, -h["position"], torch.zeros_like(h["position"]))
    return ScoreSet({(k, None): h[k].float() for k in HEURISTICS if k in h})


def _ranks_within(x: torch.Tensor, ans: torch.Tensor) -> np.ndarray:
    """Within-example rank of each answer token scaled to [0, 1], pooled over answer tokens."""
    from tueval.metrics import masked_ranks

    r = masked_ranks(x.double(), ans)
    n = ans.sum(1, keepdim=True).double()
    return ((r - 1) / (n - 1).clamp_min(1))[ans].numpy()


def heuristic_r2(st: ScoreSet, hs: ScoreSet, data, seeds) -> pd.DataFrame:
    """How much of each scorer's within-example ranking the heuristics explain: R^2 of an OLS fit of the scorer's
    rank on all heuristic ranks (pooled answer tokens), and the Spearman of the scorer with each heuristic."""
    ans = data.batch.answer_mask
    H = np.column_stack([_ranks_within(hs.get(k, 0), ans) for k in hs.names() if k != "position_early"])
    hnames = [k for k in hs.names() if k != "position_early"]
    X = np.column_stack([np.ones(len(H)), H])
    rows = []
    for name in st.names():
        y = _ranks_within(st.get(name, seeds[0]), ans)
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        res = y - X @ beta
        r2 = 1 - res.var() / y.var() if y.var() > 0 else float("nan")
        row = {"scorer": name, "r2_all_heuristics": float(r2)}
        for j, k in enumerate(hnames):
            c = np.corrcoef(y, H[:, j])[0, 1] if y.var() > 0 and H[:, j].var() > 0 else float("nan")
            row[f"spearman_{k}"] = float(c)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
def _figures(rep, cas_sum, kd_sum, kd_seed, al_sum, names, heur):
    plt, palette = plot_setup()
    col = palette(names + list(heur))
    # cascading randomisation decay
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    stages = cas_sum.drop_duplicates("depth").sort_values("depth")
    for i, n in enumerate(names):
        r = cas_sum[cas_sum.scorer == n].sort_values("depth")
        ctrl = n in ("random", "oracle", "anti")
        ax.plot(r.depth, r["mean"], "--" if ctrl else "-", marker="osD^v<>"[i % 7], ms=4 if ctrl else 3,
                color=col[n], label=n + (" (control)" if ctrl else ""), alpha=0.8 if ctrl else 1.0)
        ax.fill_between(r.depth.to_numpy(float), r.ci_low.to_numpy(float), r.ci_high.to_numpy(float), color=col[n],
                        alpha=0.15, lw=0)
    ax.set_xticks(stages.depth, [f"{d}\n{s}" for d, s in zip(stages.depth, stages.randomised)], fontsize=7)
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("randomisation depth (stage re-initialised, cumulative top-down)")
    ax.set_ylabel("Spearman rho, original vs randomised scores\n(mean over examples, 95% CI)")
    ax.legend(fontsize=7, loc="best")
    rep.figure("cascading_randomisation", fig, "Cascading randomisation: Spearman rho between each scorer's scores "
               "on the intact target and on copies with the top blocks (then embeddings) re-initialised. A scorer "
               "that reads the model decays towards 0; one that stays at 1 ignores the weights.")
    # knowledge dependence
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), sharey=True)
    rng = np.random.default_rng(0)
    for ax, gt in zip(axes, GT_SOURCES):
        s = kd_sum[kd_sum.ground_truth == gt].set_index("scorer").reindex(names)
        x = np.arange(len(names))
        ax.bar(x, s["mean"], color=[col[n] for n in names], alpha=0.8)
        err = np.vstack([s["mean"] - s.ci_low, s.ci_high - s["mean"]]).clip(min=0)
        ax.errorbar(x, s["mean"], yerr=np.nan_to_num(err), fmt="none", ecolor="0.2", capsize=3)
        ps = kd_seed[kd_seed.ground_truth == gt]
        for i, n in enumerate(names):
            v = ps.loc[ps.scorer == n, "ap_lift"].to_numpy(float)
            ax.scatter(i + rng.uniform(-0.15, 0.15, v.size), v, s=9, color="0.1", alpha=0.5, zorder=3)
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(f"does |score(target) - score(retain)| find GT? ({gt})", fontsize=9)
        ax.set_xlabel("scorer")
    axes[0].set_ylabel("AP lift of |score shift| vs GT\n(mean over examples, 95% CI)")
    rep.figure("knowledge_dependence", fig, "Knowledge dependence: AP lift of the absolute score change between the "
               "target and the retain model, against each ground truth. Scorers whose scores do not depend on the "
               "scored model have no shift (bar at the tie level, not tested).")
    # heuristics next to methods
    order = names + list(heur)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, gt in zip(axes, GT_SOURCES):
        s = al_sum[al_sum.ground_truth == gt].set_index("scorer").reindex(order)
        x = np.arange(len(order))
        ax.bar(x, s["mean"], color=[col[n] if n in names else "0.65" for n in order], alpha=0.85,
               hatch=None)
        err = np.vstack([s["mean"] - s.ci_low, s.ci_high - s["mean"]]).clip(min=0)
        ax.errorbar(x, s["mean"], yerr=np.nan_to_num(err), fmt="none", ecolor="0.2", capsize=3)
        ax.axvline(len(names) - 0.5, color="0.4", lw=0.8, ls=":")
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
        ax.set_xticks(x, order, rotation=35, ha="right")
        ax.set_title(f"scorers (colour) vs heuristic controls (grey), GT {gt}", fontsize=9)
        ax.set_xlabel("scorer / heuristic")
    axes[0].set_ylabel("AP lift vs GT (mean, 95% CI)")
    rep.figure("heuristics", fig, "AP lift of the scorers next to single heuristics (rarity, position, entropy, "
               "surprisal). A heuristic that matches a method's AP makes the method's alignment claim weak.")


def _one_sample_summary(df: pd.DataFrame, value: str, by: list[str], n_boot: int) -> pd.DataFrame:
    rows = []
    for key, g in df.groupby(by, sort=False):
        D, seeds, ex = value_matrix(g, value)
        est, lo, hi = crossed_bootstrap(D, n_boot)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "mean": est, "ci_low": lo,
                     "ci_high": hi, "n_seeds": len(seeds), "n_examples": len(ex)})
    return pd.DataFrame(rows)


@register_analysis("sanity")
def run(cfg: AnalysisConfig) -> dict:
    """Knowledge dependence, cascading randomisation and heuristic controls for every scorer."""
    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    cseeds = seeds[:prof.cascade_seeds] if prof.cascade_seeds else seeds
    methods = method_names(names)
    data = load_forget(cfg.workdir, prof.max_examples)
    states = learned_states(cfg, names, seeds)
    st = compute_scores(data, names, seeds, states=states)
    sr = compute_scores(data, names, seeds, model=data.retain, ref_model=data.retain, states=states)

    # 1. knowledge dependence
    kd = knowledge_dependence(st, sr, data)
    kd_sum = _one_sample_summary(kd.rename(columns={"ap_lift": "ap_lift"}), "ap_lift", ["ground_truth", "scorer"],
                                 prof.n_boot)
    dep = kd.groupby("scorer")["model_dependent"].any()
    kd_sum["model_dependent"] = kd_sum.scorer.map(dep)
    kd_seed = kd.groupby(["ground_truth", "scorer", "seed"])[["ap_lift", "mean_abs_delta_gt", "mean_abs_delta_rest",
                                                               "spearman_target_retain"]].mean().reset_index()
    items_kd = [unit_comparison(kd[(kd.scorer == n) & (kd.ground_truth == gt)], None, "ap_lift",
                                metric=f"ap_lift|shift|[{gt}]", method_name=n, control_name="chance (0)",
                                n_resamples=prof.n_boot, alpha=cfg.alpha)
                for gt in GT_SOURCES for n in names if bool(dep.get(n, False))]
    v_kd = verdicts_frame(items_kd, cfg.alpha, "knowledge dependence")

    # 2. cascading randomisation
    cas = cascade(data, names, cseeds, states)
    cas_sum = _one_sample_summary(cas, "spearman", ["scorer", "depth", "randomised"], prof.n_boot)
    last = cas[cas.depth == cas.depth.max()].assign(change=lambda d: 1 - d.spearman)
    items_cas = [unit_comparison(last[last.scorer == n], None, "change", metric="1 - rho (fully randomised)",
                                 method_name=n, control_name="no change (0)", n_resamples=prof.n_boot,
                                 alpha=cfg.alpha) for n in names
                 if last.loc[last.scorer == n, "change"].notna().sum() >= 2]
    v_cas = verdicts_frame(items_cas, cfg.alpha, "randomisation sensitivity")

    # 3. heuristic controls
    hs = heuristic_score_set(data, cfg.workdir)
    heur = hs.names()
    al_rows = []
    for gt in GT_SOURCES:
        ctl = compute_scores(data, [n for n in names if n in ("oracle", "anti")], seeds, gt=gt)
        merged = ScoreSet({**{k: v for k, v in st.scores.items() if k[0] not in ("oracle", "anti")},
                           **ctl.scores, **hs.scores}, st.seeds)
        al_rows.append(alignment_rows(merged, data, gt))
    al = pd.concat(al_rows, ignore_index=True)
    al = al[al.label == "all"]
    al_sum = _one_sample_summary(al, "ap_lift", ["ground_truth", "scorer"], prof.n_boot)
    al_sum["kind"] = np.where(al_sum.scorer.isin(heur), "heuristic", "scorer")
    items_h, matches = [], []
    for gt in GT_SOURCES:
        hsum = al_sum[(al_sum.ground_truth == gt) & (al_sum.kind == "heuristic")]
        best = hsum.sort_values("mean", ascending=False).scorer.iloc[0]
        g = al[al.ground_truth == gt]
        for n in methods:
            items_h.append(unit_comparison(g[g.scorer == n], g[g.scorer == best], "ap_lift",
                                           metric=f"ap_lift[{gt}]", method_name=n, control_name=f"heuristic {best}",
                                           n_resamples=prof.n_boot, alpha=cfg.alpha))
    v_h = verdicts_frame(items_h, cfg.alpha, "method vs best heuristic", equivalence_margin=prof.margin)
    if not v_h.empty:
        matches = v_h[v_h.decision.isin(["equivalent", "not better", "worse"])][["metric", "method", "control",
                                                                               "estimate", "decision"]]
    r2 = heuristic_r2(ScoreSet({k: v for k, v in st.scores.items() if k[0] in methods}, st.seeds), hs, data, seeds)
    verdicts = pd.concat([v for v in (v_kd, v_cas, v_h) if not v.empty], ignore_index=True)

    rep = ReportWriter(cfg.reports / "sanity", "Sanity checks of the token scorers")
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
        "workdir": cfg.workdir.root, "profile": cfg.profile, "seeds": list(seeds),
        "randomisation seeds": list(cseeds),
        "examples": f"{len(data.examples)} of {data.n_total} forget examples (fixed sample when capped)",
        "scorers": ", ".join(names), "heuristics": ", ".join(heur),
        "unit / CI / test": "per-example values (seed -1 = deterministic scorer); crossed bootstrap over seeds and "
                            f"examples ({prof.n_boot} resamples); one-sided sign-flip test over examples; Holm "
                            "within each family",
        "equivalence margin": prof.margin}))
    rep.text("## Verdicts\n" + verdict_md(verdicts))
    if len(matches):
        rep.text("**Heuristic matches**: the following methods do not beat the best single heuristic:\n"
                 + markdown_table(matches))
    rep.text("## Knowledge dependence (AP lift of |score shift|)\n" + markdown_table(kd_sum))
    final = cas_sum[cas_sum.depth == cas_sum.depth.max()][["scorer", "randomised", "mean", "ci_low", "ci_high"]]
    rep.text("## Cascading randomisation: Spearman rho when fully randomised\n" + markdown_table(final))
    rep.text("## Heuristic controls: AP lift next to the scorers\n" + markdown_table(al_sum))
    rep.text("## How much of each scorer's ranking the heuristics explain\nR^2 of an OLS fit of the scorer's "
             "within-example rank on the heuristics' ranks (pooled answer tokens), and Spearman with each.\n"
             + markdown_table(r2))
    _figures(rep, cas_sum, kd_sum, kd_seed, al_sum, names, heur)
    rep.table("verdicts", verdicts)
    rep.table("knowledge_dependence", kd_sum)
    rep.table("knowledge_dependence_per_seed", kd_seed)
    rep.table("knowledge_dependence_per_example", kd)
    rep.table("cascading_randomisation", cas_sum)
    rep.table("cascading_randomisation_per_example", cas)
    rep.table("heuristic_alignment", al_sum)
    rep.table("heuristic_r2", r2)
    elapsed = time.perf_counter() - t0
    rep.text(f"## Run\nWall time {elapsed:.1f} s.")
    path = rep.write(regen_command("sanity", cfg))
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "cascade": cas_sum.to_dict("records"),
            "knowledge_dependence": kd_sum.to_dict("records"), "heuristics": al_sum.to_dict("records"),
            "wall_s": elapsed}
