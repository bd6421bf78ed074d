"""Verdicts for a confirmatory family: "does the method beat each control?", labelled under Holm (or BH), and the
intersection-union rule for "beats every control".

Each comparison carries its better direction (``Comparison.higher_is_better``, set once from the caller or the
metric catalogue); nothing here guesses or recomputes it.

Per-comparison rule at alpha (``better_unadjusted``): the one-sided paired test in the better direction has p <
alpha AND the reported CI of the mean difference excludes 0 on the better side AND, where the result has one,
the bootstrap-t interval (robust to skewed differences; a wider one below ``SMALL_N`` seeds,
``tueval.stats.paired.robust_level``) excludes 0 on that side too. Labels: ``better`` is the
same rule with the family-adjusted p; ``worse`` mirrors it on the other side (a descriptive label, adjusted
separately); ``equivalent`` needs a pre-registered margin and an adjusted TOST p < alpha; everything else is
``not better``. ``beats_all`` is the intersection-union test of "better than every member": it holds when every
member is better at alpha unadjusted, and needs no multiplicity correction (its size is at most alpha).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from tueval.errors import SpecError
from tueval.stats.equivalence import equivalence_from_diffs
from tueval.stats.multiple import adjust
from tueval.stats.paired import PairedResult, paired_difference, paired_from_diffs, sign_flip_pvalue

DECISIONS = ("better", "not better", "worse", "equivalent")
_ALT_DIRECTION = {"greater": True, "less": False}


def _catalogue_direction(metric: str) -> bool | None:
    from tueval.metrics.catalogue import direction

    return direction(metric)


def direction_of(metric: str, result: Any = None) -> bool:
    """The better direction of a comparison that was not given one: the side its one-sided test was run on, else
    the metric catalogue's; SpecError when neither says."""
    alt = _field(result, "alternative") if result is not None else None
    if alt in _ALT_DIRECTION:
        return _ALT_DIRECTION[alt]
    d = _catalogue_direction(metric)
    if d is None:
        raise SpecError(f"comparison on '{metric}' has no better direction: its test is two-sided and the metric "
                        "catalogue gives none; pass higher_is_better")
    return d


@dataclass(frozen=True)
class Comparison:
    """One member of a family: a PairedResult labelled with its metric, method, control and better direction
    (None at construction: taken from the result's one-sided alternative, else from the metric catalogue)."""

    metric: str
    method: str
    control: str
    result: PairedResult
    higher_is_better: bool | None = None

    def __post_init__(self):
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", direction_of(self.metric, self.result))
        else:
            object.__setattr__(self, "higher_is_better", bool(self.higher_is_better))


@dataclass(frozen=True)
class Verdict:
    """The decision for one (metric, method, control) comparison: its family-adjusted label (``decision``), the
    unadjusted per-comparison decision at alpha that the intersection-union rule uses (``better_unadjusted``), the
    estimate with its CI and bootstrap-t CI, d_z with its CI, and the failed seeds that count against an arm."""

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
    better_unadjusted: bool = False
    robust_ci_low: float = float("nan")
    robust_ci_high: float = float("nan")
    effect_size_ci_low: float = float("nan")
    effect_size_ci_high: float = float("nan")
    n_failed: int = 0

    def to_dict(self) -> dict:
        """Plain-dict view for JSON/CSV."""
        return asdict(self)


def better_alternative(higher_is_better: bool) -> str:
    """The one-sided alternative for 'method beats control' on this metric."""
    return "greater" if higher_is_better else "less"


def _resolve_direction(metric: str, higher_is_better: bool | None) -> bool:
    if higher_is_better is not None:
        return bool(higher_is_better)
    from tueval.metrics.catalogue import higher_is_better as catalogue_hib

    return catalogue_hib(metric)


def compare(method_values, control_values, *, metric: str, method: str, control: str,
            higher_is_better: bool | None = None, alpha: float = 0.05, n_resamples: int = 9999, seed: int = 0
            ) -> Comparison:
    """Paired comparison of per-seed values, tested one-sided in the better direction (given, else the metric
    catalogue's, else higher is better for names the catalogue does not know), labelled for verdict_table."""
    h = _resolve_direction(metric, higher_is_better)
    r = paired_difference(method_values, control_values, alpha=alpha, alternative=better_alternative(h),
                          n_resamples=n_resamples, seed=seed)
    return Comparison(metric, method, control, r, h)


def compare_diffs(diffs, *, metric: str, method: str, control: str, higher_is_better: bool | None = None,
                  alpha: float = 0.05, n_resamples: int = 9999, seed: int = 0, n_failed: int = 0) -> Comparison:
    """``compare`` on precomputed per-seed differences method - control (e.g. utility at matched forgetting);
    ``n_failed`` of them stand for failed seeds under the worst-rank rule."""
    h = _resolve_direction(metric, higher_is_better)
    r = paired_from_diffs(diffs, alpha=alpha, alternative=better_alternative(h), n_resamples=n_resamples,
                          seed=seed, n_failed=n_failed)
    return Comparison(metric, method, control, r, h)


def _unpack(item: Any) -> tuple[str, str, str, Any, bool]:
    """(metric, method, control, result-like, higher_is_better) from a Comparison, a dict, or an object carrying
    both; the direction is the item's own (or its result's), else its one-sided alternative's."""
    get = (lambda k, d=None: item.get(k, d)) if isinstance(item, Mapping) else (lambda k, d=None: getattr(item, k, d))
    names = tuple(get(k) for k in ("metric", "method", "control"))
    if any(n is None for n in names):
        raise SpecError(f"each result needs metric, method and control names; got {item!r}")
    res = get("result")
    if res is None:
        res = item
    h = get("higher_is_better")
    if h is None:
        h = _field(res, "higher_is_better")
    if h is None:
        alt = _field(res, "alternative")
        if alt not in _ALT_DIRECTION:
            raise SpecError(f"{names[0]}: {names[1]} vs {names[2]} carries no better direction (no "
                            "higher_is_better and no one-sided alternative)")
        h = _ALT_DIRECTION[alt]
    return (*names, res, bool(h))


def _field(res: Any, key: str, default: Any = None) -> Any:
    return res.get(key, default) if isinstance(res, Mapping) else getattr(res, key, default)


def _per_metric(value: Any, metric: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(metric, default)
    return default if value is None else value


def _num(res: Any, key: str) -> float:
    v = _field(res, key)
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _excludes_zero(res: Any, better_side_positive: bool) -> bool:
    """The reported CI, and the bootstrap-t CI where the result has one, exclude 0 on the given side."""
    lo, hi = _num(res, "ci_low"), _num(res, "ci_high")
    ok = lo > 0 if better_side_positive else hi < 0
    rlo, rhi = _num(res, "robust_ci_low"), _num(res, "robust_ci_high")
    if not (math.isnan(rlo) and math.isnan(rhi)):
        ok = ok and (rlo > 0 if better_side_positive else rhi < 0)
    return bool(ok)


def _one_sided_p(res: Any, alternative: str, n_resamples: int, seed: int) -> float:
    """The result's p if it was computed for this alternative, else recomputed from its per-seed diffs."""
    if _field(res, "alternative") == alternative:
        return float(_field(res, "p_value"))
    diffs = _field(res, "diffs")
    if diffs is None or len(diffs) == 0:
        return float("nan")
    return float(sign_flip_pvalue(np.asarray(diffs, float), alternative, n_resamples=n_resamples, seed=seed))


def verdict_table(results: Iterable[Any], alpha: float = 0.05, correction: str = "holm",
                  equivalence_margin: float | Mapping[str, float] | None = None,
                  n_resamples: int = 9999, seed: int = 0) -> list[Verdict]:
    """Verdicts for one family of comparisons (everything passed is one family; its size is reported).

    ``results`` holds Comparison objects, or dicts/objects with metric, method, control, a better direction
    (``higher_is_better``, or a one-sided ``alternative``) and either a ``result`` or PairedResult fields.
    ``equivalence_margin`` may be given per metric.
    """
    items = [_unpack(x) for x in results]
    k = len(items)
    if k == 0:
        return []
    p_better = np.empty(k)
    p_worse = np.empty(k)
    for i, (metric, method, control, res, h) in enumerate(items):
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
    for i, ((_, _, _, res, _), margin) in enumerate(zip(items, margins)):
        diffs = _field(res, "diffs")
        if margin is not None and diffs is not None and len(diffs) >= 2:
            p_eq[i] = equivalence_from_diffs(diffs, margin, alpha).p_value
    has_margin = np.array([m is not None for m in margins])
    adj_eq = np.ones(k)
    if has_margin.any():
        adj_eq[has_margin] = adjust(p_eq[has_margin], correction)

    out = []
    for i, (metric, method, control, res, h) in enumerate(items):
        ci_better, ci_worse = _excludes_zero(res, h), _excludes_zero(res, not h)
        if adj_better[i] < alpha and ci_better:
            decision = "better"
        elif adj_worse[i] < alpha and ci_worse:
            decision = "worse"
        elif has_margin[i] and adj_eq[i] < alpha:
            decision = "equivalent"
        else:
            decision = "not better"
        out.append(Verdict(
            metric=metric, method=method, control=control, estimate=_num(res, "estimate"),
            ci_low=_num(res, "ci_low"), ci_high=_num(res, "ci_high"), p_value=float(p_better[i]),
            p_adjusted=float(adj_better[i]), family_size=k, alpha=alpha, decision=decision,
            n_seeds=int(_field(res, "n", 0)), effect_size=_num(res, "effect_size"),
            test_name=f"{_field(res, 'test_name', 'paired test')}, one-sided ({better_alternative(h)})",
            correction=correction, higher_is_better=h, better_unadjusted=bool(p_better[i] < alpha and ci_better),
            robust_ci_low=_num(res, "robust_ci_low"), robust_ci_high=_num(res, "robust_ci_high"),
            effect_size_ci_low=_num(res, "effect_size_ci_low"), effect_size_ci_high=_num(res, "effect_size_ci_high"),
            n_failed=int(_field(res, "n_failed", 0) or 0)))
    return out


def verdicts_to_frame(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict, columns in Verdict field order."""
    return pd.DataFrame([v.to_dict() for v in verdicts], columns=[f.name for f in fields(Verdict)])


def verdicts_from_frame(frame: pd.DataFrame) -> list[Verdict]:
    """The Verdicts of a frame written by ``verdicts_to_frame`` (extra columns are ignored; fields with a default
    may be missing)."""
    names = [f.name for f in fields(Verdict) if f.name in frame.columns]
    return [Verdict(**{k: r[k] for k in names}) for r in frame.to_dict("records")]


def beats_all(verdicts: Iterable[Verdict]) -> bool:
    """Intersection-union test of "the method beats every member of the family": True only when the family is
    non-empty and every comparison is better at alpha without multiplicity correction (``better_unadjusted``)."""
    vs = list(verdicts)
    return bool(vs) and all(bool(v.better_unadjusted) for v in vs)
