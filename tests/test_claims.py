"""The rules behind the claims a report makes: the confirmatory family is one method (both primary metrics, every
control), "beats every control" is an intersection-union test, and a comparison's direction is its own.

Each test here fails on the code before these rules (the families per method and metric, Holm applied to
"beats every control", verdict_table defaulting to higher-is-better)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tueval_analyses.controls as C
from tueval.analysis import AnalysisConfig
from tueval.analysis.families import paired_verdicts
from tueval.stats import beats_all, compare, verdict_table


def _runs(n_seeds: int) -> pd.DataFrame:
    """Two methods, each better than both controls on both primary metrics on every seed."""
    g = np.random.default_rng(0)
    rows = []
    for method in ("ga/a", "ga/b"):
        for s in range(n_seeds):
            base = g.normal(0, 0.2)
            for arm in ("method", "random_k", "uniform"):
                up = 1.0 if arm == "method" else 0.0
                rows.append({"objective": "ga", "method": method, "arm": arm, "seed": s, "role": "confirmatory",
                             "log10_fq": -3 + base + up + g.normal(0, 0.05),
                             "model_utility": 0.5 + base / 10 + up / 10 + g.normal(0, 0.005)})
    return pd.DataFrame(rows)


def test_the_family_is_one_method_over_both_metrics_and_every_control():
    """Default family: per objective and method, 2 primary metrics x 2 controls = 4 comparisons (not one family
    per metric, and not every method of the objective together); the controls analysis uses it."""
    cfg = AnalysisConfig(workdir=None, reports=None, seeds=tuple(range(7)))
    assert C.grid_settings(cfg)["family"] == "method"
    vs, frame = paired_verdicts(_runs(7), C.PRIMARY)
    assert len(vs) == 8 and {v.family_size for v in vs} == {4}
    assert frame.groupby("method")["family"].nunique().eq(1).all() and frame["family"].nunique() == 2
    assert all(v.decision == "better" for v in vs)  # 7 seeds: 1/128 < 0.05/4
    # with 6 seeds no member of a family of 4 can be labelled better (1/64 > 0.05/4), however clear the win
    vs6, frame6 = paired_verdicts(_runs(6), C.PRIMARY)
    assert {v.family_size for v in vs6} == {4} and not any(v.decision == "better" for v in vs6)
    assert (frame6["min_seeds_for_family"] == 7).all()


def test_beats_every_control_is_an_intersection_union_test():
    """Nine comparisons, each won on all 6 seeds (one-sided exact p = 1/64 < 0.05 each): the method beats every
    control. Holm over the nine (9/64 > 0.05) would never pass with 6 seeds; the labels stay Holm's."""
    g = np.random.default_rng(5)
    comps = [compare(g.normal(2.0, 0.1, 6), g.normal(0.0, 0.1, 6), metric="log10_fq", method="m",
                     control=f"c{i}", higher_is_better=True) for i in range(9)]
    vs = verdict_table(comps, alpha=0.05, correction="holm")
    assert all(v.p_value == pytest.approx(1 / 64) for v in vs)
    assert all(v.decision == "not better" for v in vs)  # Holm labels
    assert beats_all(vs)
    lost = compare(np.zeros(6), g.normal(0.5, 0.1, 6), metric="log10_fq", method="m", control="c9",
                   higher_is_better=True)
    assert not beats_all(verdict_table(comps[:8] + [lost], alpha=0.05))


def test_a_comparisons_direction_is_never_recomputed():
    """A lower-is-better comparison that the method wins stays 'better' in verdict_table, without the direction
    being passed again."""
    g = np.random.default_rng(3)
    control = g.normal(0.3, 0.05, 8)
    method = control - 0.1 + g.normal(0, 0.01, 8)
    c = compare(method, control, metric="loss", method="m", control="c", higher_is_better=False)
    v = verdict_table([c], alpha=0.05)[0]
    assert v.decision == "better" and not v.higher_is_better and v.estimate < 0
    assert beats_all([v])
