"""tueval.stats against reference implementations (scipy, statsmodels, rliable) and hand-computed examples."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from tueval.errors import DataError, SpecError
from tueval.stats import (Comparison, PairedResult, adjust, adjust_batch, aggregate_mean, bca_interval, beats_all,
                          bootstrap_t_interval, compare, compare_diffs, crossed_bootstrap, crossed_summary, dz_interval,
                          effect_size_dz, equivalence_test, group_ci, iqm, min_seeds_for_exact,
                          non_inferiority_from_diffs, optimality_gap, paired_difference, paired_t, power_paired,
                          probability_of_improvement, probability_of_improvement_ci, seeds_needed, sign_flip_pvalue,
                          stratified_bootstrap_ci, t_interval, value_matrix, verdict_table, verdicts_from_frame,
                          verdicts_to_frame)
from tueval.stats.paired import worst_rank
from tueval.stats import aggregate as agg

rng = np.random.default_rng(1234)


@pytest.fixture
def fast_statsmodels_holm(monkeypatch):
    """statsmodels' Holm branch calls gc.collect() on every call (about 1 s with torch loaded); stub it in tests."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *a: 0)


def _scipy_signflip(d, alternative, n_resamples=np.inf, seed=0):
    return scipy.stats.permutation_test((d,), np.mean, permutation_type="samples", alternative=alternative,
                                        n_resamples=n_resamples, vectorized=True,
                                        rng=np.random.default_rng(seed)).pvalue


# ---------------------------------------------------------------- paired: sign-flip p ---------------------------

def test_signflip_hand_values():
    assert sign_flip_pvalue([1, 2, 3], "greater") == pytest.approx(1 / 8)
    assert sign_flip_pvalue(np.ones(6) * [1, 2, 3, 4, 5, 6], "two-sided") == pytest.approx(2 / 64)
    assert sign_flip_pvalue([1, 2, 3, 4, 5, 6], "greater") == pytest.approx(1 / 64)
    assert sign_flip_pvalue([1, 2, 3, 4, 5, 6], "less") == pytest.approx(1.0)
    # [1, -2, 3]: observed sum 2; brute force over the 8 sign flips
    flips = [a * 1 + b * -2 + c * 3 for a in (1, -1) for b in (1, -1) for c in (1, -1)]
    assert sign_flip_pvalue([1, -2, 3], "greater") == pytest.approx(np.mean(np.array(flips) >= 2))


@pytest.mark.parametrize("n", [3, 7, 12])
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_signflip_matches_scipy_permutation_test(n, alternative):
    d = rng.normal(0.3, 1.0, size=n)
    ours = sign_flip_pvalue(d, alternative)
    assert ours == pytest.approx(_scipy_signflip(d, alternative), rel=1e-12)
    # two-sample paired form of scipy (swap method/control within a pair) gives the same null
    x, y = d + 5.0, np.full(n, 5.0)
    ref2 = scipy.stats.permutation_test((x, y), lambda a, b, axis: np.mean(a - b, axis=axis), vectorized=True,
                                        permutation_type="samples", alternative=alternative, n_resamples=np.inf).pvalue
    assert ours == pytest.approx(ref2, rel=1e-9)


def test_signflip_with_ties_matches_scipy():
    d = np.array([1.0, 1.0, -1.0, 2.0, 0.0, 1.0, -2.0])
    for alt in ("greater", "less", "two-sided"):
        assert sign_flip_pvalue(d, alt) == pytest.approx(_scipy_signflip(d, alt), rel=1e-12)


def test_signflip_batch_equals_rows_and_monte_carlo_is_seeded():
    d = rng.normal(0.2, 1.0, size=(5, 4, 8))
    batch = sign_flip_pvalue(d, "greater")
    rows = np.array([[sign_flip_pvalue(r, "greater") for r in m] for m in d])
    np.testing.assert_allclose(batch, rows)
    big = rng.normal(0.4, 1.0, size=20)  # above 16 seeds: Monte-Carlo
    p1 = sign_flip_pvalue(big, "greater", n_resamples=20000, seed=3)
    assert p1 == sign_flip_pvalue(big, "greater", n_resamples=20000, seed=3)
    ref = _scipy_signflip(big, "greater", n_resamples=20000, seed=5)
    assert abs(p1 - ref) < 0.01
    assert p1 >= 1 / 20001


# ---------------------------------------------------------------- paired: CIs, t, d_z -----------------------------

def test_small_n_t_interval_and_ttest_rel():
    m, c = rng.normal(1, 1, 7), rng.normal(0, 1, 7)
    r = paired_difference(m, c, alpha=0.05, alternative="greater")
    ref = scipy.stats.ttest_rel(m, c)
    lo, hi = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), rel=1e-10)
    assert r.ci_method == "t" and "exact" in r.test_name and r.n == 7
    assert r.estimate == pytest.approx(np.mean(m - c))
    assert r.p_value == pytest.approx(_scipy_signflip(m - c, "greater"))
    t, p = paired_t(m, c, "greater")
    ref1 = scipy.stats.ttest_rel(m, c, alternative="greater")
    assert (t, p) == pytest.approx((ref1.statistic, ref1.pvalue))
    d = m - c
    assert r.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.diffs == pytest.approx(tuple(d))


def _boot_t_reference(d, level, n_resamples, seed):
    """A loop implementation of the percentile-t interval with the same resample indices."""
    n = d.size
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    m, se = d.mean(), d.std(ddof=1) / np.sqrt(n)
    ts = []
    for row in idx:
        b = d[row]
        sb = b.std(ddof=1) / np.sqrt(n)
        ts.append((b.mean() - m) / sb if sb > 0 else np.sign(b.mean() - m) * np.inf)
    ts = np.array(ts)
    q_lo = np.quantile(ts, (1 - level) / 2, method="lower")
    q_hi = np.quantile(ts, (1 + level) / 2, method="higher")
    return m - q_hi * se, m - q_lo * se


def test_t_interval_below_20_seeds_bootstrap_t_from_20():
    for n, method in ((12, "t"), (16, "t"), (19, "t"), (24, "bootstrap-t")):
        m, c = rng.normal(0.5, 1, n), rng.normal(0, 1, n)
        r = paired_difference(m, c, seed=7, n_resamples=2000)
        assert r.ci_method == method
        assert r.robust_ci_level == (0.98 if n < 14 else 0.95)
        ref = _boot_t_reference(m - c, r.robust_ci_level, 2000, 7)
        assert (r.robust_ci_low, r.robust_ci_high) == pytest.approx(ref)
        if method == "t":
            assert (r.ci_low, r.ci_high) == pytest.approx(t_interval(m - c, 0.95))
        else:
            assert (r.ci_low, r.ci_high) == (r.robust_ci_low, r.robust_ci_high)
        assert r.ci_low < r.estimate < r.ci_high
        ref_p = (_scipy_signflip(m - c, "greater") if n <= 16 else
                 _scipy_signflip(m - c, "greater", n_resamples=20000, seed=5))
        assert r.p_value == pytest.approx(ref_p, abs=0.04 if n > 16 else 1e-12)


def test_bootstrap_t_is_batch_aware_and_follows_the_skew():
    d = rng.normal(size=(3, 9))
    lo, hi = bootstrap_t_interval(d, 0.9, n_resamples=500, seed=1)
    for i in range(3):
        assert (lo[i], hi[i]) == pytest.approx(bootstrap_t_interval(d[i], 0.9, n_resamples=500, seed=1))
    # a long left tail: the bootstrap-t interval reaches further below the mean than the t-interval does
    left = np.array([0.9, 0.8, 0.85, 0.95, 0.7, 0.9, 0.75, -2.5, 0.8, 0.9])
    blo, bhi = bootstrap_t_interval(left, 0.95)
    tlo, thi = t_interval(left, 0.95)
    assert blo < tlo and (left.mean() - blo) > (bhi - left.mean())
    assert bootstrap_t_interval(np.full(8, 0.3)) == (pytest.approx(0.3), pytest.approx(0.3))


def test_dz_interval_covers_at_its_level():
    """The noncentral-t CI of d_z covers the true d_z about 95% of the time for normal differences."""
    g = np.random.default_rng(11)
    true_dz, n = 0.6, 8
    hits = [lo <= true_dz <= hi for lo, hi in (dz_interval(g.normal(true_dz, 1.0, n)) for _ in range(300))]
    assert 0.91 <= np.mean(hits) <= 0.99
    r = paired_difference(g.normal(1, 1, 8), np.zeros(8))
    assert r.effect_size_ci_low < r.effect_size < r.effect_size_ci_high
    assert dz_interval([1.0]) == (pytest.approx(float("nan"), nan_ok=True),) * 2


@pytest.mark.parametrize("dz, n", [(-13.0, 7), (-96.2, 2), (57.6, 7), (2.5, 3), (-0.4, 12)])
def test_dz_interval_is_the_noncentral_t_root_also_far_in_the_tails(dz, n):
    """Both limits solve P(T <= t; n-1, nc) = 0.975 / 0.025 (where scipy's cdf is NaN further out, a root was
    once missed and the normal approximation printed instead), and 1e-7 of noise in the data moves them by noise."""
    import scipy.stats

    x = np.linspace(-1, 1, n)
    d = dz + (x - x.mean()) / x.std(ddof=1)
    lo, hi = dz_interval(d)
    t = dz * np.sqrt(n)
    for limit, p in ((lo, 0.975), (hi, 0.025)):
        assert scipy.stats.nct.cdf(t, n - 1, limit * np.sqrt(n)) == pytest.approx(p, abs=1e-7)
    lo2, hi2 = dz_interval(d * (1 + 1e-7 * np.sin(np.arange(n) + 1)))
    assert lo2 == pytest.approx(lo, rel=1e-4) and hi2 == pytest.approx(hi, rel=1e-4)


def test_worst_rank_counts_a_failed_seed_against_its_arm():
    m = np.array([1.0, 1.2, np.nan, 1.1])
    c = np.array([0.5, 0.6, 0.4, np.inf])
    mh, ch = worst_rank(m, c, higher_is_better=True)
    assert mh[2] == 0.4 and ch[3] == 0.4  # the worst finite value of both arms, for each failed seed
    ml, cl = worst_rank(m, c, higher_is_better=False)
    assert ml[2] == 1.2 and cl[3] == 1.2
    assert np.isnan(worst_rank([np.nan, np.nan], [np.nan, np.nan])[0]).all()


def test_degenerate_differences_never_nan():
    zero = paired_difference([1, 2, 3, 4], [1, 2, 3, 4])
    assert (zero.p_value, zero.ci_low, zero.ci_high, zero.effect_size) == (1.0, 0.0, 0.0, 0.0)
    for n in (6, 12):
        const = paired_difference(np.arange(n) + 1.0, np.arange(n) + 0.5)
        assert const.ci_low == pytest.approx(0.5) and const.ci_high == pytest.approx(0.5)
        assert const.p_value == pytest.approx(1 / 2 ** n)
        assert const.effect_size == math.inf
        assert not any(np.isnan(v) for v in (const.estimate, const.ci_low, const.ci_high, const.p_value))
    assert bca_interval(np.zeros(11)) == (0.0, 0.0)
    assert effect_size_dz([-1.0, -1.0]) == -math.inf
    assert paired_t([1, 1], [0, 0], "greater") == (math.inf, 0.0)


def test_paired_input_errors_name_row_and_field():
    with pytest.raises(DataError) as e:
        paired_difference([1.0, np.nan, 2.0], [0.0, 0.0, 0.0])
    assert e.value.row == 1 and e.value.field == "method"
    with pytest.raises(DataError):
        paired_difference([1.0, 2.0], [0.0, 0.0, 0.0])
    with pytest.raises(DataError):
        paired_difference([1.0], [0.0])
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [0.0, 0.0], alternative="bigger")


def test_t_interval_batch_matches_rows():
    d = rng.normal(size=(4, 6))
    lo, hi = t_interval(d, 0.9)
    for i in range(4):
        assert (lo[i], hi[i]) == pytest.approx(t_interval(d[i], 0.9))


# ---------------------------------------------------------------- the one t-interval; crossed summaries -----------

def test_t_interval_min_n_and_group_ci_use_the_same_interval():
    v = rng.normal(size=5)
    assert t_interval(v[:1]) == (pytest.approx(float("nan"), nan_ok=True),) * 2
    lo, hi = t_interval(v[:2], min_n=3)
    assert math.isnan(lo) and math.isnan(hi)
    ref = scipy.stats.t.interval(0.95, 4, loc=v.mean(), scale=scipy.stats.sem(v))
    assert t_interval(v) == pytest.approx(ref)
    df = pd.DataFrame({"g": ["a"] * 5 + ["b"], "x": [*v, 1.0]})
    out = group_ci(df, "g", "x").set_index("g")
    assert (out.loc["a", "ci_low"], out.loc["a", "ci_high"]) == pytest.approx(ref)
    assert out.loc["b", "n"] == 1 and math.isnan(out.loc["b", "ci_low"])


def test_crossed_summary_matches_the_crossed_bootstrap_per_group():
    rows = pd.DataFrame({"scorer": ["m"] * 6 + ["d"] * 3, "seed": [0, 0, 0, 1, 1, 1, -1, -1, -1],
                         "example_id": list("abc") * 3, "v": [1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 0.0, 1.0, 5.0]})
    out = crossed_summary(rows, ["scorer"], ["v"], 500).set_index("scorer")
    D, seeds, ex = value_matrix(rows[rows.scorer == "m"], "v")
    assert D.shape == (2, 3) and seeds == [0, 1] and ex == ["a", "b", "c"]
    est, lo, hi = crossed_bootstrap(D, 500)
    assert (out.loc["m", "mean"], out.loc["m", "ci_low"], out.loc["m", "ci_high"]) == (est, lo, hi)
    assert out.loc["d", "n_seeds"] == 1 and out.loc["d", "mean"] == pytest.approx(2.0)
    assert set(out["metric"]) == {"v"} and "metric" not in crossed_summary(rows, ["scorer"], "v", 50)


# ---------------------------------------------------------------- multiple comparisons ----------------------------

def test_holm_and_bh_hand_example(fast_statsmodels_holm):
    p = [0.01, 0.04, 0.03]
    np.testing.assert_allclose(adjust(p, "holm"), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust(p, "fdr_bh"), [0.03, 0.04, 0.04])
    np.testing.assert_allclose(adjust(p, "holm", engine="statsmodels"), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust(p, "fdr_bh", engine="statsmodels"), [0.03, 0.04, 0.04])
    # statsmodels' default is Holm-Sidak, which differs: we never rely on it
    assert not np.allclose(multipletests(p)[1], adjust(p, "holm"))


@pytest.mark.parametrize("method", ["holm", "fdr_bh", "bonferroni"])
def test_numpy_engine_matches_statsmodels(method, fast_statsmodels_holm):
    g = np.random.default_rng(3)
    fams = np.concatenate([g.uniform(0, 0.2, (30, 5)), g.choice([0.01, 0.02, 0.5], (10, 5))])  # with ties
    batch = adjust_batch(fams, method)
    for row, adj in zip(fams, batch):
        np.testing.assert_allclose(adj, multipletests(row, method=method)[1], rtol=1e-12)
    with pytest.raises(DataError):
        adjust([0.1, 1.5])
    with pytest.raises(ValueError):
        adjust([0.1], "hs")


# ---------------------------------------------------------------- equivalence -------------------------------------

def test_tost_matches_statsmodels_and_ci_rule():
    g = np.random.default_rng(4)
    for _ in range(20):
        m, c = g.normal(0, 1, 8), g.normal(0, 1, 8) * 0.3
        m = c + g.normal(0.05, 0.3, 8)
        r = equivalence_test(m, c, 0.4)
        assert r.p_value == pytest.approx(ttost_paired(m, c, -0.4, 0.4)[0])
        lo, hi = scipy.stats.ttest_rel(m, c).confidence_interval(0.90)
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
        assert r.equivalent == (-0.4 < lo and hi < 0.4)  # TOST p < alpha <=> 90% CI inside the bounds
    assert equivalence_test([1, 2, 3], [1, 2, 3], 0.1).equivalent
    assert not equivalence_test([1, 2, 3], [0, 1, 2], 0.5).equivalent
    assert equivalence_test([1.0, 2.0], [0.9, 1.9], (-0.2, 0.3)).equivalent


# ---------------------------------------------------------------- power -------------------------------------------

def test_power_and_seeds_needed():
    assert seeds_needed(0.8) == 15
    for dz, n in ((0.5, 34), (1.0, 10), (1.5, 6), (2.0, 5)):
        assert seeds_needed(dz) == n
    assert power_paired(0.8, 15) >= 0.8 > power_paired(0.8, 14)
    assert power_paired(0.8, 15) == pytest.approx(TTestPower().power(0.8, 15, 0.05))
    assert seeds_needed(2.0, exact_test=True) == 6
    assert seeds_needed(0.8, alternative="greater") < 15


@pytest.mark.parametrize("alternative,k", [("two-sided", 1), ("greater", 1), ("greater", 3), ("two-sided", 3)])
def test_min_seeds_for_exact_is_the_sign_flip_floor(alternative, k):
    n = min_seeds_for_exact(0.05, alternative, k)
    assert sign_flip_pvalue(np.arange(1.0, n + 1), alternative) * k < 0.05
    assert sign_flip_pvalue(np.arange(1.0, n), alternative) * k >= 0.05
    assert min_seeds_for_exact(0.05, "two-sided") == 6 and min_seeds_for_exact(0.05, "greater") == 5


# ---------------------------------------------------------------- aggregates (rliable) ----------------------------

def test_iqm_hand_value_and_rliable():
    s = np.array([[1, 2], [3, 4], [0, 1], [2, 2]], dtype=float)
    # pooled sorted: 0 1 1 2 2 2 3 4 -> drop 2 each side -> mean(1, 2, 2, 2) = 1.75
    assert iqm(s) == pytest.approx(1.75)
    assert float(agg._iqm_np(s)) == pytest.approx(1.75)
    from rliable import metrics as rm
    big = rng.normal(size=(10, 4))
    assert iqm(big) == pytest.approx(rm.aggregate_iqm(big))
    assert float(agg._iqm_np(big)) == pytest.approx(rm.aggregate_iqm(big))
    assert aggregate_mean(big) == pytest.approx(rm.aggregate_mean(big))
    assert optimality_gap(big, 0.5) == pytest.approx(rm.aggregate_optimality_gap(big, 0.5))
    assert float(agg._optimality_gap_np(big, 0.5)) == pytest.approx(rm.aggregate_optimality_gap(big, 0.5))
    assert float(agg._median_np(big)) == pytest.approx(rm.aggregate_median(big))


def test_probability_of_improvement_hand_and_rliable():
    x, y = np.array([[2.0]]), np.array([[1.0], [3.0], [4.0]])
    assert probability_of_improvement(x, y) == pytest.approx(1 / 3)
    assert float(agg._poi_np(x, y)) == pytest.approx(1 / 3)
    # two tasks: 1/3 and all ties (1/2) -> 5/12
    x2, y2 = np.array([[2.0, 1.0]]), np.array([[1.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
    assert probability_of_improvement(x2, y2) == pytest.approx(5 / 12)
    assert float(agg._poi_np(x2, y2)) == pytest.approx(5 / 12)
    from rliable import metrics as rm
    a, b = rng.integers(0, 4, (6, 3)).astype(float), rng.integers(0, 4, (5, 3)).astype(float)
    assert probability_of_improvement(a, b) == pytest.approx(rm.probability_of_improvement(a, b))
    assert float(agg._poi_np(a, b)) == pytest.approx(rm.probability_of_improvement(a, b))
    assert probability_of_improvement(a, a) == pytest.approx(0.5)


def test_stratified_bootstrap():
    s = rng.normal(size=(8, 3))
    r = stratified_bootstrap_ci(s, "iqm", reps=500, seed=2)
    assert r.ci_low <= r.estimate <= r.ci_high and r.estimate == pytest.approx(iqm(s))
    # the vectorised path and a callable on each resample see the same resamples
    r2 = stratified_bootstrap_ci(s, lambda m: scipy.stats.trim_mean(m, 0.25, axis=None), reps=500, seed=2)
    assert (r2.ci_low, r2.ci_high) == pytest.approx((r.ci_low, r.ci_high))
    const = np.tile([1.0, 2.0, 3.0], (5, 1))  # runs agree within each task: no run-level uncertainty
    c = stratified_bootstrap_ci(const, "mean", reps=200)
    assert c.ci_low == c.ci_high == pytest.approx(2.0)
    assert stratified_bootstrap_ci(const, "mean", reps=200, task_bootstrap=True).ci_high > 2.0
    p = probability_of_improvement_ci(s + 1.0, s, reps=300)
    assert 0 <= p.ci_low <= p.estimate <= p.ci_high <= 1 and p.estimate > 0.5


def test_stratified_bootstrap_close_to_rliable_if_available():
    try:
        from rliable import library as rly
    except Exception as exc:  # rliable.library imports `arch`, which breaks on some pandas versions
        pytest.skip(f"rliable.library does not import here: {exc}")
    s = rng.normal(size=(10, 3))
    _, cis = rly.get_interval_estimates({"a": s}, lambda x: np.array([iqm(x)]), reps=4000)
    ours = stratified_bootstrap_ci(s, "iqm", reps=4000)
    assert ours.ci_low == pytest.approx(cis["a"][0, 0], abs=0.1)
    assert ours.ci_high == pytest.approx(cis["a"][1, 0], abs=0.1)


# ---------------------------------------------------------------- verdicts ----------------------------------------

def _family():
    g = np.random.default_rng(8)
    base = g.normal(0, 1, 8)
    return [
        compare(base + 2.0 + g.normal(0, .3, 8), base, metric="forget", method="m", control="random_k"),
        compare(base + g.normal(0, .3, 8), base, metric="forget", method="m", control="magnitude"),
        compare(base - 2.0 + g.normal(0, .3, 8), base, metric="forget", method="m", control="oracle"),
        compare(base - 1.5 + g.normal(0, .3, 8), base, metric="loss", method="m", control="random_k",
                higher_is_better=False),
    ]


def test_verdict_table_decisions_and_holm():
    fam = _family()
    vs = verdict_table(fam, alpha=0.05)
    assert [v.decision for v in vs] == ["better", "not better", "worse", "better"]
    assert all(v.family_size == 4 and v.correction == "holm" for v in vs)
    np.testing.assert_allclose([v.p_adjusted for v in vs], adjust([v.p_value for v in vs], "holm"))
    assert vs[3].estimate < 0 and vs[3].ci_high < 0 and not vs[3].higher_is_better
    assert [v.better_unadjusted for v in vs] == [True, False, False, True]
    assert not beats_all(vs) and beats_all([vs[0], vs[3]]) and not beats_all([])
    df = verdicts_to_frame(vs)
    assert list(df.columns[:4]) == ["metric", "method", "control", "estimate"] and len(df) == 4
    assert vs[0].to_dict()["decision"] == "better"
    assert verdicts_from_frame(df) == vs
    assert verdicts_from_frame(df.drop(columns=["better_unadjusted", "n_failed"]))[0].metric == "forget"


def test_verdict_needs_ci_and_p_and_carries_direction():
    # tiny p but a CI that includes 0 -> not better
    fake = {"metric": "f", "method": "m", "control": "c", "estimate": 1.0, "ci_low": -0.1, "ci_high": 2.0,
            "p_value": 0.001, "alternative": "greater", "n": 8, "effect_size": 1.0, "test_name": "x"}
    assert verdict_table([fake])[0].decision == "not better"
    assert verdict_table([{**fake, "ci_low": 0.1}])[0].decision == "better"
    # the bootstrap-t interval, where a result has one, must exclude 0 too
    robust = {**fake, "ci_low": 0.1, "robust_ci_low": -0.2, "robust_ci_high": 2.5}
    v = verdict_table([robust])[0]
    assert v.decision == "not better" and not v.better_unadjusted
    # a two-sided result is re-tested one-sided from its diffs, in the direction it was given
    r = paired_difference(np.arange(6) + 1.0, np.zeros(6), alternative="two-sided")
    v = verdict_table([Comparison("f", "m", "c", r, higher_is_better=True)])[0]
    assert v.p_value == pytest.approx(1 / 64) and v.decision == "better"
    with pytest.raises(SpecError):  # two-sided, no direction given, metric unknown to the catalogue
        Comparison("f", "m", "c", r)
    with pytest.raises(SpecError):
        verdict_table([{**fake, "alternative": "two-sided"}])
    # Holm over a family of 3 with 6 seeds: 3 * 1/64 < 0.05 only when every seed favours the method
    rs = [Comparison("f", "m", f"c{i}", paired_difference(np.arange(6) + 1.0, np.zeros(6))) for i in range(3)]
    assert beats_all(verdict_table(rs)) and all(v.decision == "better" for v in verdict_table(rs))


def test_compare_diffs_equals_compare_and_reports_failed_seeds():
    g = np.random.default_rng(2)
    m, c = g.normal(1, 1, 9), g.normal(0, 1, 9)
    a = compare(m, c, metric="model_utility", method="x", control="y")
    b = compare_diffs(m - c, metric="model_utility", method="x", control="y", n_failed=2)
    assert a.result.estimate == pytest.approx(b.result.estimate) and a.result.p_value == b.result.p_value
    assert b.higher_is_better and b.result.n_failed == 2
    assert verdict_table([b])[0].n_failed == 2


def test_non_inferiority_against_the_margin():
    g = np.random.default_rng(4)
    d = g.normal(-0.01, 0.01, 10)  # slightly worse, well within a margin of 0.05
    r = non_inferiority_from_diffs(d, 0.05, higher_is_better=True)
    assert r.non_inferior and r.bound > -0.05 and r.p_value < 0.05
    ref = scipy.stats.ttest_1samp(d, -0.05, alternative="greater").pvalue
    assert r.p_value == pytest.approx(ref)
    assert not non_inferiority_from_diffs(d - 0.06, 0.05).non_inferior
    assert non_inferiority_from_diffs(-d, 0.05, higher_is_better=False).non_inferior


def test_verdict_equivalence_margin():
    g = np.random.default_rng(9)
    c = g.normal(0, 1, 10)
    m = c + g.normal(0, 0.05, 10)
    v = verdict_table([compare(m, c, metric="utility", method="m", control="c")], equivalence_margin={"utility": 0.2})
    assert v[0].decision == "equivalent"
    assert verdict_table([compare(m, c, metric="utility", method="m", control="c")])[0].decision == "not better"


def test_paired_result_to_dict_roundtrip():
    r = paired_difference([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    d = r.to_dict()
    assert d["diffs"] == [1.0, 1.5, 2.0] and PairedResult(**{**d, "diffs": tuple(d["diffs"])}) == r
