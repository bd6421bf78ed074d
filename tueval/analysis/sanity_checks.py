"""Sanity checks of token scorers: knowledge dependence (scores from the target vs the retain model), cascading
layer randomisation, and heuristic controls (token rarity, position, entropy, surprisal) scored like a scorer."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..stats.crossed import crossed_summary, unit_comparison
from .forget import ForgetData, present_gts
from .scores import ScoreSet, build_scorer

HEURISTICS = ("rarity", "position", "position_early", "entropy", "surprisal")


def knowledge_dependence(st: ScoreSet, sr: ScoreSet, data: ForgetData) -> pd.DataFrame:
    """Per (scorer, seed, GT, example): the score shift target -> retain (``score_shift``) and whether the scorer's
    scores depend on the scored model at all (``model_dependent``)."""
    from ..metrics import score_shift

    ans = data.batch.answer_mask
    frames = []
    for name in st.names():
        for sk in st.seed_keys(name):
            seed = st.seeds[0] if sk is None else sk
            a, b = st.get(name, seed), sr.get(name, seed)
            dep = not torch.equal(a[ans], b[ans])
            for gt in data.gt_sources:
                df = score_shift(a, b, data.gt(gt), ans, data.ids)
                df.insert(0, "model_dependent", dep)
                df.insert(0, "ground_truth", gt)
                df.insert(0, "seed", -1 if sk is None else sk)
                df.insert(0, "scorer", name)
                frames.append(df)
    return pd.concat(frames, ignore_index=True)


def cascade(data: ForgetData, names: Sequence[str], seeds: Sequence[int], states: dict, gt: str = "spans"
            ) -> pd.DataFrame:
    """Cascading randomisation rows per (scorer, seed): Spearman of the scores before vs after re-initialising the
    top blocks (then embeddings and the rest) of the target model; seed = the re-initialisation seed."""
    from ..metrics import cascading_randomisation
    from ..scoring import ScoringContext

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


def heuristic_score_set(data: ForgetData, wd) -> ScoreSet:
    """Heuristic control scores on the forget batch (deterministic): rarity (from the target's training answers),
    position (late high), position_early (early high), entropy and surprisal of the target model."""
    from ..data.collate import collate
    from ..metrics import heuristic_scores, token_counts_from_ids

    train = collate(wd.benchmark.train_examples("target", wd.forget_split), data.tokenizer)
    counts = token_counts_from_ids(train.input_ids, len(data.tokenizer), train.answer_mask)
    h = heuristic_scores(data.batch, data.target, counts)
    ans = data.batch.answer_mask
    h["position_early"] = torch.where(ans, -h["position"], torch.zeros_like(h["position"]))
    return ScoreSet({(k, None): h[k].float() for k in HEURISTICS if k in h})


def _ranks_within(x: torch.Tensor, ans: torch.Tensor) -> np.ndarray:
    """Within-example rank of each answer token scaled to [0, 1], pooled over answer tokens."""
    from ..metrics import masked_ranks

    r = masked_ranks(x.double(), ans)
    n = ans.sum(1, keepdim=True).double()
    return ((r - 1) / (n - 1).clamp_min(1))[ans].numpy()


def heuristic_r2(st: ScoreSet, hs: ScoreSet, data: ForgetData, seeds: Sequence[int]) -> pd.DataFrame:
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


def knowledge_dependence_family(kd: pd.DataFrame, names: Sequence[str], n_boot: int, alpha: float
                                ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Summary (AP lift of |score shift| per gt and scorer), per-seed means, and the comparisons of every
    model-dependent scorer's AP lift of |shift| with chance (0)."""
    summ = crossed_summary(kd, ["ground_truth", "scorer"], "ap_lift", n_boot)
    dep = kd.groupby("scorer")["model_dependent"].any()
    summ["model_dependent"] = summ.scorer.map(dep)
    per_seed = kd.groupby(["ground_truth", "scorer", "seed"])[["ap_lift", "mean_abs_delta_gt", "mean_abs_delta_rest",
                                                              "spearman_target_retain"]].mean().reset_index()
    items = [unit_comparison(kd[(kd.scorer == n) & (kd.ground_truth == gt)], None, "ap_lift",
                             metric=f"ap_lift|shift|[{gt}]", method_name=n, control_name="chance (0)",
                             n_resamples=n_boot, alpha=alpha)
             for gt in present_gts(kd) for n in names if bool(dep.get(n, False))]
    return summ, per_seed, items


def randomisation_family(cas: pd.DataFrame, names: Sequence[str], n_boot: int, alpha: float
                         ) -> tuple[pd.DataFrame, list[dict]]:
    """Summary of the Spearman decay per (scorer, depth), and the comparisons of 1 - rho at full randomisation
    with no change (0)."""
    summ = crossed_summary(cas, ["scorer", "depth", "randomised"], "spearman", n_boot)
    last = cas[cas.depth == cas.depth.max()].assign(change=lambda d: 1 - d.spearman)
    items = [unit_comparison(last[last.scorer == n], None, "change", metric="1 - rho (fully randomised)",
                             method_name=n, control_name="no change (0)", n_resamples=n_boot, alpha=alpha)
             for n in names if last.loc[last.scorer == n, "change"].notna().sum() >= 2]
    return summ, items


def heuristic_family(al: pd.DataFrame, methods: Sequence[str], heuristics: Sequence[str], n_boot: int,
                     alpha: float) -> tuple[pd.DataFrame, list[dict]]:
    """Summary of AP lift of scorers and heuristics per gt, and the comparisons of each method with the best
    heuristic of that ground truth (chosen after the fact, which favours the heuristic)."""
    summ = crossed_summary(al, ["ground_truth", "scorer"], "ap_lift", n_boot)
    summ["kind"] = np.where(summ.scorer.isin(list(heuristics)), "heuristic", "scorer")
    items = []
    for gt in present_gts(al):
        hsum = summ[(summ.ground_truth == gt) & (summ.kind == "heuristic")]
        best = hsum.sort_values("mean", ascending=False).scorer.iloc[0]
        g = al[al.ground_truth == gt]
        items += [unit_comparison(g[g.scorer == n], g[g.scorer == best], "ap_lift", metric=f"ap_lift[{gt}]",
                                  method_name=n, control_name=f"heuristic {best}", n_resamples=n_boot, alpha=alpha)
                  for n in methods]
    return summ, items
