"""Intervention analysis: do the tokens a scorer ranks high matter for the model's answer? Deletion and insertion
curves (MoRF, LeRF, random) of the answer log-probability under two replacement operators, comprehensiveness,
sufficiency, AOPC and ABPC (LeRF - MoRF, primary) per scorer, verdicts "scorer beats random on ABPC" (Holm) and the
rank agreement of the scorers across operators (Kendall tau)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.stats
import torch

from analyses.alignment import (ForgetData, compute_scores, crossed_bootstrap,
                                learned_states, load_forget, plot_setup, regen_command, settings_md, setup,
                                unit_comparison, value_matrix, verdict_md, verdicts_frame)
from tueval.analysis import AnalysisConfig, register_analysis
from tueval.analysis_cache import cached_tables
from tueval.data.collate import Batch
from tueval.report import ReportWriter, markdown_table

SUMMARY_METRICS = ("abpc", "abpc_insertion", "comprehensiveness", "comprehensiveness_random", "sufficiency",
                   "sufficiency_random", "aopc_comp", "aopc_comp_random", "aopc_suff", "aopc_suff_random",
                   "deletion_auc_morf", "deletion_auc_lerf", "deletion_auc_random")
AGREEMENT_METRICS = ("abpc", "aopc_comp", "comprehensiveness", "abpc_insertion")
CACHE_VERSION = 1  # bump when the per-example tables change meaning


@dataclass(frozen=True)
class InterventionProfile:
    """Size of one intervention run: examples cap, seeds cap, curve grid, AOPC bins, random draws, bootstrap."""

    max_examples: int | None
    max_seeds: int | None
    grid: tuple[float, ...]
    aopc_bins: tuple[float, ...]
    n_random: int
    n_boot: int
    bucket: int = 16


PROFILES = {
    "quick": InterventionProfile(12, 2, (0.0, 0.25, 0.5, 0.75, 1.0), (0.05, 0.2, 0.5), 1, 1000),
    # default: sized for the demo budget (about a minute on 2 cores; each (scorer, seed) costs ~0.2 s per example);
    # full: everything
    "default": InterventionProfile(16, 2, (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), (0.1, 0.2, 0.5), 1, 2000),
    "full": InterventionProfile(None, None, tuple(round(0.1 * i, 1) for i in range(11)),
                                (0.01, 0.05, 0.1, 0.2, 0.5), 4, 9999),
}




def length_buckets(batch: Batch, size: int) -> list[list[int]]:
    """Example indices grouped by sequence length (``size`` per group), so each group is trimmed to little padding."""
    order = torch.argsort(batch.attention_mask.sum(1), stable=True).tolist()
    return [order[i:i + size] for i in range(0, len(order), size)]


def curves_for(model, data: ForgetData, scores: torch.Tensor, spec, buckets: list[list[int]]):
    """``perturbation_curves`` over length buckets of the forget batch; (curves, summary) for all examples.

    f is the knowledge margin (target minus retain answer log-probability on the same perturbed input), so
    removing context that any language model needs (template words) cancels out and the curves measure the
    tokens that carry the memorised facts; ``spec.f_definition`` records it."""
    from tueval.metrics import perturbation_curves

    cs, ss = [], []
    for idx in buckets:
        sub = Batch.trim(data.batch.select(idx))
        r = perturbation_curves(model, sub, scores[idx][:, : sub.input_ids.shape[1]], spec,
                                baseline=data.retain if model is data.target else None)
        cs.append(r.curves)
        ss.append(r.summary)
    return pd.concat(cs, ignore_index=True), pd.concat(ss, ignore_index=True)


def _key(s: torch.Tensor, ans: torch.Tensor) -> str:
    return hashlib.sha1(s[ans].double().numpy().tobytes()).hexdigest()


def intervention_tables(model, data: ForgetData, scores, seeds, prof: InterventionProfile, progress: bool = False):
    """Per-example summaries and per-example curves of every (scorer, seed); scorers with identical scores (e.g.
    etw and etw_static on the reference model) are evaluated once."""
    from tueval.metrics import PerturbationSpec

    buckets = length_buckets(data.batch, prof.bucket)
    ans = data.batch.answer_mask
    cache: dict[tuple[str, int], tuple[pd.DataFrame, pd.DataFrame]] = {}
    curves, summ = [], []
    for name in scores.names():
        for sk in scores.seed_keys(name):
            seed = seeds[0] if sk is None else sk
            s = scores.get(name, seed)
            key = (_key(s, ans), seed)
            if key not in cache:
                spec = PerturbationSpec(grid=prof.grid, aopc_bins=prof.aopc_bins, n_random=prof.n_random, seed=seed)
                cache[key] = curves_for(model, data, s, spec, buckets)
            c, m = (x.copy() for x in cache[key])
            for df in (c, m):
                df.insert(0, "seed", -1 if sk is None else sk)
                df.insert(0, "scorer", name)
            curves.append(c)
            summ.append(m)
    return pd.concat(curves, ignore_index=True), pd.concat(summ, ignore_index=True)


def _t_ci(x: pd.Series) -> tuple[float, float, float, int]:
    v = x.dropna().to_numpy(float)
    n = v.size
    if n < 2:
        m = float(v.mean()) if n else float("nan")
        return m, float("nan"), float("nan"), n
    half = scipy.stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half), n


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean f per (scorer, operator, curve, order, q) with a t-CI over examples (per-example f averaged over seeds)."""
    per_ex = (curves.groupby(["scorer", "operator", "curve", "order", "q", "example_id"], sort=False)["f"].mean()
              .reset_index())
    rows = []
    for key, g in per_ex.groupby(["scorer", "operator", "curve", "order", "q"], sort=False):
        m, lo, hi, n = _t_ci(g["f"])
        rows.append(dict(zip(["scorer", "operator", "curve", "order", "q"], key), f_mean=m, ci_low=lo, ci_high=hi,
                         n_examples=n))
    return pd.DataFrame(rows)


def _metric_summary(summ: pd.DataFrame, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, per_seed = [], []
    for (name, op), g in summ.groupby(["scorer", "operator"], sort=False):
        for metric in SUMMARY_METRICS:
            D, seeds, ex = value_matrix(g, metric)
            est, lo, hi = crossed_bootstrap(D, n_boot)
            rows.append({"scorer": name, "operator": op, "metric": metric, "mean": est, "ci_low": lo, "ci_high": hi,
                         "n_seeds": len(seeds), "n_examples": len(ex)})
        ps = g.groupby("seed")[list(SUMMARY_METRICS)].mean().reset_index()
        ps.insert(0, "operator", op)
        ps.insert(0, "scorer", name)
        per_seed.append(ps)
    return pd.DataFrame(rows), pd.concat(per_seed, ignore_index=True)


def rank_agreement(msum: pd.DataFrame, operators) -> pd.DataFrame:
    """Kendall tau between the scorers' rankings (by mean metric) under each pair of operators."""
    rows = []
    for metric in AGREEMENT_METRICS:
        w = msum[msum.metric == metric].pivot_table(index="scorer", columns="operator", values="mean")
        for i, a in enumerate(operators):
            for b in operators[i + 1:]:
                if a in w and b in w and len(w) >= 3:
                    r = scipy.stats.kendalltau(w[a], w[b])
                    rows.append({"metric": metric, "operator_a": a, "operator_b": b, "kendall_tau": float(r.statistic),
                                 "p_value": float(r.pvalue), "n_scorers": int(len(w))})
    return pd.DataFrame(rows)


def _figures(rep: ReportWriter, cs: pd.DataFrame, msum: pd.DataFrame, per_seed: pd.DataFrame, agree: pd.DataFrame,
             names: list[str], operators) -> None:
    plt, palette = plot_setup()
    col = palette(names)
    ncol = min(5, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    for curve in ("deletion", "insertion"):
        for op in operators:
            fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.3 * nrow + 0.4), sharex=True, sharey=True,
                                     squeeze=False)
            for ax in axes.ravel()[len(names):]:
                ax.set_visible(False)
            for ax, name in zip(axes.ravel(), names):
                sub = cs[(cs.scorer == name) & (cs.operator == op) & (cs.curve == curve)]
                for order, colour, ls in (("morf", col[name], "-"), ("lerf", "0.55", "-"), ("random", "0.1", "--")):
                    r = sub[sub.order == order].sort_values("q")
                    ax.plot(r.q, r.f_mean, ls, color=colour, lw=1.4, marker="o", ms=2.5,
                            label={"morf": "MoRF", "lerf": "LeRF", "random": "random order"}[order])
                    ax.fill_between(r.q.to_numpy(float), r.ci_low.to_numpy(float), r.ci_high.to_numpy(float),
                                    color=colour, alpha=0.18, lw=0)
                ax.set_title(name, fontsize=9)
            for ax in axes[-1]:
                ax.set_xlabel(f"fraction q of answer tokens {'removed' if curve == 'deletion' else 'kept'}")
            for ax in axes[:, 0]:
                ax.set_ylabel("f: mean answer log-prob\n(nats/token)")
            axes[0, 0].legend(fontsize=6, loc="best")
            fig.suptitle(f"{curve} curves, operator {op} (mean over examples, 95% t-CI bands)", fontsize=10)
            rep.figure(f"{curve}_curves_{op}", fig, f"{curve.capitalize()} curves under the {op} operator: MoRF "
                       "(scorer colour), LeRF (grey) and a random order (black dashed), each with a 95% CI band over "
                       "examples (per-example curves averaged over seeds).")
    # ABPC bars with CIs and per-seed dots
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names) * len(operators) / 2 + 2, 3.4))
    w = 0.8 / len(operators)
    hatch = {op: h for op, h in zip(operators, ("", "//", "xx", ".."))}
    rng = np.random.default_rng(0)
    for j, op in enumerate(operators):
        s = msum[(msum.metric == "abpc") & (msum.operator == op)].set_index("scorer").reindex(names)
        x = np.arange(len(names)) - 0.4 + w * (j + 0.5)
        ax.bar(x, s["mean"], width=w * 0.9, color=[col[n] for n in names], alpha=0.8, hatch=hatch[op],
               edgecolor="white", label=f"operator {op}")
        err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]).clip(min=0)
        ax.errorbar(x, s["mean"], yerr=err, fmt="none", ecolor="0.2", capsize=2, lw=1)
        ps = per_seed[per_seed.operator == op]
        for i, n in enumerate(names):
            v = ps.loc[ps.scorer == n, "abpc"].to_numpy(float)
            ax.scatter(x[i] + rng.uniform(-w * 0.2, w * 0.2, v.size), v, s=9, color="0.1", alpha=0.5, zorder=3,
                       linewidths=0)
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_xlabel("scorer")
    ax.set_ylabel("ABPC = mean over q of f(LeRF) - f(MoRF)\n(nats/token, 95% CI)")
    ax.legend(fontsize=7)
    rep.figure("abpc", fig, "ABPC per scorer and operator (crossed-bootstrap 95% CIs; dots = per-seed means).")
    # rank agreement scatter
    if len(operators) >= 2:
        a, b = operators[:2]
        piv = msum[msum.metric == "abpc"].pivot_table(index="scorer", columns="operator", values="mean")
        fig, ax = plt.subplots(figsize=(4.2, 3.8))
        for n in names:
            if n in piv.index:
                ax.scatter(piv.loc[n, a], piv.loc[n, b], color=col[n], s=30)
                ax.annotate(n, (piv.loc[n, a], piv.loc[n, b]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        tau = agree[(agree.metric == "abpc")]
        t = f"Kendall tau = {tau.kendall_tau.iloc[0]:.2f}" if len(tau) else ""
        ax.set_xlabel(f"mean ABPC, operator {a} (nats/token)")
        ax.set_ylabel(f"mean ABPC, operator {b} (nats/token)")
        ax.set_title(f"scorer ranking across operators: {t}", fontsize=9)
        rep.figure("rank_agreement", fig, "Mean ABPC of each scorer under the two replacement operators; the rank "
                   "agreement (Kendall tau) says whether the ranking of scorers depends on the operator.")


@register_analysis("intervention")
def run(cfg: AnalysisConfig) -> dict:
    """Deletion/insertion curves and ERASER-style metrics per scorer, verdicts vs random on ABPC."""
    from tueval.metrics import PerturbationSpec

    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    spec = PerturbationSpec(grid=prof.grid, aopc_bins=prof.aopc_bins, n_random=prof.n_random)
    operators = list(spec.operators)

    def compute() -> dict[str, pd.DataFrame]:
        data = load_forget(cfg.workdir, prof.max_examples)
        scores = compute_scores(data, names, seeds, states=learned_states(cfg, names, seeds))
        curves, summ = intervention_tables(data.target, data, scores, seeds, prof, cfg.progress)
        return {"curves": curves, "per_example": summ,
                "meta": pd.DataFrame([{"n_examples": len(data.examples), "n_total": data.n_total}])}

    tabs = cached_tables(cfg.workdir, "intervention", {"version": CACHE_VERSION, "profile": asdict(prof),
                                                      "seeds": list(seeds), "scorers": names, "spec": spec.to_dict()},
                         compute, use_cache=cfg.cache)
    curves, summ, meta = tabs["curves"], tabs["per_example"], tabs["meta"].iloc[0]
    cs = curve_summary(curves)
    msum, per_seed = _metric_summary(summ, prof.n_boot)
    agree = rank_agreement(msum, operators)

    items = []
    for op in operators:
        g = summ[summ.operator == op]
        ctrl = g[g.scorer == "random"]
        for name in names:
            if name != "random":
                items.append(unit_comparison(g[g.scorer == name], ctrl, "abpc", metric=f"abpc[{op}]",
                                             method_name=name, control_name="random", n_resamples=prof.n_boot,
                                             alpha=cfg.alpha))
    verdicts = verdicts_frame(items, cfg.alpha, "intervention vs random")

    rep = ReportWriter(cfg.reports / "intervention", "Intervention: do high-scored tokens matter to the answer?")
    rep.text("## What was tested\nFor each scorer, answer tokens of the forget examples are hidden in score order "
             "(MoRF: most relevant first; LeRF: least relevant first; random order) and the target model's answer "
             "knowledge margin f is re-measured: f = mean over ALL answer tokens of log p(original token | "
             "perturbed context) under the target MINUS the same under the retain model (which never saw these "
             "people): removed tokens are hidden as context only, so f has the same support at every q, and "
             "context every language model needs (template words) cancels out. "
             "**ABPC** (area between LeRF and MoRF deletion curves, the primary metric) cancels the out-of-"
             "distribution effect of removal itself; comprehensiveness/sufficiency use k = |GT| tokens (annotated "
             "spans), AOPC averages over the bins. Two replacement operators: `attention_mask` (token invisible: key "
             "masked, id replaced by pad) and `replace_token` (id replaced by pad, still attended).")
    rep.text("## Settings\n" + settings_md({
        "workdir": cfg.workdir.root, "profile": cfg.profile, "seeds": list(seeds),
        "examples": f"{int(meta.n_examples)} of {int(meta.n_total)} forget examples (fixed sample when capped)",
        "scorers": ", ".join(names), "operators": ", ".join(operators), "grid q": list(prof.grid),
        "AOPC bins": list(prof.aopc_bins), "random-order draws": prof.n_random,
        "perturbation spec": {k: v for k, v in spec.to_dict().items() if k not in ("grid", "aopc_bins", "operators",
                                                                                   "n_random", "seed")},
        "unit": "deterministic scorers: the example (seed -1 in the CSVs); seeds drive the random scorer, the "
                "random-order draws and the learned (ATWU) runs",
        "CI": f"crossed bootstrap over seeds and examples ({prof.n_boot} resamples)",
        "test": "one-sided sign-flip test over examples of the seed-averaged ABPC difference (scorer - random); "
                "Holm over scorers x operators"}))
    rep.text("## Verdicts: does each scorer beat random on ABPC?\n" + verdict_md(verdicts))
    wide = msum[msum.metric.isin(["abpc", "abpc_insertion", "comprehensiveness", "sufficiency", "aopc_comp",
                                  "aopc_suff"])].pivot_table(index=["operator", "scorer"], columns="metric",
                                                             values="mean", sort=False).reset_index()
    ci = msum[msum.metric == "abpc"][["operator", "scorer", "ci_low", "ci_high"]].rename(
        columns={"ci_low": "abpc_ci_low", "ci_high": "abpc_ci_high"})
    rep.text("## Metrics (means; nats/token)\n" + markdown_table(wide.merge(ci, on=["operator", "scorer"])))
    obs = []
    for op in operators:
        r = msum[(msum.metric == "abpc") & (msum.operator == op)].sort_values("mean", ascending=False)
        order = list(r.scorer)
        obs.append(f"- `{op}`: highest mean ABPC {order[0]} ({r['mean'].iloc[0]:.3f}); the oracle (GT tokens first) "
                   f"ranks {order.index('oracle') + 1} of {len(order)}" if "oracle" in order else
                   f"- `{op}`: highest mean ABPC {order[0]}")
    rep.text("## Observations\nRemoving the annotated fact tokens is not guaranteed to hurt f most: f averages the "
             "log-probability of every answer token, and much of it is carried by the connecting words.\n"
             + "\n".join(obs))
    rep.text("## Rank agreement across operators\nKendall tau between the scorer rankings (by mean metric) under "
             "the two operators; low agreement means the ranking reflects the operator, not the scorer.\n"
             + markdown_table(agree))
    _figures(rep, cs, msum, per_seed, agree, names, operators)
    rep.table("verdicts", verdicts)
    rep.table("metrics", msum)
    rep.table("per_seed", per_seed)
    rep.table("curves", cs)
    rep.table("rank_agreement", agree)
    rep.table("per_example", summ)
    elapsed = time.perf_counter() - t0
    rep.text(f"## Run\nWall time {elapsed:.1f} s.")
    path = rep.write(regen_command("intervention", cfg))
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "metrics": msum.to_dict("records"),
            "rank_agreement": agree.to_dict("records"), "wall_s": elapsed}
