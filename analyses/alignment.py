"""Alignment analysis: do token scores find the ground-truth (GT) tokens? AP, AP lift with CI, ROC-AUC, P/R/F1@|GT|,
IoU-F1, pointing game and relevance mass per scorer, per fact label, for both ground truths (annotated spans and the
counterfactual target-vs-retain mask), plus the GT-permutation null and verdicts "scorer beats random" (Holm).

This module also holds the helpers the other score-based analyses (sanity, intervention, snr) share: loading the
forget examples with both ground truths and fact labels, building the scorers under test (learned ATWU state from
one GA+ATWU run per seed), scoring, and example-unit comparisons with a crossed (seeds x examples) bootstrap.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from tueval.analysis import AnalysisConfig, register_analysis
from tueval.data.collate import Batch, collate, tokenize_pairs
from tueval.data.counterfactual import attach_counterfactual
from tueval.errors import SpecError
from tueval.report import ReportWriter, markdown_table
from tueval.stats import effect_size_dz, sign_flip_pvalue, verdict_table, verdicts_to_frame

DEFAULT_SCORERS = ("tokenunlearn", "etw", "etw_static", "atwu_proto", "tif", "satimp", "wga", "random", "oracle",
                   "anti")
QUICK_SCORERS = ("tokenunlearn", "etw", "random", "oracle", "anti")
CONTROL_SCORERS = ("random", "oracle", "anti")
GT_SOURCES = ("spans", "counterfactual")
SUBSET_SEED = 20_240_601  # fixed: which forget examples a capped profile uses (independent of the analysis seeds)
SUMMARY_METRICS = ("ap", "ap_lift", "ap_lift_prevalence", "roc_auc", "precision_at_k", "recall_at_k", "f1_at_k",
                   "iou_f1", "pointing_game", "relevance_mass")


# ================================================================================================================
# shared helpers: forget data, scorers, scores
# ================================================================================================================
@dataclass
class ForgetData:
    """The forget examples under analysis, collated once: the batch (with ``extras['gt_counterfactual']``), the fact
    label of every GT-span token (``labels`` [N, T], '' elsewhere), both models and the tokenizer."""

    examples: list
    batch: Batch
    labels: np.ndarray
    target: Any
    retain: Any
    tokenizer: Any
    n_total: int = 0

    def gt(self, source: str = "spans") -> torch.Tensor:
        """The GT mask [N, T] (bool, answer tokens only) of ``spans`` or ``counterfactual``."""
        if source not in GT_SOURCES:
            raise SpecError(f"ground truth '{source}' is not one of {', '.join(GT_SOURCES)}")
        g = self.batch.gt_mask if source == "spans" else self.batch.extras["gt_counterfactual"]
        return g.bool() & self.batch.answer_mask.bool()

    @property
    def ids(self) -> list[str]:
        return list(self.batch.example_ids)


def subset_indices(n: int, max_examples: int | None) -> list[int]:
    """Indices of the examples a capped profile uses: all, or a fixed seeded sample of ``max_examples`` (sorted)."""
    if not max_examples or n <= max_examples:
        return list(range(n))
    return sorted(np.random.default_rng(SUBSET_SEED).choice(n, max_examples, replace=False).tolist())


def token_labels(examples: Sequence, tokenizer, overlap_rule: str = "any") -> np.ndarray:
    """Fact label [N, T] of every answer token inside a span ('' elsewhere), one tokenisation per label."""
    spans = [list(e.spans) for e in examples]
    names = sorted({s.label for sp in spans for s in sp})
    qs, ans = [e.question for e in examples], [e.answer for e in examples]
    out = None
    for name in names:
        b = tokenize_pairs(tokenizer, qs, ans, [[s for s in sp if s.label == name] for sp in spans], overlap_rule)
        if out is None:
            out = np.full(tuple(b.gt_mask.shape), "", dtype=object)
        out[b.gt_mask.numpy()] = name
    if out is None:
        b = tokenize_pairs(tokenizer, qs, ans, None, overlap_rule)
        out = np.full(tuple(b.gt_mask.shape), "", dtype=object)
    return out


def load_forget(wd, max_examples: int | None = None) -> ForgetData:
    """The workdir's forget split (capped to ``max_examples`` by a fixed sample), both models and ground truths."""
    exs = list(wd.benchmark.split(wd.forget_split))
    n_total = len(exs)
    exs = [exs[i] for i in subset_indices(len(exs), max_examples)]
    target, tok = wd.load_model("target")
    retain, _ = wd.load_model("retain")
    target.eval()  # its parameters keep requires_grad: the SNR analysis differentiates them
    retain.eval()
    for p in retain.parameters():
        p.requires_grad_(False)
    batch = collate(exs, tok)
    attach_counterfactual(batch, wd.ground_truth_table())
    return ForgetData(exs, batch, token_labels(exs, tok, batch.overlap_rule), target, retain, tok, n_total)


def scorer_names(cfg: AnalysisConfig) -> tuple[str, ...]:
    """Scorers under test: ``cfg.scorers`` (the controls random, oracle and anti always added) or the profile's set."""
    if cfg.scorers:
        return tuple(dict.fromkeys([*cfg.scorers, *CONTROL_SCORERS]))
    return QUICK_SCORERS if cfg.profile == "quick" else DEFAULT_SCORERS


def method_names(names: Sequence[str]) -> list[str]:
    """The scorers that are not controls."""
    return [n for n in names if n not in CONTROL_SCORERS and n != "uniform"]


def analysis_seeds(cfg: AnalysisConfig, max_seeds: int | None) -> tuple[int, ...]:
    """``cfg.seeds``, capped to the profile's number of seeds."""
    seeds = tuple(cfg.seeds)
    if not seeds:
        raise SpecError("the analysis needs at least one seed")
    return seeds[:max_seeds] if max_seeds else seeds


def setup(cfg: AnalysisConfig, profiles: dict) -> tuple[Any, tuple[int, ...], list[str]]:
    """The shared start of a score-based analysis: at most 2 torch threads, then (profile, seeds, scorer names)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    prof = profiles.get(cfg.profile, profiles["default"])
    return prof, analysis_seeds(cfg, prof.max_seeds), list(scorer_names(cfg))


def build_scorer(name: str, gt: str = "spans", state: dict | None = None):
    """A scorer by name; ``oracle``/``anti`` follow the ground truth ``gt``; a learned ``state`` is loaded."""
    from tueval.scoring import make_scorer

    if name == "oracle":
        return make_scorer("oracle", {"gt": gt})
    if name == "anti":
        return make_scorer("anti", {"base": "oracle", "base_params": {"gt": gt}})
    sc = make_scorer(name)
    if state is not None:
        sc.load_state_dict(state)
    return sc


def is_stateful(name: str) -> bool:
    """Whether the scorer learns during unlearning (its scores come from a run's saved state)."""
    from tueval.scoring import make_scorer

    return name not in CONTROL_SCORERS and bool(getattr(make_scorer(name), "stateful", False))


def learned_states(cfg: AnalysisConfig, names: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[int, dict]]:
    """Learned state of each stateful scorer per seed: one GA unlearning run with that scorer (mode none, the
    defaults.FIXED settings), run through the engine (cached in the workdir), its saved scorer state loaded."""
    from tueval.defaults import FIXED
    from tueval.store import load_scorer_state
    from tueval.sweep import require_runs
    from tueval.spec import RunSpec

    out: dict[str, dict[int, dict]] = {}
    stateful = [n for n in names if is_stateful(n)]
    if not stateful:
        return out
    specs = [RunSpec(objective="ga", scorer=n, mode="none", seed=s, **FIXED) for n in stateful for s in seeds]
    results = require_runs(specs, cfg.workdir, cfg.compute, cfg.workers, cfg.progress)
    for spec, res in zip(specs, results):
        out.setdefault(spec.scorer, {})[spec.seed] = load_scorer_state(res.path)
    return out


@dataclass
class ScoreSet:
    """Token scores [N, T] per (scorer, seed) on the forget examples; a deterministic scorer (same scores for
    every seed) is stored once under seed ``None``."""

    scores: dict[tuple[str, int | None], torch.Tensor] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    def deterministic(self, name: str) -> bool:
        return (name, None) in self.scores

    def get(self, name: str, seed: int) -> torch.Tensor:
        """Scores of ``name`` under ``seed``."""
        return self.scores[(name, None)] if (name, None) in self.scores else self.scores[(name, seed)]

    def names(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.scores))

    def seed_keys(self, name: str) -> list[int | None]:
        """``[None]`` for a deterministic scorer, else its seeds."""
        return [None] if self.deterministic(name) else list(self.seeds)


def _score(scorer, model, batch: Batch, ctx, seed: int, chunk: int) -> torch.Tensor:
    from tueval.unlearn import static_scores

    torch.manual_seed(seed)
    ctx.generator = torch.Generator().manual_seed(seed)
    s = static_scores(scorer, model, batch, ctx, chunk)
    bad = ~torch.isfinite(s[batch.answer_mask])
    if bad.any():
        raise SpecError(f"scorer '{scorer.name}' returned non-finite scores on {int(bad.sum())} answer tokens")
    return s


_DETERMINISTIC: dict[tuple[str, str], bool] = {}  # (scorer, gt) -> whether two generator seeds agree


def compute_scores(data: ForgetData, names: Sequence[str], seeds: Sequence[int], model=None, gt: str = "spans",
                   states: dict[str, dict[int, dict]] | None = None, ref_model=None, chunk: int = 64) -> ScoreSet:
    """Scores of every scorer on the forget batch with ``model`` (default the target). A scorer is deterministic
    when it is not stateful and two generator seeds give the same scores on the first examples; then it is scored
    once. ``ref_model`` (default ``model``) is the context's reference model; the retain model is always the
    workdir's retain model."""
    from tueval.scoring import ScoringContext

    model = data.target if model is None else model
    ctx = ScoringContext(ref_model=ref_model if ref_model is not None else model, retain_model=data.retain,
                         tokenizer=data.tokenizer)
    out = ScoreSet(seeds=tuple(seeds))
    states = states or {}
    probe = data.batch.select(range(min(8, len(data.batch))))
    for name in names:
        if name in states:
            for s in seeds:
                out.scores[(name, s)] = _score(build_scorer(name, gt, states[name][s]), model, data.batch, ctx, s,
                                               chunk)
            continue
        sc = build_scorer(name, gt)
        if getattr(sc, "stateful", False):
            raise SpecError(f"scorer '{name}' is stateful but no learned state was loaded")
        key = (name, gt)
        if key not in _DETERMINISTIC:
            a, b = (_score(sc, model, probe, ctx, s, chunk) for s in (seeds[0], seeds[0] + 7919))
            _DETERMINISTIC[key] = torch.equal(a[probe.answer_mask], b[probe.answer_mask])
        if _DETERMINISTIC[key]:
            out.scores[(name, None)] = _score(sc, model, data.batch, ctx, seeds[0], chunk)
        else:
            for s in seeds:
                out.scores[(name, s)] = _score(sc, model, data.batch, ctx, s, chunk)
    return out


# ================================================================================================================
# shared statistics: example-unit comparisons with a crossed bootstrap
# ================================================================================================================
def value_matrix(df: pd.DataFrame, value: str) -> tuple[np.ndarray, list, list]:
    """Pivot per-(seed, example) rows into [seeds, examples] (seed -1 = deterministic, one row); the examples with
    a missing value under any seed are dropped."""
    piv = df.pivot_table(index="seed", columns="example_id", values=value, aggfunc="first", dropna=False)
    piv = piv.dropna(axis=1, how="any")
    return piv.to_numpy(float), list(piv.index), list(piv.columns)


def crossed_bootstrap(D: np.ndarray, n_resamples: int = 2000, seed: int = 0, ci: float = 0.95
                      ) -> tuple[float, float, float]:
    """Mean of D [seeds, examples] with a two-way (pigeonhole) bootstrap CI: seeds and examples are resampled
    independently, because the same examples appear under every seed (a nested bootstrap would understate the CI).
    With one seed row it is the ordinary bootstrap over examples."""
    D = np.asarray(D, float)
    S, m = D.shape
    if m == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    est = float(D.mean())
    if m == 1 and S == 1:
        return est, est, est
    stats = np.empty(n_resamples)
    step = max(1, 2_000_000 // max(S * m, 1))
    for i in range(0, n_resamples, step):
        b = min(step, n_resamples - i)
        si = rng.integers(0, S, size=(b, S))
        ei = rng.integers(0, m, size=(b, m))
        stats[i:i + b] = D[si[:, :, None], ei[:, None, :]].mean(axis=(1, 2))
    lo, hi = np.quantile(stats, [(1 - ci) / 2, (1 + ci) / 2])
    return est, float(lo), float(hi)


def paired_matrix(method: pd.DataFrame, control: pd.DataFrame | None, value: str) -> tuple[np.ndarray, int]:
    """Differences method - control as [seeds, examples] (a deterministic arm is broadcast over the other arm's
    seeds; ``control=None`` compares with 0) and the number of distinct seeds."""
    M, ms, me = value_matrix(method, value)
    if control is None:
        return M, len(ms)
    C, cs, ce = value_matrix(control, value)
    common = [e for e in me if e in set(ce)]
    M = M[:, [me.index(e) for e in common]]
    C = C[:, [ce.index(e) for e in common]]
    if M.shape[0] == 1 or C.shape[0] == 1:
        return M - C, max(M.shape[0], C.shape[0])
    if ms != cs:
        raise SpecError(f"arms have different seeds: {ms} vs {cs}")
    return M - C, len(ms)


def unit_comparison(method: pd.DataFrame, control: pd.DataFrame | None, value: str, *, metric: str,
                    method_name: str, control_name: str, higher_is_better: bool = True, n_resamples: int = 2000,
                    seed: int = 0, alpha: float = 0.05) -> dict:
    """One family member for ``verdict_table`` from per-(seed, example) rows (columns seed, example_id, value):
    estimate = mean difference, CI = crossed bootstrap over seeds and examples, p = one-sided sign-flip test over
    examples of the seed-averaged differences (the example is the unit)."""
    D, n_seeds = paired_matrix(method, control, value)
    if D.shape[1] < 2:
        raise SpecError(f"{metric}: {method_name} vs {control_name} has fewer than 2 examples with values")
    est, lo, hi = crossed_bootstrap(D, n_resamples, seed, 1 - alpha)
    d = D.mean(axis=0)
    alt = "greater" if higher_is_better else "less"
    p = float(sign_flip_pvalue(d, alt, n_resamples=max(n_resamples, 2000), seed=seed))
    return {"metric": metric, "method": method_name, "control": control_name, "n_seeds": n_seeds,
            "n_examples": int(D.shape[1]),
            "result": {"estimate": est, "ci_low": lo, "ci_high": hi, "p_value": p, "alternative": alt,
                       "diffs": tuple(float(x) for x in d), "n": int(D.shape[1]),
                       "effect_size": float(effect_size_dz(d)),
                       "test_name": "sign-flip over examples (seed-averaged differences); CI: crossed bootstrap"}}


def verdicts_frame(items: list[dict], alpha: float, family: str, higher_is_better=True,
                   equivalence_margin=None) -> pd.DataFrame:
    """Holm-adjusted verdicts of one family as a frame with the real seed and example counts."""
    if not items:
        return pd.DataFrame()
    vs = verdict_table(items, alpha=alpha, correction="holm", higher_is_better=higher_is_better,
                       equivalence_margin=equivalence_margin, n_resamples=2000)
    df = verdicts_to_frame(vs)
    df["n_seeds"] = [it.get("n_seeds", it["result"].get("n")) for it in items]
    df["n_examples"] = [it.get("n_examples", float("nan")) for it in items]
    df.insert(0, "family", family)
    return df


VERDICT_COLUMNS = ("family", "metric", "method", "control", "estimate", "ci_low", "ci_high", "effect_size",
                   "p_value", "p_adjusted", "family_size", "n_seeds", "n_examples", "decision")


def verdict_md(df: pd.DataFrame) -> str:
    """The verdict columns of ``df`` as a markdown table."""
    if df.empty:
        return "_(no verdicts)_\n"
    return markdown_table(df[[c for c in VERDICT_COLUMNS if c in df.columns]])


def regen_command(name: str, cfg: AnalysisConfig) -> str:
    """The CLI command that regenerates this report."""
    cmd = f"tueval analyze {name} --workdir {cfg.workdir.root} --reports {cfg.reports} --profile {cfg.profile}"
    if tuple(cfg.seeds) == tuple(range(len(cfg.seeds))):
        cmd += f" --seeds {len(cfg.seeds)}"
    else:
        cmd += f"  (seeds {list(cfg.seeds)})"
    if cfg.scorers:
        cmd += f" --scorers {','.join(cfg.scorers)}"
    return cmd


def plot_setup():
    """matplotlib on Agg with the suite's style; returns (plt, palette function)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        from tueval.plots import palette as _palette, style

        style()
    except ImportError:  # the shared plot helpers are optional
        def _palette(names):
            cyc = plt.rcParams["axes.prop_cycle"].by_key()["color"]
            return {n: cyc[i % len(cyc)] for i, n in enumerate(dict.fromkeys(names))}

    def palette(names):
        """Controls first, so their fixed colours are never handed to a method as well."""
        names = list(dict.fromkeys(names))
        first = [n for n in names if n in CONTROL_SCORERS or n in ("uniform", "random_k", "permuted",
                                                                     "magnitude_matched")]
        return _palette(first + [n for n in names if n not in first])
    return plt, palette


def settings_md(settings: dict) -> str:
    """A settings dict as a markdown bullet list."""
    return "\n".join(f"- **{k}**: {v}" for k, v in settings.items()) + "\n"


# ================================================================================================================
# the alignment analysis
# ================================================================================================================
@dataclass(frozen=True)
class AlignmentProfile:
    """Size of one alignment run: examples (None = all), seeds cap, bootstrap resamples, permutations."""

    max_examples: int | None
    max_seeds: int | None
    n_boot: int
    n_perm: int


PROFILES = {"quick": AlignmentProfile(None, 2, 1000, 100), "default": AlignmentProfile(None, None, 2000, 200),
            "full": AlignmentProfile(None, None, 9999, 1000)}


def alignment_rows(scores: ScoreSet, data: ForgetData, gt: str) -> pd.DataFrame:
    """Per (scorer, seed, example[, label]) alignment metrics against ground truth ``gt`` (seed -1: deterministic)."""
    from tueval.metrics import alignment_table

    mask, ans = data.gt(gt), data.batch.answer_mask
    frames = []
    for name in scores.names():
        for sk in scores.seed_keys(name):
            t = alignment_table(scores.get(name, sk), mask, ans, data.ids, labels=data.labels)
            t.insert(0, "seed", -1 if sk is None else sk)
            t.insert(0, "scorer", name)
            t.insert(0, "ground_truth", gt)
            frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _summaries(rows: pd.DataFrame, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (gt, scorer, metric): mean with crossed-bootstrap CI; and per (gt, scorer, seed) the seed means."""
    allr = rows[rows.label == "all"]
    summ, per_seed = [], []
    for (gt, name), g in allr.groupby(["ground_truth", "scorer"], sort=False):
        for metric in SUMMARY_METRICS:
            D, seeds, ex = value_matrix(g, metric)
            est, lo, hi = crossed_bootstrap(D, n_boot)
            summ.append({"ground_truth": gt, "scorer": name, "metric": metric, "mean": est, "ci_low": lo, "ci_high": hi,
                         "n_seeds": len(seeds), "n_examples": len(ex),
                         "deterministic": seeds == [-1]})
        ps = g.groupby("seed")[list(SUMMARY_METRICS)].mean().reset_index()
        ps.insert(0, "scorer", name)
        ps.insert(0, "ground_truth", gt)
        per_seed.append(ps)
    return pd.DataFrame(summ), pd.concat(per_seed, ignore_index=True)


def _per_label(rows: pd.DataFrame) -> pd.DataFrame:
    lab = rows[rows.label != "all"]
    return (lab.groupby(["ground_truth", "scorer", "label"], sort=False)
            .agg(ap_lift=("ap_lift", "mean"), ap=("ap", "mean"), recall_at_k=("recall_at_k", "mean"),
                 n_rows=("ap_lift", "count")).reset_index())


def _permutation_null(scores: ScoreSet, data: ForgetData, seeds: Sequence[int], n_perm: int) -> pd.DataFrame:
    """GT-permutation null of the mean AP lift per (gt, scorer) on the first seed's scores."""
    from tueval.metrics import alignment_metrics, gt_permutation_null

    rows = []
    gen = torch.Generator().manual_seed(seeds[0])
    for gt in GT_SOURCES:
        mask, ans = data.gt(gt), data.batch.answer_mask
        for name in scores[gt].names():
            s = scores[gt].get(name, seeds[0])
            obs = float(np.nanmean(alignment_metrics(s, mask, ans)["ap_lift"].numpy()))
            null = gt_permutation_null(s, mask, ans, n_perm=n_perm, generator=gen).numpy()
            rows.append({"ground_truth": gt, "scorer": name, "observed_ap_lift": obs, "null_mean": float(null.mean()),
                         "null_sd": float(null.std(ddof=1)), "null_q025": float(np.quantile(null, 0.025)),
                         "null_q975": float(np.quantile(null, 0.975)),
                         "lift_over_null": obs - float(null.mean()),
                         "p_perm": float((1 + np.sum(null >= obs)) / (1 + null.size)), "n_perm": n_perm})
    return pd.DataFrame(rows)


def _figures(rep: ReportWriter, summ: pd.DataFrame, per_seed: pd.DataFrame, labels: pd.DataFrame, names) -> None:
    plt, palette = plot_setup()
    col = palette(names)
    # AP-lift bars with CIs, both ground truths
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, gt in zip(axes, GT_SOURCES):
        s = summ[(summ.ground_truth == gt) & (summ.metric == "ap_lift")].set_index("scorer").reindex(names)
        x = np.arange(len(names))
        ax.bar(x, s["mean"], color=[col[n] for n in names], alpha=0.8)
        err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]).clip(min=0)
        ax.errorbar(x, s["mean"], yerr=err, fmt="none", ecolor="0.2", capsize=3, lw=1)
        ps = per_seed[per_seed.ground_truth == gt]
        rng = np.random.default_rng(0)
        for i, n in enumerate(names):
            v = ps.loc[ps.scorer == n, "ap_lift"].to_numpy(float)
            ax.scatter(i + rng.uniform(-0.15, 0.15, v.size), v, s=10, color="0.15", alpha=0.5, zorder=3,
                       linewidths=0, label="per seed" if i == 0 else None)
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(f"ground truth: {gt}")
        ax.set_xlabel("scorer")
    axes[0].set_ylabel("AP lift = AP - E[AP | random ranking]\n(mean over examples, 95% CI)")
    axes[0].legend(loc="upper left", fontsize=7)
    rep.figure("ap_lift", fig, "AP lift per scorer with 95% crossed-bootstrap CIs; dots = per-seed means "
               "(deterministic scorers have one); dashed = chance (0).")
    # per-label heatmap
    labs = sorted(labels.label.unique())
    fig, axes = plt.subplots(2, 1, figsize=(2.5 + 0.8 * max(len(labs), 2), 2 * (0.4 * len(names) + 1.3)))
    vmax = float(np.nanmax(np.abs(labels.ap_lift))) if len(labels) else 1.0
    for ax, gt in zip(axes, GT_SOURCES):
        M = labels[labels.ground_truth == gt].pivot_table(index="scorer", columns="label", values="ap_lift").reindex(
            index=names, columns=labs)
        im = ax.imshow(M.to_numpy(float), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(M.to_numpy(float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(labs)), labs, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("fact label")
        ax.set_title(f"mean AP lift per fact label ({gt})")
        ax.grid(False)
    fig.colorbar(im, ax=list(axes), label="AP lift (label tokens vs non-GT tokens)")
    rep.figure("per_label_heatmap", fig, "Mean AP lift of each fact label's tokens against the non-GT answer tokens, "
               "per scorer and ground truth.")


@register_analysis("alignment")
def run(cfg: AnalysisConfig) -> dict:
    """Alignment of every scorer with both ground truths, the permutation null and the verdicts vs random."""
    t0 = time.perf_counter()
    prof, seeds, names = setup(cfg, PROFILES)
    data = load_forget(cfg.workdir, prof.max_examples)
    states = learned_states(cfg, names, seeds)
    base = compute_scores(data, [n for n in names if n not in ("oracle", "anti")], seeds, states=states)
    scores = {}
    for gt in GT_SOURCES:
        ctl = compute_scores(data, [n for n in names if n in ("oracle", "anti")], seeds, gt=gt)
        scores[gt] = ScoreSet({**base.scores, **ctl.scores}, base.seeds)
    rows = pd.concat([alignment_rows(scores[gt], data, gt) for gt in GT_SOURCES], ignore_index=True)
    summ, per_seed = _summaries(rows, prof.n_boot)
    labels = _per_label(rows)
    null = _permutation_null(scores, data, seeds, prof.n_perm)

    # verdicts: each scorer vs random on AP lift, paired per (seed, example); one Holm family over both GTs
    items = []
    allr = rows[rows.label == "all"]
    for gt in GT_SOURCES:
        g = allr[allr.ground_truth == gt]
        ctrl = g[g.scorer == "random"]
        for name in names:
            if name == "random":
                continue
            items.append(unit_comparison(g[g.scorer == name], ctrl, "ap_lift", metric=f"ap_lift[{gt}]",
                                         method_name=name, control_name="random", n_resamples=prof.n_boot,
                                         alpha=cfg.alpha))
    verdicts = verdicts_frame(items, cfg.alpha, "alignment vs random")

    rep = ReportWriter(cfg.reports / "alignment", "Alignment of token scores with ground-truth tokens")
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
        "workdir": cfg.workdir.root, "profile": cfg.profile, "seeds": list(seeds),
        "examples": f"{len(data.examples)} of {data.n_total} forget examples ({cfg.workdir.forget_split})",
        "scorers": ", ".join(names), "controls": "random (chance), oracle (upper bound), anti (lower bound)",
        "learned scorers": ", ".join(f"{k}: one GA run per seed (defaults.FIXED), scorer_state.safetensors"
                                     for k in states) or "none",
        "unit": "deterministic scorers give the same scores for every seed; their per-example rows are the unit "
                "(seed -1 in the CSVs). Seeds drive the random scorer and the learned (ATWU) runs.",
        "CI": f"crossed bootstrap over seeds and examples ({prof.n_boot} resamples): examples are shared by all "
              "seeds, so seeds and examples are resampled independently (the ordinary bootstrap over examples "
              "when there is one seed row)",
        "test": "one-sided sign-flip test over examples of the seed-averaged AP-lift difference (scorer - "
                "random); Holm over every scorer x ground truth; decision 'better' needs adjusted p < alpha and "
                "a CI above 0",
        "alpha": cfg.alpha, "permutations": prof.n_perm}))
    rep.text("## Verdicts: does each scorer beat random on AP lift?\n" + verdict_md(verdicts))
    show = summ[summ.metric.isin(["ap", "ap_lift", "ap_lift_prevalence", "roc_auc", "f1_at_k", "iou_f1",
                                  "pointing_game"])]
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
    _figures(rep, summ, per_seed, labels, names)
    rep.table("verdicts", verdicts)
    rep.table("summary", summ)
    rep.table("per_seed", per_seed)
    rep.table("per_label", labels)
    rep.table("permutation_null", null)
    rep.table("per_example", rows[rows.label == "all"].drop(columns=["label"]))
    elapsed = time.perf_counter() - t0
    rep.text(f"## Run\nWall time {elapsed:.1f} s.")
    path = rep.write(regen_command("alignment", cfg))
    return {"report": str(path), "verdicts": verdicts.to_dict("records"), "summary": summ.to_dict("records"),
            "permutation_null": null.to_dict("records"), "wall_s": elapsed}
