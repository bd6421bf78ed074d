"""Gradient SNR analysis: does selecting tokens by a scorer raise the signal-to-noise ratio of the forget gradient?

Signal = gradient of the GT-token losses, noise = the rest (tueval.metrics.snr). Primary: directional SNR along a
held-out oracle direction u (the forget examples are split per seed into a reference half, which gives u, and an
evaluation half); secondaries: 1/B_simple, composition ratio, cosine to u. Each scorer's weights (hard top-k at
several k, and soft) are compared with every control (uniform, random_k with the same count, permuted, magnitude
matched, oracle, anti) at the reference model and at checkpoints along a GA unlearning run.

Exact and cheap for many weightings: all metrics are quadratic forms in per-TOKEN gradients. For example i with
per-token gradients J_i [K_i, P] (one vector-Jacobian product per answer token, ``per_example_grads`` with one
weighting per token), g_i(w) = J_i^T w_i, so <g_i, u> = w_i . (J_i u), ||g_i||^2 = w_i^T (J_i J_i^T) w_i, and the
sums over the evaluation half are accumulated as one matrix product. This costs K_i VJPs per example once per
model, against 2 per weighting per example in ``snr_report``; the route is chosen by that cost and both agree
(tests check it).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.stats
import torch

from analyses.alignment import (build_scorer, compute_scores, learned_states, load_forget,
                                method_names, plot_setup, regen_command, settings_md, setup, verdict_md)
from tueval.analysis import AnalysisConfig, register_analysis
from tueval.analysis_cache import cached_tables
from tueval.report import ReportWriter, markdown_table

CONTROL_ORDER = ("random_k", "permuted", "uniform", "magnitude_matched", "oracle", "anti")
METRIC_COLS = ("snr_dir", "inv_b_simple", "composition_db", "cos_mean_u")
CACHE_VERSION = 1  # bump when the cached per-seed tables change meaning


@dataclass(frozen=True)
class SNRProfile:
    """Size of one SNR run: examples (reference + evaluation halves), seeds, k grid, parameter subset,
    checkpoint seeds and examples, snapshot fractions of the run, primary k, vmap chunk, accumulator memory."""

    max_examples: int | None
    max_seeds: int | None
    ks: tuple[float, ...]
    params: str | None
    checkpoint_seeds: int | None
    checkpoint_examples: int | None
    snapshot_fracs: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)
    primary_k: float = 0.3
    chunk: int = 4
    mem_mb: int = 1024


PROFILES = {
    "quick": SNRProfile(16, 2, (0.1, 0.3, 1.0), "last_block", 1, 8, (0.5, 1.0)),
    "default": SNRProfile(64, None, (0.1, 0.3, 0.5, 1.0), "last_block", 2, 24),  # sized for the demo budget
    "full": SNRProfile(None, None, (0.1, 0.2, 0.3, 0.5, 1.0), None, None, None),
}


# ---------------------------------------------------------------------------------------------------------------
# weightings
def seed_split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """(reference half, evaluation half) of n examples for ``seed``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[: n // 2]), sorted(perm[n // 2:])


def weightings(scores: dict[str, torch.Tensor], gt: torch.Tensor, ans: torch.Tensor, ks, seed: int,
               soft: bool = True) -> dict[tuple[str, str], torch.Tensor]:
    """Every weighting of one seed, keyed (name, k label): the methods' hard top-k and soft weights and the
    controls (random_k, oracle, anti, magnitude_matched per k; uniform at k = 1; permuted, oracle, anti for soft)."""
    from tueval.weighting import hard_weights, magnitude_matched, permuted, random_k, soft_weights

    gen = torch.Generator().manual_seed(10_007 + seed)
    g = gt.float() * ans
    anti = (1.0 - gt.float()) * ans
    out: dict[tuple[str, str], torch.Tensor] = {}
    for k in ks:
        if k >= 1.0:
            out[("uniform", "1")] = ans.float()
            continue
        lab = f"{k:g}"
        for m, s in scores.items():
            out[(m, lab)] = hard_weights(s, ans, k)
        w_or = hard_weights(g, ans, k)
        out[("oracle", lab)] = w_or
        out[("anti", lab)] = hard_weights(anti, ans, k)
        out[("random_k", lab)] = random_k(w_or, ans, gen)
        out[("magnitude_matched", lab)] = magnitude_matched(w_or, ans)
    if soft:
        for m, s in scores.items():
            w = soft_weights(s, ans)
            out[(m, "soft")] = w
            out[(f"permuted:{m}", "soft")] = permuted(w, ans, gen)
        out[("oracle", "soft")] = soft_weights(g, ans)
        out[("anti", "soft")] = soft_weights(anti, ans)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the metrics for many weightings
def _metrics(proj: np.ndarray, sq: np.ndarray, ssum: torch.Tensor, nsum: torch.Tensor, u: torch.Tensor) -> dict:
    """The formulas of tueval.metrics.snr (_GradStats.compute) from per-example projections and squared norms."""
    n = proj.size
    g = (ssum + nsum).double()
    S2 = float(g @ g)
    sum_sq = float(sq.sum())
    g2 = (S2 - sum_sq) / (n * (n - 1)) if n > 1 else float("nan")
    tr = (sum_sq - S2 / n) / (n - 1) if n > 1 else float("nan")
    var = float(proj.var(ddof=1)) if n > 1 else float("nan")
    mean = float(proj.mean())
    ns, nn_ = float(ssum.double() @ ssum.double()), float(nsum.double() @ nsum.double())
    ratio = ns / nn_ if nn_ > 0 else float("inf")
    gnorm = math.sqrt(S2)
    return {"n_examples": n, "mean_proj": mean, "sd_proj": var ** 0.5 if var == var else float("nan"),
            "snr_dir": mean ** 2 / var if var > 0 else float("nan"), "g_sq_unbiased": g2, "tr_sigma": tr,
            "inv_b_simple": g2 / tr if tr > 0 else float("nan"), "composition_ratio": ratio,
            "composition_db": 10 * np.log10(ratio) if ratio > 0 else -np.inf,
            "cos_mean_u": float(g @ u.double()) / gnorm if gnorm > 0 else float("nan")}


def _answer_positions(ans: torch.Tensor) -> list[torch.Tensor]:
    return [torch.nonzero(row, as_tuple=True)[0] for row in ans]


def _token_route(model, batch, splits, weights, gt, names, chunk: int, mem_mb: int) -> pd.DataFrame:
    from tueval.metrics.snr import per_example_grads, reference_direction

    ans = batch.answer_mask.bool()
    pos = _answer_positions(ans)
    N = len(batch)
    K = max(int(p.numel()) for p in pos)
    U = torch.stack([reference_direction(model, batch.select(r), params=names) for r, _ in splits]).float()
    P = U.shape[1]
    gtf = (gt.bool() & ans).float()

    def packed(x: torch.Tensor) -> torch.Tensor:  # [N, T] -> [N, K] over answer positions
        out = torch.zeros(N, K, dtype=torch.float64)
        for i, p in enumerate(pos):  # N rows, once per weighting: cheap bookkeeping, not a hot path
            out[i, : p.numel()] = x[i, p].double()
        return out

    gtp = packed(gtf)
    # rows of the accumulator: (split j, weighting key, part) with part 0 = signal, 1 = noise
    jobs, wp = [], {}
    for j, (_, ev) in enumerate(splits):
        evm = torch.zeros(N, 1, dtype=torch.float64)
        evm[ev] = 1.0
        for key, w in weights[j].items():
            p = packed(w)
            wp[(j, key)] = p
            jobs.append(((j, key), p * gtp * evm, p * (1 - gtp) * evm))
    per_group = max(1, int(mem_mb * 2 ** 20 // (2 * 4 * P)))
    groups = [jobs[i:i + per_group] for i in range(0, len(jobs), per_group)]
    union = sorted(set().union(*[set(ev) for _, ev in splits]))
    A = torch.zeros(N, K, len(splits), dtype=torch.float64)
    Gram = torch.zeros(N, K, K, dtype=torch.float64)
    sums: dict = {}
    for gi, group in enumerate(groups):
        M = torch.stack([x for _, s, n in group for x in (s, n)]).float()  # [R, N, K]
        acc = torch.zeros(M.shape[0], P)
        for c in range(0, len(union), chunk):
            idx = union[c:c + chunk]
            sub = batch.select(idx)
            kc = max(int(pos[i].numel()) for i in idx)
            W = torch.zeros(kc, len(idx), sub.input_ids.shape[1])
            for b, i in enumerate(idx):
                W[torch.arange(pos[i].numel()), b, pos[i]] = 1.0
            J = per_example_grads(model, sub, W, params=names, chunk_size=len(idx)).permute(1, 0, 2)  # [c, kc, P]
            if gi == 0:
                A[idx, :kc] = torch.einsum("ckp,sp->cks", J, U).double()
                Gram[idx, :kc, :kc] = torch.bmm(J, J.transpose(1, 2)).double()
            acc += M[:, idx, :kc].reshape(M.shape[0], -1) @ J.reshape(-1, P)
        for r, (key, _, _) in enumerate(group):
            sums[key] = (acc[2 * r], acc[2 * r + 1])
    rows = []
    for j, (_, ev) in enumerate(splits):
        for key in weights[j]:
            w = wp[(j, key)][ev]
            proj = (w * A[ev, :, j]).sum(1).numpy()
            sq = torch.einsum("nk,nkl,nl->n", w, Gram[ev], w).numpy()
            rows.append({"split": j, "weighting": key[0], "k": key[1],
                         **_metrics(proj, sq, *sums[(j, key)], U[j]), "n_params": P})
    return pd.DataFrame(rows)


def _report_route(model, batch, splits, weights, gt, names, chunk: int) -> pd.DataFrame:
    from tueval.metrics import snr_report

    frames = []
    for j, (ref, ev) in enumerate(splits):
        keys = list(weights[j])
        wb = {f"{i}": weights[j][k][ev] for i, k in enumerate(keys)}
        be, br = batch.select(ev), batch.select(ref)
        df = snr_report(model, be, br, wb, gt_mask=gt[ev], params=names, chunk_size=chunk,
                        ref_gt_mask=gt[ref])
        idx = [int(i) for i in df.weighting]
        df["weighting"] = [keys[i][0] for i in idx]
        df.insert(1, "k", [keys[i][1] for i in idx])
        df.insert(0, "split", j)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def snr_grid(model, batch, splits, weights, gt: torch.Tensor, params: str | None = "last_block", chunk: int = 4,
             mem_mb: int = 1024, route: str = "auto") -> pd.DataFrame:
    """SNR metrics of every (split, weighting): ``splits`` = [(reference idx, evaluation idx)], ``weights`` = one
    dict per split {(name, k label): [N, T]}, ``gt`` [N, T] the signal tokens. ``route``: ``tokens`` (per-token
    gradients, cost ~K VJPs per example once), ``report`` (``snr_report`` per split, 2 VJPs per weighting per
    example) or ``auto`` (the cheaper)."""
    from tueval.metrics.snr import select_params

    names = select_params(model, params)
    if route == "auto":
        K = float(batch.answer_mask.sum(1).float().mean())
        n_union = len(set().union(*[set(ev) for _, ev in splits]))
        cost_tokens = n_union * K
        cost_report = sum(2 * len(w) * len(ev) for w, (_, ev) in zip(weights, splits))
        route = "tokens" if cost_tokens < cost_report else "report"
    if route == "tokens":
        df = _token_route(model, batch, splits, weights, gt, names, chunk, mem_mb)
    else:
        df = _report_route(model, batch, splits, weights, gt, names, chunk)
    df["route"] = route
    return df


# ---------------------------------------------------------------------------------------------------------------
def _tidy(df: pd.DataFrame, seeds, methods) -> pd.DataFrame:
    df = df.copy()
    df["seed"] = [seeds[j] for j in df.split]
    df["control_of"] = [n.split(":", 1)[1] if n.startswith("permuted:") else "" for n in df.weighting]
    df["kind"] = ["method" if n in methods else "control" for n in df.weighting]
    df["k_frac"] = [float(k) if k != "soft" else float("nan") for k in df.k]
    df["log10_snr_dir"] = np.log10(df.snr_dir.clip(lower=1e-300))
    return df.drop(columns=["split"])


def _with_uniform_endpoint(t: pd.DataFrame, names) -> pd.DataFrame:
    """Copy the uniform row (k = 1: every hard selection keeps all tokens) to each hard weighting for the curves."""
    uni = t[(t.weighting == "uniform") & (t.k == "1")]
    extra = [uni.assign(weighting=n, kind=("method" if n not in CONTROL_ORDER else "control")) for n in names]
    return pd.concat([t] + extra, ignore_index=True)


def _seed_summary(t: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rows = []
    for key, g in t.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key))
        for m in ("log10_snr_dir", "inv_b_simple", "composition_db", "cos_mean_u"):
            v = g[m].replace([np.inf, -np.inf], np.nan).dropna().to_numpy(float)
            mean = float(v.mean()) if v.size else float("nan")
            # with 2 seeds a t-interval (t = 12.7) says nothing; the figures show the seeds themselves instead
            half = (scipy.stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)) if v.size > 2 else np.nan
            row.update({m: mean, f"{m}_ci_low": mean - half, f"{m}_ci_high": mean + half})
        row["n_seeds"] = int(g.seed.nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict_items(t: pd.DataFrame, methods, ks, alpha: float) -> list:
    from tueval.stats import compare

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
            c = compare(np.log(10) * a[common].to_numpy(), np.log(10) * b[common].to_numpy(),
                        metric=f"log snr_dir @k={lab}", method=m, control="permuted" if lab == "soft" else "random_k",
                        alpha=alpha)
            items.append(c)
    return items


def _normalised_position(t: pd.DataFrame, methods) -> pd.DataFrame:
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


def _figures(rep, summ: pd.DataFrame, t: pd.DataFrame, cps: pd.DataFrame, ck: pd.DataFrame, methods, primary):
    import matplotlib.colors as mcolors
    from matplotlib.lines import Line2D

    plt, _ = plot_setup()
    shown = list(methods) + ["random_k", "oracle", "anti"]
    # methods: distinct tab10 colours and markers; controls: black/greys, so no control shares a method's colour
    tab = [mcolors.to_hex(c) for c in plt.get_cmap("tab10").colors]
    col = {n: tab[i % len(tab)] for i, n in enumerate(methods)}
    col |= {"random_k": "#000000", "oracle": "#666666", "anti": "#AAAAAA", "uniform": "#000000"}
    marks = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
    mk = {n: marks[i % len(marks)] for i, n in enumerate(methods)} | {"random_k": "o", "oracle": "o", "anti": "o"}
    style = {n: "-" for n in methods} | {"random_k": "--", "oracle": ":", "anti": "-."}
    panels = [("log10_snr_dir", "log10 directional SNR along u\n(primary)"),
              ("inv_b_simple", "1/B_simple = |G|^2 / tr(Sigma)"),
              ("composition_db", "composition ratio (dB)\n10 log10 ||sum s||^2/||sum n||^2"),
              ("cos_mean_u", "cos(sum of g_i, u)")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    hard = summ[summ.k != "soft"]
    soft = summ[summ.k == "soft"]
    pts = t[t.k != "soft"]
    for ax, (m, lab) in zip(axes.ravel(), panels):
        for n in shown:
            r = hard[hard.weighting == n].sort_values("k_frac")
            if r.empty:
                continue
            ax.plot(r.k_frac, r[m], style.get(n, "-"), marker=mk[n], ms=3.5, color=col[n], lw=1.4, label=n)
            ax.fill_between(r.k_frac.to_numpy(float), r[f"{m}_ci_low"].to_numpy(float),
                            r[f"{m}_ci_high"].to_numpy(float), color=col[n], alpha=0.13, lw=0)
            p = pts[pts.weighting == n]
            ax.scatter(p.k_frac, p[m], s=6, color=col[n], alpha=0.35, linewidths=0)
            s = soft[soft.weighting == n]
            if len(s):
                ax.errorbar([1.15], s[m], yerr=np.nan_to_num(np.abs(np.vstack([s[m] - s[f"{m}_ci_low"],
                                                                                 s[f"{m}_ci_high"] - s[m]]))),
                            fmt="s", color=col[n], ms=4, capsize=2)
        for n in methods:
            s = soft[soft.weighting == f"permuted:{n}"]
            if len(s):
                ax.scatter([1.2], s[m], marker="x", color=col[n], s=18, zorder=3)
        ax.set_xticks([0.1, 0.3, 0.5, 0.7, 1.0, 1.17], ["0.1", "0.3", "0.5", "0.7", "1.0\n(uniform)", "soft"])
        ax.set_xlabel("k: fraction of answer tokens selected (hard top-k)")
        ax.set_ylabel(lab)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [Line2D([], [], marker="s", ls="none", color="0.3", ms=4),
                Line2D([], [], marker="x", ls="none", color="0.3", ms=5)]
    labels += ["soft weights (at 'soft')", "permuted soft weights"]
    fig.legend(handles, labels, loc="outside lower center", ncol=6, fontsize=7)
    fig.suptitle("Gradient SNR of token selections at the reference model (mean over seeds, 95% t-CI bands "
                 "from 3 seeds on, dots = seeds)", fontsize=10)
    rep.figure("snr_vs_k", fig, "SNR metrics against the selected fraction k for each scorer's hard top-k selection "
               "and the controls (random_k: same count at random; oracle: GT tokens first; anti: GT last); squares "
               "at 'soft' = soft weights (x = permuted soft weights). At k = 1 every selection is uniform.")
    if ck is not None and len(ck):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for n in [x for x in shown + ["uniform"] if x in set(ck.weighting)]:
            r = ck[ck.weighting == n].sort_values("step")
            ax.plot(r.step, r.log10_snr_dir, style.get(n, "-"), marker="o", ms=3, color=col.get(n, "0.3"), label=n)
            ax.fill_between(r.step.to_numpy(float), r.log10_snr_dir_ci_low.to_numpy(float),
                            r.log10_snr_dir_ci_high.to_numpy(float), color=col.get(n, "0.3"), alpha=0.13, lw=0)
            p = cps[cps.weighting == n]
            ax.scatter(p.step, p.log10_snr_dir, s=7, color=col.get(n, "0.3"), alpha=0.35, linewidths=0)
        ax.set_xlabel("unlearning step of a GA (uniform) run (0 = reference model)")
        ax.set_ylabel(f"log10 directional SNR at k={primary:g}")
        ax.legend(fontsize=6, ncol=2)
        rep.figure("snr_checkpoints", fig, f"Directional SNR of the k={primary:g} selections along GA unlearning "
                   "(mean over seeds with 95% t-CI bands; dots = seeds). Dynamic scorers are re-scored on each "
                   "checkpoint, static ones keep their reference scores.")


def _checkpoints(cfg, data, prof, seeds, methods, states, ref_scores) -> tuple[pd.DataFrame, tuple]:
    """SNR at k = primary_k along one GA uniform run per seed (snapshots at fractions of the run)."""
    from tueval.defaults import FIXED
    from tueval.sweep import require_runs
    from tueval.spec import RunSpec
    from tueval.unlearn import snapshot_model

    cseeds = seeds[:prof.checkpoint_seeds] if prof.checkpoint_seeds else seeds
    total = FIXED["epochs"] * math.ceil(data.n_total / FIXED["batch_size"])
    steps = tuple(sorted({max(1, int(round(f * total))) for f in prof.snapshot_fracs}))
    specs = [RunSpec(objective="ga", scorer="uniform", mode="none", seed=s, snapshot_steps=steps, generate=False,
                     **FIXED) for s in cseeds]
    runs = require_runs(specs, cfg.workdir, cfg.compute, cfg.workers, cfg.progress)
    static = {m for m in methods if bool(getattr(build_scorer(m), "static", False))}
    ans = data.batch.answer_mask
    gt = data.gt("spans")
    frames = []
    for s, run in zip(cseeds, runs):
        ref, ev = seed_split(len(data.batch), s)
        if prof.checkpoint_examples:
            ev = ev[: prof.checkpoint_examples]
        for step in (0,) + steps:
            model = snapshot_model(cfg.workdir, run, step) if step else data.target
            dyn = [m for m in methods if m not in static]
            cur = compute_scores(data, dyn, [s], model=model, ref_model=data.target, states=states) if (
                dyn and step) else None
            sc = {m: (cur.get(m, s) if cur is not None and m in dyn else ref_scores.get(m, s)) for m in methods}
            w = weightings(sc, gt, ans, (prof.primary_k, 1.0), s, soft=False)
            w = {k: v for k, v in w.items() if k[0] != "magnitude_matched"}
            df = snr_grid(model, data.batch, [(ref, ev)], [w], gt, prof.params, prof.chunk, prof.mem_mb)
            df = _tidy(df, [s], methods)
            df["step"] = step
            frames.append(df)
    return pd.concat(frames, ignore_index=True), steps


@register_analysis("snr")
def run(cfg: AnalysisConfig) -> dict:
    """Gradient SNR of every scorer's selections against the controls, at the reference and along unlearning."""
    from tueval.metrics.snr import select_params

    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    methods = method_names(names)

    def compute() -> dict[str, pd.DataFrame]:
        data = load_forget(cfg.workdir, prof.max_examples)
        states = learned_states(cfg, names, seeds)
        scores = compute_scores(data, methods, seeds, states=states)
        ans, gt = data.batch.answer_mask, data.gt("spans")
        splits = [seed_split(len(data.batch), s) for s in seeds]
        weights = [weightings({m: scores.get(m, s) for m in methods}, gt, ans, prof.ks, s) for s in seeds]
        raw = snr_grid(data.target, data.batch, splits, weights, gt, prof.params, prof.chunk, prof.mem_mb)
        cps, steps = _checkpoints(cfg, data, prof, seeds, methods, states, scores)
        n_params = int(sum(dict(data.target.named_parameters())[n].numel()
                           for n in select_params(data.target, prof.params)))
        meta = {"n_examples": len(data.examples), "n_total": data.n_total, "n_ref": len(splits[0][0]),
                "n_eval": len(splits[0][1]), "n_eval_mean": float(np.mean([len(ev) for _, ev in splits])),
                "n_params": n_params, "route": str(raw.route.iloc[0]), "steps": ",".join(map(str, steps))}
        return {"raw": raw, "checkpoints": cps, "meta": pd.DataFrame([meta])}

    tabs = cached_tables(cfg.workdir, "snr", {"version": CACHE_VERSION, "profile": asdict(prof), "seeds": list(seeds),
                                             "scorers": names}, compute, use_cache=cfg.cache)
    raw, cps, meta = tabs["raw"], tabs["checkpoints"], tabs["meta"].iloc[0]
    steps = tuple(int(x) for x in str(meta.steps).split(",") if x)
    n_params = int(meta.n_params)
    t = _tidy(raw, seeds, methods)
    t_curves = _with_uniform_endpoint(t, methods + ["random_k", "oracle", "anti"])
    summ = _seed_summary(t_curves, ["weighting", "kind", "k", "k_frac"])
    from tueval.stats import verdict_table, verdicts_to_frame

    # confirmatory: each scorer at the primary k (vs random_k) and soft (vs permuted), one Holm family per scorer;
    # the other k of the sweep are exploratory (Benjamini-Hochberg over all of them, reported separately)
    conf_labels = (f"{prof.primary_k:g}", "soft")
    items = _verdict_items(t, methods, prof.ks, cfg.alpha)
    conf = [c for c in items if c.metric.rsplit("=", 1)[-1] in conf_labels]
    expl = [c for c in items if c.metric.rsplit("=", 1)[-1] not in conf_labels]
    frames = []
    for m in methods:
        fam = [c for c in conf if c.method == m]
        if fam:
            f = verdicts_to_frame(verdict_table(fam, alpha=cfg.alpha, correction="holm"))
            f.insert(0, "family", f"SNR {m}: k={prof.primary_k:g} vs random_k, soft vs permuted")
            frames.append(f)
    verdicts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not verdicts.empty:
        verdicts["n_examples"] = int(meta.n_eval_mean)
    explore = verdicts_to_frame(verdict_table(expl, alpha=cfg.alpha, correction="fdr_bh")) if expl else pd.DataFrame()
    if not explore.empty:
        explore.insert(0, "family", "exploratory: other k (BH)")
    npos = _normalised_position(t, methods)
    ck = _seed_summary(cps, ["weighting", "step"]) if len(cps) else None
    min_p = 0.5 ** len(seeds)

    rep = ReportWriter(cfg.reports / "snr", "Gradient signal-to-noise of token selections")
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
        "parameters": f"{prof.params or 'all'} ({n_params:,} parameters differentiated)",
        "k": list(prof.ks), "scorers": ", ".join(methods),
        "route": f"{meta.route} (see module doc: per-token gradients give every weighting exactly)",
        "checkpoints": f"GA uniform run per seed (defaults.FIXED), snapshots at steps {list(steps)}, seeds "
                       f"{sorted(set(cps.seed)) if len(cps) else []}, k = {prof.primary_k}, "
                       f"{prof.checkpoint_examples or 'all'} evaluation examples",
        "CI of means": "t-interval over seeds (reported from 3 seeds on)",
        "unit / test": "the seed (it draws the split and the random controls); paired difference of log SNR "
                       "(scorer - random_k for hard k, scorer - permuted for soft), t-interval and exact sign-flip "
                       f"p; confirmatory: k = {prof.primary_k:g} and soft, Holm within each scorer's family of 2; "
                       "the other k of the sweep: exploratory, Benjamini-Hochberg",
        "power note": f"with {len(seeds)} seeds the smallest one-sided sign-flip p is {min_p:.3g}; Holm over a "
                      f"family of 2 needs p < {cfg.alpha / 2:.3g} for the first step."
                      " The splits of different seeds share examples, so seeds are not independent replicates and "
                      "the p-values are approximate."}))
    rep.text("## Verdicts: does each scorer's selection beat random_k (hard) / permuted (soft) on log SNR?\n"
             + verdict_md(verdicts))
    if not explore.empty:
        rep.text("## Exploratory: the other k of the sweep (Benjamini-Hochberg, not claims)\n" + verdict_md(explore))
    prim = summ[summ.k.isin([f"{prof.primary_k:g}", "soft", "1"])]
    rep.text(f"## Metrics at k = {prof.primary_k:g}, soft and uniform (means over seeds)\n"
             + markdown_table(prim[["weighting", "kind", "k", "log10_snr_dir", "log10_snr_dir_ci_low",
                                    "log10_snr_dir_ci_high", "inv_b_simple", "composition_db", "cos_mean_u",
                                    "n_seeds"]]))
    at = summ[(summ.k == f"{prof.primary_k:g}") & (summ.weighting != "magnitude_matched")].sort_values(
        "log10_snr_dir", ascending=False)
    if len(at):
        order = list(at.weighting)
        line = f"## Observations\nAt k = {prof.primary_k:g} the highest mean directional SNR has {order[0]}"
        if "oracle" in order:
            line += f"; the oracle selection ranks {order.index('oracle') + 1} of {len(order)}"
        uni = summ[summ.weighting == "uniform"].log10_snr_dir
        if len(uni):
            line += f". Uniform weights (k = 1): log10 SNR {float(uni.iloc[0]):.3f}"
        rep.text(line + ".")
    if len(npos):
        rep.text("## Normalised position (SNR - SNR_random_k) / (SNR_oracle - SNR_random_k)\n0 = random, "
                 "1 = oracle.\n" + markdown_table(npos))
    if ck is not None:
        rep.text("## Along unlearning (log10 directional SNR)\n"
                 + markdown_table(ck[["weighting", "step", "log10_snr_dir", "log10_snr_dir_ci_low",
                                      "log10_snr_dir_ci_high", "n_seeds"]]))
    _figures(rep, summ, t_curves, cps, ck, methods, prof.primary_k)
    rep.table("verdicts", verdicts)
    if not explore.empty:
        rep.table("verdicts_exploratory", explore)
    rep.table("summary", summ)
    rep.table("per_seed", t)
    rep.table("normalised_position", npos)
    rep.table("checkpoints_per_seed", cps)
    if ck is not None:
        rep.table("checkpoints", ck)
    elapsed = time.perf_counter() - t0
    rep.text(f"## Run\nWall time {elapsed:.1f} s.")
    path = rep.write(regen_command("snr", cfg))
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "summary": summ.to_dict("records"),
            "checkpoints": ck.to_dict("records") if ck is not None else [], "wall_s": elapsed}
