"""Example-unit statistics for per-(seed, example) tables of static scores: a crossed (seeds x examples)
bootstrap, paired differences as [seeds, examples] matrices, sign-flip tests over examples and their families.

Every seed sees the same examples, so seeds and examples are resampled independently (a nested bootstrap that
resamples examples within each seed would understate the CI). A deterministic arm (the same values under every
seed) is stored once under seed -1 and broadcast over the other arm's seeds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from tueval.errors import SpecError
from tueval.stats.paired import effect_size_dz, sign_flip_pvalue
from tueval.stats.verdict import verdict_table, verdicts_to_frame

_CHUNK_ELEMENTS = 2_000_000


def value_matrix(df: pd.DataFrame, value: str) -> tuple[np.ndarray, list, list]:
    """Pivot per-(seed, example) rows into [seeds, examples] (seed -1 = deterministic, one row); the examples with
    a missing value under any seed are dropped."""
    piv = df.pivot_table(index="seed", columns="example_id", values=value, aggfunc="first", dropna=False)
    piv = piv.dropna(axis=1, how="any")
    return piv.to_numpy(float), list(piv.index), list(piv.columns)


def crossed_bootstrap(D: np.ndarray, n_resamples: int = 2000, seed: int = 0, ci: float = 0.95
                      ) -> tuple[float, float, float]:
    """Mean of D [seeds, examples] with a two-way (pigeonhole) bootstrap CI: seeds and examples are resampled
    independently. With one seed row it is the ordinary bootstrap over examples."""
    D = np.asarray(D, float)
    S, m = D.shape
    if m == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    est = float(D.mean())
    if m == 1 and S == 1:
        return est, est, est
    stats = np.empty(n_resamples)
    step = max(1, _CHUNK_ELEMENTS // max(S * m, 1))
    for i in range(0, n_resamples, step):  # chunks of resamples, never a loop over examples
        b = min(step, n_resamples - i)
        si = rng.integers(0, S, size=(b, S))
        ei = rng.integers(0, m, size=(b, m))
        stats[i:i + b] = D[si[:, :, None], ei[:, None, :]].mean(axis=(1, 2))
    lo, hi = np.quantile(stats, [(1 - ci) / 2, (1 + ci) / 2])
    return est, float(lo), float(hi)


def crossed_summary(df: pd.DataFrame, by: Sequence[str], values: str | Sequence[str], n_resamples: int = 2000
                    ) -> pd.DataFrame:
    """Mean with crossed-bootstrap CI, seeds and examples of each ``values`` column per group of ``by``; one row
    per (group, value) with a ``metric`` column, or one row per group when ``values`` is one name."""
    names = [values] if isinstance(values, str) else list(values)
    rows = []
    for key, g in df.groupby(list(by), sort=False):
        head = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for v in names:
            D, seeds, ex = value_matrix(g, v)
            est, lo, hi = crossed_bootstrap(D, n_resamples)
            rows.append({**head, **({} if isinstance(values, str) else {"metric": v}), "mean": est, "ci_low": lo,
                         "ci_high": hi, "n_seeds": len(seeds), "n_examples": len(ex)})
    return pd.DataFrame(rows)


def per_seed_means(df: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean of each ``values`` column per group of ``by`` and seed (the dots of the figures)."""
    frames = []
    for key, g in df.groupby(list(by), sort=False):
        ps = g.groupby("seed")[list(values)].mean().reset_index()
        for c, v in reversed(list(zip(by, key if isinstance(key, tuple) else (key,)))):
            ps.insert(0, c, v)
        frames.append(ps)
    return pd.concat(frames, ignore_index=True)


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
                    method_name: str, control_name: str, higher_is_better: bool = True,
                    n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
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
            "n_examples": int(D.shape[1]), "higher_is_better": bool(higher_is_better),
            "result": {"estimate": est, "ci_low": lo, "ci_high": hi, "p_value": p, "alternative": alt,
                       "diffs": tuple(float(x) for x in d), "n": int(D.shape[1]),
                       "effect_size": float(effect_size_dz(d)),
                       "test_name": "sign-flip over examples (seed-averaged differences); CI: crossed bootstrap"}}


def vs_control(rows: pd.DataFrame, value: str, names: Sequence[str], control: str, *, split: str,
               levels: Sequence[str], higher_is_better: bool = True, n_resamples: int = 2000,
               alpha: float = 0.05) -> list[dict]:
    """``unit_comparison`` of every scorer in ``names`` against scorer ``control`` on ``value``, separately for
    each of the ``levels`` of the column ``split`` (metric ``value[level]``): the items of one family."""
    items = []
    for level in levels:
        g = rows[rows[split] == level]
        ctrl = g[g.scorer == control]
        items += [unit_comparison(g[g.scorer == n], ctrl, value, metric=f"{value}[{level}]", method_name=n,
                                  control_name=control, higher_is_better=higher_is_better,
                                  n_resamples=n_resamples, alpha=alpha)
                  for n in names if n != control]
    return items


def verdicts_frame(items: list[dict], alpha: float, family: str, equivalence_margin=None) -> pd.DataFrame:
    """Holm-adjusted verdicts of one family (each item carries its direction) as a frame with the real seed and
    example counts."""
    if not items:
        return pd.DataFrame()
    vs = verdict_table(items, alpha=alpha, correction="holm", equivalence_margin=equivalence_margin,
                       n_resamples=2000)
    df = verdicts_to_frame(vs)
    df["n_seeds"] = [it.get("n_seeds", it["result"].get("n")) for it in items]
    df["n_examples"] = [it.get("n_examples", float("nan")) for it in items]
    df.insert(0, "family", family)
    return df
