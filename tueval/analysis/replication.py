"""Replication of the controls analysis' confirmatory verdicts over independently trained model pairs: per pair,
the controls grid's confirmatory comparison (utility at matched forgetting when the runs write trajectories, else
the primary metrics at one learning rate) with the controls analysis' own functions and Holm families; pooled over
pairs, one stratified test per comparison (seeds nested in pairs, every pair weighing the same:
``tueval.stats.stratified``) in the same families; and per comparison how many pairs agree.

A per-pair frame has the columns of the controls analysis' verdict table plus ``pair`` and ``train_seed``; the
pooled frame the same verdict columns plus ``n_pairs``, ``pairs_better`` (pairs whose Holm label is better),
``pairs_same_label`` (pairs whose label is the pooled one) and ``holds_on_every_pair`` (pooled better and better
on every pair)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SpecError
from .controls_grid import PRIMARY, grid_runs, matched_result
from .families import (DIFF_COLUMNS, degenerate_controls, family_verdicts, identical_arms, paired_diffs,
                       paired_verdicts, without_controls)
from .registry import AnalysisConfig

GROUP = ("objective", "method")
KEYS = (*GROUP, "control", "metric")
DEFAULT_PAIRS = 2
POOLED_COLUMNS = ("n_pairs", "pairs_better", "pairs_same_label", "holds_on_every_pair")


@dataclass(frozen=True)
class PairResult:
    """One model pair's confirmatory comparison: its per-seed differences, its verdict frame (the controls
    analysis'), the controls left out as degenerate, and whether the comparison is at matched forgetting."""

    pair: int
    train_seed: int | None
    workdir: str
    diffs: pd.DataFrame
    verdicts: pd.DataFrame
    dropped: pd.DataFrame
    matched: bool
    n_runs: int


def pair_comparison(runs: pd.DataFrame, cfg: AnalysisConfig, st: dict, pair: int = 0,
                    train_seed: int | None = None) -> PairResult:
    """The confirmatory comparison of one pair's grid runs, as the controls analysis computes it: degenerate
    controls left out, then matched-forgetting verdicts (``matched_verdicts``) or, without trajectories, the
    primary metrics' seed-paired verdicts, in the family ``st['family']``."""
    from .matched_tables import matched_verdicts

    drop = degenerate_controls(identical_arms(runs))
    matched = matched_result(runs, cfg, st["fixed"], st["family"], st["refine"], st.get("bracket_rounds"))
    if matched is not None:
        diffs = without_controls(matched.diffs, drop)
        _, v = matched_verdicts(diffs, cfg.alpha, st["family"])
    else:
        diffs = without_controls(paired_diffs(runs, PRIMARY), drop)
        _, v = paired_verdicts(runs, PRIMARY, alpha=cfg.alpha, family=st["family"], drop=drop)
    return PairResult(pair, train_seed, str(cfg.workdir.root), diffs, v, drop, matched is not None,
                      int(runs["run_id"].nunique()))


def run_pairs(cfg: AnalysisConfig, st: dict, pairs: Sequence) -> list[PairResult]:
    """``pair_comparison`` of the grid ``st`` on every pair's workdir (runs computed or read from that workdir's
    run cache)."""
    from ..pairs import train_seed

    out = []
    for k, wd in enumerate(pairs):
        ck = replace(cfg, workdir=wd)
        if cfg.progress:
            print(f"[tueval replication] pair {k}: {wd.root}", flush=True)
        out.append(pair_comparison(grid_runs(ck, st), ck, st, k, train_seed(wd)))
    return out


def _directions(matched: bool) -> dict[str, bool] | None:
    from .matched_tables import DIRECTIONS

    return DIRECTIONS if matched else None


def _pooled_compare(g: pd.DataFrame, **kw):
    """The comparison of one (group, control, metric) block pooled over its pairs (stratified test)."""
    from ..stats import Comparison
    from ..stats.stratified import stratified_from_diffs
    from ..stats.verdict import _resolve_direction, better_alternative

    h = _resolve_direction(kw["metric"], kw["higher_is_better"])
    r = stratified_from_diffs(g["diff"].to_numpy(float), g["pair"].to_numpy(), alpha=kw["alpha"],
                              alternative=better_alternative(h), n_failed=kw["n_failed"])
    return Comparison(kw["metric"], kw["method"], kw["control"], r, h)


def stacked_diffs(results: Sequence[PairResult]) -> pd.DataFrame:
    """Every pair's per-seed differences with a ``pair`` column, restricted to the (group, control) comparisons
    that no pair left out as degenerate and that every pair has."""
    frames = [r.diffs.assign(pair=r.pair) for r in results]
    d = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*GROUP, *DIFF_COLUMNS, "pair"])
    drops = [r.dropped for r in results if not r.dropped.empty]
    if drops:
        d = without_controls(d, pd.concat(drops, ignore_index=True))
    n = d.groupby(list(KEYS), sort=False)["pair"].transform("nunique")
    return d[n == len(results)].reset_index(drop=True)


def pooled_verdicts(results: Sequence[PairResult], alpha: float = 0.05, family: str = "method",
                    correction: str = "holm") -> pd.DataFrame:
    """The pooled verdict frame: one stratified comparison per (group, control, metric) over every pair, labelled
    within the same families as each pair's, with ``n_pairs`` and (matched) ``n_not_bracketed`` summed over
    pairs."""
    if not results:
        raise SpecError("a replication needs at least one model pair")
    matched = all(r.matched for r in results)
    d = stacked_diffs(results)
    v = _pooled_frame(d, alpha, family, correction, matched)
    if v.empty:
        return v.assign(n_pairs=pd.Series(dtype=int))
    if matched and "status" in d:
        v = _worse_only_if_favourable(v, d, alpha, family, correction)
    v = v.merge(d.groupby(list(KEYS), sort=False)["pair"].nunique().rename("n_pairs").reset_index(),
                on=list(KEYS), how="left")
    if matched and "status" in d:
        from .matched_tables import bracketing_summary, reading_estimates

        v = v.merge(bracketing_summary(d, GROUP), on=list(KEYS), how="left")
        v = v.merge(reading_estimates(d, GROUP), on=list(KEYS), how="left")
    return v


def _pooled_frame(d: pd.DataFrame, alpha: float, family: str, correction: str, matched: bool) -> pd.DataFrame:
    _, v = family_verdicts(d[[*GROUP, *DIFF_COLUMNS, "pair"]], alpha, family, correction, GROUP,
                           directions=_directions(matched), compare=_pooled_compare)
    return v


def _worse_only_if_favourable(v: pd.DataFrame, d: pd.DataFrame, alpha: float, family: str, correction: str
                              ) -> pd.DataFrame:
    """The matched comparison's rule for 'worse', pooled: it must also hold on the favourable reading (each
    control at the lower end of its segment, every pair's not-bracketed seeds counted for the method:
    ``favourable_fill`` within each pair), else the label reads 'not better'."""
    from .matched_tables import confirm_worse, favourable_fill

    if not (v["decision"] == "worse").any():
        return v
    fav = favourable_fill(d, [*GROUP, "pair"])  # each pair's best matched difference fills its own seeds
    return confirm_worse(v, _pooled_frame(fav, alpha, family, correction, True), KEYS)[0]


def by_pair_frame(results: Sequence[PairResult]) -> pd.DataFrame:
    """Every pair's verdict frame with ``pair`` and ``train_seed``."""
    frames = [r.verdicts.assign(pair=r.pair, train_seed=r.train_seed) for r in results if not r.verdicts.empty]
    if not frames:
        return pd.DataFrame(columns=[*KEYS, "decision", "pair", "train_seed"])
    out = pd.concat(frames, ignore_index=True)
    out["pair"] = out["pair"].astype(int)
    out["train_seed"] = out["train_seed"].astype("Int64")
    return out


def agreement(pooled: pd.DataFrame, by_pair: pd.DataFrame) -> pd.DataFrame:
    """``pooled`` with ``pairs_better``, ``pairs_same_label`` and ``holds_on_every_pair`` from the per-pair
    labels of the same comparison."""
    keys = list(KEYS)
    if pooled.empty:
        return pooled.assign(**{c: pd.Series(dtype=object) for c in POOLED_COLUMNS[1:]})
    bp = by_pair[[*keys, "pair", "decision"]].rename(columns={"decision": "_pair_label"})
    m = pooled[[*keys, "decision"]].merge(bp, on=keys, how="left")
    m["_better"] = m["_pair_label"] == "better"
    m["_same"] = m["_pair_label"] == m["decision"]
    counts = m.groupby(keys, sort=False).agg(pairs_better=("_better", "sum"), pairs_same_label=("_same", "sum"))
    out = pooled.merge(counts.reset_index(), on=keys, how="left")
    out["pairs_better"] = out["pairs_better"].fillna(0).astype(int)
    out["pairs_same_label"] = out["pairs_same_label"].fillna(0).astype(int)
    out["holds_on_every_pair"] = (out["decision"] == "better") & (out["pairs_better"] == out["n_pairs"])
    return out


def replication_tables(results: Sequence[PairResult], alpha: float = 0.05, family: str = "method"
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdicts by pair, pooled verdicts with the agreement columns) of the pairs' results."""
    by_pair = by_pair_frame(results)
    return by_pair, agreement(pooled_verdicts(results, alpha, family), by_pair)


def holds_table(pooled: pd.DataFrame) -> pd.DataFrame:
    """The report's "holds on every pair" table: per comparison the pooled estimate with its CI, adjusted p, the
    pooled label, the pairs that call it better and whether it holds on every pair."""
    from ..report import fmt

    if pooled.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "method": pooled["method"], "control": pooled["control"], "metric": pooled["metric"],
        "pooled estimate [95% CI]": [f"{fmt(e)} [{fmt(lo)}, {fmt(hi)}]" for e, lo, hi in
                                     zip(pooled["estimate"], pooled["ci_low"], pooled["ci_high"])],
        "p_adjusted": pooled["p_adjusted"], "pooled label": pooled["decision"],
        "pairs better": [f"{b}/{n}" for b, n in zip(pooled["pairs_better"], pooled["n_pairs"])],
        "holds on every pair": np.where(pooled["holds_on_every_pair"], "YES", "no")})
