"""Intervention tables of a score set: deletion/insertion curves of the knowledge margin per (scorer, seed,
example), their summaries, the rank agreement across operators, and the scorer-vs-random comparisons on ABPC."""
from __future__ import annotations

import hashlib
from typing import Sequence

import pandas as pd
import scipy.stats
import torch

from ..data.collate import Batch
from ..metrics.catalogue import higher_is_better
from ..stats.crossed import crossed_summary, per_seed_means, vs_control
from ..stats.paired import t_interval
from .forget import ForgetData
from .profiles import InterventionProfile
from .scores import ScoreSet

SUMMARY_METRICS = ("abpc", "abpc_insertion", "comprehensiveness", "comprehensiveness_random", "sufficiency",
                   "sufficiency_random", "aopc_comp", "aopc_comp_random", "aopc_suff", "aopc_suff_random",
                   "deletion_auc_morf", "deletion_auc_lerf", "deletion_auc_random")
AGREEMENT_METRICS = ("abpc", "aopc_comp", "comprehensiveness", "abpc_insertion")
CURVE_KEYS = ["scorer", "operator", "curve", "order", "q"]


def perturbation_spec(prof: InterventionProfile, seed: int | None = None):
    """The PerturbationSpec of a profile (``seed`` drives the random-order draws)."""
    from ..metrics import PerturbationSpec

    kw = {} if seed is None else {"seed": seed}
    return PerturbationSpec(grid=prof.grid, aopc_bins=prof.aopc_bins, n_random=prof.n_random, **kw)


def length_buckets(batch: Batch, size: int) -> list[list[int]]:
    """Example indices grouped by sequence length (``size`` per group), so each group is trimmed to little padding."""
    order = torch.argsort(batch.attention_mask.sum(1), stable=True).tolist()
    return [order[i:i + size] for i in range(0, len(order), size)]


def curves_for(model, data: ForgetData, scores: torch.Tensor, spec, buckets: list[list[int]]):
    """``perturbation_curves`` over length buckets of the forget batch; (curves, summary) for all examples.

    f is the knowledge margin (target minus retain answer log-probability on the same perturbed input), so
    removing context that any language model needs (template words) cancels out and the curves measure the
    tokens that carry the memorised facts; ``spec.f_definition`` records it."""
    from ..metrics import perturbation_curves

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


def intervention_tables(model, data: ForgetData, scores: ScoreSet, seeds: Sequence[int], prof: InterventionProfile
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-example curves and per-example summaries of every (scorer, seed); scorers with identical scores (e.g.
    etw and etw_static on the reference model) are evaluated once."""
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
                cache[key] = curves_for(model, data, s, perturbation_spec(prof, seed), buckets)
            c, m = (x.copy() for x in cache[key])
            for df in (c, m):
                df.insert(0, "seed", -1 if sk is None else sk)
                df.insert(0, "scorer", name)
            curves.append(c)
            summ.append(m)
    return pd.concat(curves, ignore_index=True), pd.concat(summ, ignore_index=True)


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean f per (scorer, operator, curve, order, q) with a t-CI over examples (per-example f averaged over seeds)."""
    per_ex = curves.groupby([*CURVE_KEYS, "example_id"], sort=False)["f"].mean().reset_index()
    rows = []
    for key, g in per_ex.groupby(CURVE_KEYS, sort=False):
        v = g["f"].dropna().to_numpy(float)
        lo, hi = t_interval(v)
        rows.append(dict(zip(CURVE_KEYS, key), f_mean=float(v.mean()) if v.size else float("nan"), ci_low=lo,
                         ci_high=hi, n_examples=int(v.size)))
    return pd.DataFrame(rows)


def metric_summary(summ: pd.DataFrame, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (scorer, operator, metric) the mean with crossed-bootstrap CI; and the per-seed means."""
    by = ["scorer", "operator"]
    return crossed_summary(summ, by, SUMMARY_METRICS, n_boot), per_seed_means(summ, by, SUMMARY_METRICS)


def rank_agreement(msum: pd.DataFrame, operators: Sequence[str]) -> pd.DataFrame:
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


def abpc_vs_random(summ: pd.DataFrame, names: Sequence[str], operators: Sequence[str], n_boot: int, alpha: float
                   ) -> list[dict]:
    """Each scorer vs random on ABPC, paired per (seed, example), under every operator: one family."""
    return vs_control(summ, "abpc", names, "random", split="operator", levels=operators,
                      higher_is_better=higher_is_better("abpc"), n_resamples=n_boot, alpha=alpha)
