"""Monte-Carlo calibration of the verdict rule: FPR within alpha + 3 MC-SE at no effect, high power at a big one."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tueval.stats import beats_all, compare, decide, simulate_arms, simulate_fpr, verdict_table

ALPHA = 0.05


@pytest.mark.parametrize("n_seeds", [6, 8, 12])
def test_false_positive_rate_is_controlled(n_seeds):
    r = simulate_fpr(n_sims=1000, n_seeds=n_seeds, n_controls=3, effect=0.0, alpha=ALPHA, seed=n_seeds)
    assert r["n_sims"] == 1000
    assert r["per_comparison_rate"] <= ALPHA + 3 * r["per_comparison_mc_se"]
    assert r["rate"] <= ALPHA + 3 * max(r["mc_se"], np.sqrt(ALPHA * (1 - ALPHA) / 1000))
    assert r["rate"] <= r["per_comparison_rate"] + 1e-12  # beating all k is rarer than beating one


def test_single_control_fpr_and_power():
    null = simulate_fpr(n_sims=2000, n_seeds=8, n_controls=1, effect=0.0, seed=1)
    assert null["rate"] == null["per_comparison_rate"]  # a family of one
    assert null["rate"] <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / 2000)
    assert null["rate"] > 0  # the rule can fire at all with 8 seeds


def test_power_for_a_big_planted_effect():
    # 3 d_z: below 14 seeds the rule's bootstrap-t interval is a 98% one, which costs power at 8 seeds
    r = simulate_fpr(n_sims=1000, n_seeds=8, n_controls=3, effect=3.0, seed=2)
    assert r["rate"] > 0.8 and r["per_comparison_rate"] > 0.9
    weak = simulate_fpr(n_sims=1000, n_seeds=8, n_controls=3, effect=0.5, seed=2)
    assert weak["rate"] < r["rate"]  # power grows with the effect


def test_simulation_model_moments():
    m, c = simulate_arms(20000, 6, 2, effect=1.0, noise_sd=2.0, correlation=0.5, seed=0)
    assert m.shape == (20000, 6) and c.shape == (20000, 2, 6)
    assert m.mean() == pytest.approx(2.0, abs=0.05) and c.std() == pytest.approx(2.0, rel=0.02)
    r = np.corrcoef(c[:, 0, 0], c[:, 1, 0])[0, 1]
    assert r == pytest.approx(0.5, abs=0.03)
    d = m[:, None, :] - c
    assert (d.mean() / d.std()) == pytest.approx(1.0, rel=0.03)  # at rho = .5 the effect equals d_z


@pytest.mark.parametrize("n_seeds,n_sims", [(6, 40), (10, 8)])
def test_vectorised_rule_equals_verdict_table(n_seeds, n_sims):
    m, c = simulate_arms(n_sims, n_seeds, 3, effect=1.2, seed=5)
    per, beats = decide(m, c, alpha=ALPHA)
    for s in range(n_sims):
        comps = [compare(m[s], c[s, j], metric="f", method="m", control=f"c{j}", alpha=ALPHA) for j in range(3)]
        assert beats[s] == beats_all(verdict_table(comps, alpha=ALPHA, correction="holm"))
        for j in range(3):
            assert per[s, j] == (verdict_table([comps[j]], alpha=ALPHA)[0].decision == "better")
    if n_seeds == 6:
        assert 0 < beats.sum() < n_sims  # the check saw both outcomes


def _calibration_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"
    spec = importlib.util.spec_from_file_location("calibration_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_calibration_script_writes_every_null(tmp_path):
    import pandas as pd

    from tueval.stats.calibration import NULLS

    mod = _calibration_script()
    assert mod.main(["--sims", "15", "--power-sims", "10", "--confirm-sims", "30", "--seeds", "7", "--effects",
                     "1", "--controls", "2", "--out", str(tmp_path)]) == 0
    out = pd.read_csv(tmp_path / "calibration.csv")
    df, conf = out[out["stage"] == "grid"], out[out["stage"] == "confirmation"]
    # every null cell above alpha, and only those, is simulated again with the fresh count
    high = df[(df["effect"] == 0) & (df["rate"] > 0.05)]
    assert sorted(zip(conf["null"], conf["n_controls"])) == sorted(zip(high["null"], high["n_controls"]))
    assert (conf["n_sims"] == 30).all()
    per = df[df["decision"] == "per comparison"]
    pools, _ = mod.empirical_pools(*mod.POOL_FILES)
    labels = {label for label, *_ in mod.null_names(pools)}
    assert set(per["null"]) == labels
    assert {k for k in NULLS if k != "empirical"} <= labels and len(labels) == len(NULLS) - 1 + 2 * len(pools)
    for label in labels:  # one FPR and one power cell per null
        assert sorted(per.loc[per["null"] == label, "effect"]) == [0.0, 1.0]
    assert set(df.loc[df["decision"] == "beats_all", "n_controls"]) == {2}
    assert df["rate"].between(0, 1).all() and (df.loc[df["effect"] == 0, "n_sims"] == 15).all()
    md = (tmp_path / "calibration.md").read_text()
    assert "Command: `python benchmarks/calibration.py --sims 15" in md and "## Reading" in md
    for label in labels:
        assert f"| {label} |" in md


def test_empirical_pools_are_centred_and_standardised():
    mod = _calibration_script()
    pools, info = mod.empirical_pools(*mod.POOL_FILES)
    assert set(pools) == set(mod.POOL_METRICS)  # both tables: one learning rate and matched forgetting
    for m, z in pools.items():
        used = info[(info["metric"] == m) & info["used"]]
        assert z.size == int(used["n"].sum()) > 0
        assert abs(z.mean()) < 1e-12  # each comparison is centred
        # each comparison has sd 1 (ddof 1), so the pooled sum of squares is the count minus one per comparison
        assert np.sum(z ** 2) == pytest.approx(z.size - len(used))


def test_matched_pools_take_only_bracketed_seeds(tmp_path):
    """A not-bracketed seed's worst-rank value is a rule's fill: it never enters the empirical null."""
    mod = _calibration_script()
    rows = [{"objective": "ga", "method": "m", "control": "uniform", "metric": "utility_at_matched_fq", "seed": s,
             "diff": d, "status": st} for s, (d, st) in enumerate([(0.1, "ok"), (0.3, "ok"), (0.2, "ok"),
                                                                    (-9.0, "not bracketed")])]
    f = tmp_path / "matched_diffs.csv"
    pd.DataFrame(rows).to_csv(f, index=False)
    pools, info = mod.empirical_pools(f)
    assert list(pools) == ["utility_at_matched_fq"] and info["n"].tolist() == [3]
    np.testing.assert_allclose(np.sort(pools["utility_at_matched_fq"]), [-1.0, 0.0, 1.0], atol=1e-12)


def test_mirrored_pools_flip_the_skew():
    mod = _calibration_script()
    pools, _ = mod.empirical_pools(mod.POOL_FILE)
    both = mod.with_mirrors(pools)
    for m, z in pools.items():
        np.testing.assert_array_equal(both[f"-{m}"], -z)
        assert mod.pool_label(f"-{m}").endswith("mirrored")
