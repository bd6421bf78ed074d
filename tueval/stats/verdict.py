"""Verdicts for a confirmatory family: "does the method beat each control?" under Holm (or BH) correction.

Decision rule (``better``): the one-sided paired test in the better direction has a family-adjusted p < alpha
AND the reported CI of the mean difference excludes 0 on the better side. ``worse`` mirrors it on the other side
(a descriptive label, adjusted separately); ``equivalent`` needs a pre-registered margin and an adjusted TOST
p < alpha; everything else is ``not better``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from tueval.errors import SpecError
from tueval.stats.equivalence import equivalence_from_diffs
from tueval.stats.multiple import adjust
from tueval.stats.paired import PairedResult, paired_difference, sign_flip_pvalue

DECISIONS = ("better", "not better", "worse", "equivalent")


@dataclass(frozen=True)
class Comparison:
    """One member of a family: a PairedResult labelled with its metric, method and control."""

    metric: str
    method: str
    control: str
    result: PairedResult


@dataclass(frozen=True)
class Verdict:
    """The corrected decision for one (metric, method, control) comparison."""

    metric: str
    method: str
    control: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    family_size: int
    alpha: float
    decision: str
    n_seeds: int
    effect_size: float
    test_name: str
    correction: str
    higher_is_better: bool = True

    def to_dict(self) -> dict:
        """Plain-dict view for JSON/CSV."""
        return asdict(self)


def better_alternative(higher_is_better: bool) -> str:
    """The one-sided alternative for 'method beats control' on this metric."""
    return "greater" if higher_is_better else "less"


def compare(method_values, control_values, *, metric: str, method: str, control: str, higher_is_better: bool = True,
            alpha: float = 0.05, n_resamples: int = 9999, seed: int = 0) -> Comparison:
    """Paired comparison of per-seed values, tested one-sided in the better direction, labelled for verdict_table."""
    r = paired_difference(method_values, control_values, alpha=alpha, alternative=better_alternative(higher_is_better),
                          n_resamples=n_resamples, seed=seed)
    return Comparison(metric, method, control, r)


def _unpack(item: Any) -> tuple[str, str, str, Any]:
    """(metric, method, control, result-like) from a Comparison, a dict, or an object carrying both."""
    get = (lambda k, d=None: item.get(k, d)) if isinstance(item, Mapping) else (lambda k, d=None: getattr(item, k, d))
    names = tuple(get(k) for k in ("metric", "method", "control"))
    if any(n is None for n in names):
        raise SpecError(f"each result needs metric, method and control names; got {item!r}")
    res = get("result")
    if res is None:
        res = item
    return (*names, res)


def _field(res: Any, key: str, default: Any = None) -> Any:
    return res.get(key, default) if isinstance(res, Mapping) else getattr(res, key, default)


def _per_metric(value: Any, metric: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(metric, default)
    return default if value is None else value


def _one_sided_p(res: Any, alternative: str, n_resamples: int, seed: int) -> float:
    """The result's p if it was computed for this alternative, else recomputed from its per-seed diffs."""
    if _field(res, "alternative") == alternative:
        return float(_field(res, "p_value"))
    diffs = _field(res, "diffs")
    if diffs is None or len(diffs) == 0:
        return float("nan")
    return float(sign_flip_pvalue(np.asarray(diffs, float), alternative, n_resamples=n_resamples, seed=seed))


def verdict_table(results: Iterable[Any], alpha: float = 0.05, correction: str = "holm",
                  higher_is_better: bool | Mapping[str, bool] = True,
                  equivalence_margin: float | Mapping[str, float] | None = None,
                  n_resamples: int = 9999, seed: int = 0) -> list[Verdict]:
    """Verdicts for one family of comparisons (everything passed is one family; its size is reported).

    ``results`` holds Comparison objects, or dicts/objects with metric, method, control and either a ``result``
    or PairedResult fields. ``higher_is_better`` and ``equivalence_margin`` may be given per metric.
    """
    items = [_unpack(x) for x in results]
    k = len(items)
    if k == 0:
        return []
    hib = [bool(_per_metric(higher_is_better, m, True)) for m, *_ in items]
    p_better = np.empty(k)
    p_worse = np.empty(k)
    for i, ((metric, method, control, res), h) in enumerate(zip(items, hib)):
        p_better[i] = _one_sided_p(res, better_alternative(h), n_resamples, seed)
        p_worse[i] = _one_sided_p(res, better_alternative(not h), n_resamples, seed)
        if not np.isfinite(p_better[i]):
            raise SpecError(f"{metric}: {method} vs {control} has no p-value for alternative "
                            f"{better_alternative(h)!r} and no per-seed diffs to compute one")
    p_worse = np.where(np.isfinite(p_worse), p_worse, 1.0)  # no diffs: never call it worse
    adj_better = adjust(p_better, correction)
    adj_worse = adjust(p_worse, correction)

    margins = [_per_metric(equivalence_margin, m, None) for m, *_ in items]
    p_eq = np.ones(k)
    for i, ((_, _, _, res), margin) in enumerate(zip(items, margins)):
        diffs = _field(res, "diffs")
        if margin is not None and diffs is not None and len(diffs) >= 2:
            p_eq[i] = equivalence_from_diffs(diffs, margin, alpha).p_value
    has_margin = np.array([m is not None for m in margins])
    adj_eq = np.ones(k)
    if has_margin.any():
        adj_eq[has_margin] = adjust(p_eq[has_margin], correction)

    out = []
    for i, ((metric, method, control, res), h) in enumerate(zip(items, hib)):
        lo, hi = float(_field(res, "ci_low")), float(_field(res, "ci_high"))
        ci_better, ci_worse = (lo > 0, hi < 0) if h else (hi < 0, lo > 0)
        if adj_better[i] < alpha and ci_better:
            decision = "better"
        elif adj_worse[i] < alpha and ci_worse:
            decision = "worse"
        elif has_margin[i] and adj_eq[i] < alpha:
            decision = "equivalent"
        else:
            decision = "not better"
        out.append(Verdict(
            metric=metric, method=method, control=control, estimate=float(_field(res, "estimate")),
            ci_low=lo, ci_high=hi, p_value=float(p_better[i]), p_adjusted=float(adj_better[i]), family_size=k,
            alpha=alpha, decision=decision, n_seeds=int(_field(res, "n", 0)),
            effect_size=float(_field(res, "effect_size", float("nan"))),
            test_name=f"{_field(res, 'test_name', 'paired test')}, one-sided ({better_alternative(h)})",
            correction=correction, higher_is_better=h))
    return out


def verdicts_to_frame(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict, columns in Verdict field order."""
    return pd.DataFrame([v.to_dict() for v in verdicts], columns=[f.name for f in fields(Verdict)])


def verdicts_from_frame(frame: pd.DataFrame) -> list[Verdict]:
    """The Verdicts of a frame written by ``verdicts_to_frame`` (extra columns are ignored)."""
    names = [f.name for f in fields(Verdict)]
    return [Verdict(**{k: r[k] for k in names}) for r in frame.to_dict("records")]


def beats_all(verdicts: Iterable[Verdict]) -> bool:
    """True only when the family is non-empty and every verdict says 'better' (the CI gate)."""
    vs = list(verdicts)
    return bool(vs) and all(v.decision == "better" for v in vs)
