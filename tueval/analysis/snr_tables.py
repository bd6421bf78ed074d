"""Gradient-SNR tables of a score set: every scorer's selections and their controls at the reference model and
along one GA unlearning run per seed, the per-seed tidy table, seed summaries, the normalised position between
random and oracle, and the paired comparisons of log directional SNR (the seed is the unit)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics.catalogue import higher_is_better
from ..stats.paired import t_interval
from .forget import ForgetData
from .profiles import SNRProfile
from .registry import AnalysisConfig
from .scores import ScoreSet, build_scorer, compute_scores

CONTROL_ORDER = ("random_k", "permuted", "uniform", "magnitude_matched", "oracle", "anti")
SUMMARY_METRICS = ("log10_snr_dir", "inv_b_simple", "composition_db", "cos_mean_u")
MIN_SEEDS_FOR_CI = 3  # with 2 seeds a t-interval (t = 12.7) says nothing; the figures show the seeds instead


def reference_table(data: ForgetData, prof: SNRProfile, seeds: Sequence[int], methods: Sequence[str],
                    scores: ScoreSet) -> tuple[pd.DataFrame, list]:
    """Raw SNR metrics of every (seed, weighting) at the target model, and the per-seed splits."""
    from ..metrics.snr_grid import seed_split, snr_grid
    from ..weighting import control_weightings

    ans, gt = data.batch.answer_mask, data.gt(data.primary_gt)
    splits = [seed_split(len(data.batch), s) for s in seeds]
    weights = [control_weightings({m: scores.get(m, s) for m in methods}, gt, ans, prof.ks, s) for s in seeds]
    return snr_grid(data.target, data.batch, splits, weights, gt, prof.params, prof.chunk, prof.mem_mb), splits


def checkpoint_table(cfg: AnalysisConfig, data: ForgetData, prof: SNRProfile, seeds: Sequence[int],
                     methods: Sequence[str], states: dict, ref_scores: ScoreSet) -> tuple[pd.DataFrame, tuple]:
    """SNR at k = primary_k along one GA uniform run per seed (snapshots at fractions of the run)."""
    from ..defaults import FIXED
    from ..metrics.snr_grid import seed_split, snr_grid
    from ..spec import RunSpec
    from ..sweep import require_runs
    from ..unlearn import snapshot_model
    from ..weighting import control_weightings

    cseeds = seeds[:prof.checkpoint_seeds] if prof.checkpoint_seeds else seeds
    total = FIXED["epochs"] * math.ceil(data.n_total / FIXED["batch_size"])
    steps = tuple(sorted({max(1, int(round(f * total))) for f in prof.snapshot_fracs}))
    specs = [RunSpec(objective="ga", scorer="uniform", mode="none", seed=s, snapshot_steps=steps, generate=False,
                     **FIXED) for s in cseeds]
    runs = require_runs(specs, cfg.workdir, cfg.compute, cfg.workers, cfg.progress)
    static = {m for m in methods if bool(getattr(build_scorer(m), "static", False))}
    dyn = [m for m in methods if m not in static]
    ans, gt = data.batch.answer_mask, data.gt(data.primary_gt)
    frames = []
    for s, run in zip(cseeds, runs):
        ref, ev = seed_split(len(data.batch), s)
        if prof.checkpoint_examples:
            ev = ev[: prof.checkpoint_examples]
        for step in (0,) + steps:
            model = snapshot_model(cfg.workdir, run, step) if step else data.target
            cur = compute_scores(data, dyn, [s], model=model, ref_model=data.target, states=states) if (
                dyn and step) else None
            sc = {m: (cur.get(m, s) if cur is not None and m in dyn else ref_scores.get(m, s)) for m in methods}
            w = control_weightings(sc, gt, ans, (prof.primary_k, 1.0), s, soft=False)
            w = {k: v for k, v in w.items() if k[0] != "magnitude_matched"}
            df = snr_grid(model, data.batch, [(ref, ev)], [w], gt, prof.params, prof.chunk, prof.mem_mb)
            df = tidy(df, [s], methods)
            df["step"] = step
            frames.append(df)
    return pd.concat(frames, ignore_index=True), steps


def tidy(df: pd.DataFrame, seeds: Sequence[int], methods: Sequence[str]) -> pd.DataFrame:
    """The raw grid with seed, kind (method/control), k as a fraction and log10 directional SNR."""
    df = df.copy()
    df["seed"] = [seeds[j] for j in df.split]
    df["control_of"] = [n.split(":", 1)[1] if n.startswith("permuted:") else "" for n in df.weighting]
    df["kind"] = ["method" if n in methods else "control" for n in df.weighting]
    df["k_frac"] = [float(k) if k != "soft" else float("nan") for k in df.k]
    df["log10_snr_dir"] = np.log10(df.snr_dir.clip(lower=1e-300))
    return df.drop(columns=["split"])


def with_uniform_endpoint(t: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Copy the uniform row (k = 1: every hard selection keeps all tokens) to each hard weighting for the curves."""
    uni = t[(t.weighting == "uniform") & (t.k == "1")]
    extra = [uni.assign(weighting=n, kind=("method" if n not in CONTROL_ORDER else "control")) for n in names]
    return pd.concat([t] + extra, ignore_index=True)


def seed_summary(t: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean over seeds of each summary metric per group, with a t-interval from MIN_SEEDS_FOR_CI seeds on."""
    rows = []
    for key, g in t.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key))
        for m in SUMMARY_METRICS:
            v = g[m].replace([np.inf, -np.inf], np.nan).dropna().to_numpy(float)
            lo, hi = t_interval(v, min_n=MIN_SEEDS_FOR_CI)
            row.update({m: float(v.mean()) if v.size else float("nan"), f"{m}_ci_low": lo, f"{m}_ci_high": hi})
        row["n_seeds"] = int(g.seed.nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def snr_comparisons(t: pd.DataFrame, methods: Sequence[str], ks: Sequence[float], alpha: float) -> list:
    """Per method and k (hard) or soft: the paired comparison over seeds of log directional SNR against random_k
    (hard) or the method's permuted weights (soft)."""
    from ..stats import compare

    items = []
    labels = [f"{k:g}" for k in ks if k < 1.0] + ["soft"]
    for m in methods:
        for lab in labels:
            ctrl = f"permuted:{m}" if lab == "soft" else "random_k"
            a = t[(t.weighting == m) & (t.k == lab)].set_index("seed").log10_snr_dir
            b = t[(t.weighting == ctrl) & (t.k == lab)].set_index("seed").log10_snr_dir
            common = [s for s in a.index if s in b.index and np.isfinite(a[s]) and np.isfinite(b[s])]
            if len(common) < 2:
                continue
            items.append(compare(np.log(10) * a[common].to_numpy(), np.log(10) * b[common].to_numpy(),
                                 metric=f"log snr_dir @k={lab}", method=m,
                                 control="permuted" if lab == "soft" else "random_k",
                                 higher_is_better=higher_is_better("log_snr_dir"), alpha=alpha))
    return items


def confirmatory_labels(prof: SNRProfile) -> tuple[str, str]:
    """The k labels of the confirmatory comparisons: the primary k and soft."""
    return f"{prof.primary_k:g}", "soft"


def snr_verdicts(items: list, methods: Sequence[str], prof: SNRProfile, alpha: float
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Confirmatory verdicts (each scorer at the primary k vs random_k and soft vs permuted, one Holm family per
    scorer) and the exploratory ones (the other k of the sweep, Benjamini-Hochberg over all of them)."""
    from ..stats import verdict_table, verdicts_to_frame

    conf_labels = confirmatory_labels(prof)
    conf = [c for c in items if c.metric.rsplit("=", 1)[-1] in conf_labels]
    expl = [c for c in items if c.metric.rsplit("=", 1)[-1] not in conf_labels]
    frames = []
    for m in methods:
        fam = [c for c in conf if c.method == m]
        if fam:
            f = verdicts_to_frame(verdict_table(fam, alpha=alpha, correction="holm"))
            f.insert(0, "family", f"SNR {m}: k={prof.primary_k:g} vs random_k, soft vs permuted")
            frames.append(f)
    verdicts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    explore = verdicts_to_frame(verdict_table(expl, alpha=alpha, correction="fdr_bh")) if expl else pd.DataFrame()
    if not explore.empty:
        explore.insert(0, "family", "exploratory: other k (BH)")
    return verdicts, explore


def normalised_position(t: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """(SNR_method - SNR_random_k) / (SNR_oracle - SNR_random_k) per seed and k (hard selections), then means."""
    rows = []
    hard = t[t.k != "soft"]
    for (seed, k), g in hard.groupby(["seed", "k"]):
        v = g.set_index("weighting").snr_dir
        if "random_k" not in v or "oracle" not in v:
            continue
        den = v["oracle"] - v["random_k"]
        for m in methods:
            if m in v:
                rows.append({"seed": seed, "k": k, "method": m,
                             "normalised_position": (v[m] - v["random_k"]) / den if den != 0 else np.nan})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return df.groupby(["method", "k"]).normalised_position.agg(["mean", "std", "count"]).reset_index()


def observations(summ: pd.DataFrame, primary_k: float) -> str:
    """One sentence on the ranking at the primary k: the best selection, the oracle's rank, uniform's SNR."""
    at = summ[(summ.k == f"{primary_k:g}") & (summ.weighting != "magnitude_matched")].sort_values(
        "log10_snr_dir", ascending=False)
    if not len(at):
        return ""
    order = list(at.weighting)
    line = f"At k = {primary_k:g} the highest mean directional SNR has {order[0]}"
    if "oracle" in order:
        line += f"; the oracle selection ranks {order.index('oracle') + 1} of {len(order)}"
    uni = summ[summ.weighting == "uniform"].log10_snr_dir
    if len(uni):
        line += f". Uniform weights (k = 1): log10 SNR {float(uni.iloc[0]):.3f}"
    return line + "."
