"""Power and sample size for paired-by-seed comparisons, and the floor set by an exact sign-flip test."""
from __future__ import annotations

import math

from statsmodels.stats.power import TTestPower

_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def _alt(alternative: str) -> str:
    if alternative not in _ALT:
        raise ValueError(f"alternative must be one of {tuple(_ALT)}, got {alternative!r}")
    return _ALT[alternative]


def power_paired(effect_size_dz: float, n: int, alpha: float = 0.05, alternative: str = "two-sided") -> float:
    """Power of the paired t-test with n seeds at standardised effect d_z (statsmodels TTestPower)."""
    return float(TTestPower().power(effect_size=effect_size_dz, nobs=n, alpha=alpha, alternative=_alt(alternative)))


def min_seeds_for_exact(alpha: float = 0.05, alternative: str = "two-sided", family_size: int = 1) -> int:
    """Fewest seeds for which an exact sign-flip test can give p < alpha / family_size at all.

    The smallest attainable p with n seeds is 1/2**n one-sided and 2/2**n two-sided; under Holm every member of
    a family of k tests must reach p < alpha/k for all of them to be rejected together.
    """
    _alt(alternative)
    if not 0 < alpha < 1 or family_size < 1:
        raise ValueError(f"need 0 < alpha < 1 and family_size >= 1, got {alpha}, {family_size}")
    tails = 2 if alternative == "two-sided" else 1
    n = 1
    while tails * family_size / 2 ** n >= alpha:
        n += 1
    return n


def seeds_needed(effect_size_dz: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided",
                 exact_test: bool = False, family_size: int = 1) -> int:
    """Seeds (pairs) needed to reach ``power`` at effect d_z (TTestPower.solve_power, rounded up, at least 2).

    With ``exact_test`` the answer is raised to ``min_seeds_for_exact`` so the planned sign-flip test can reject.
    ``family_size`` plans conservatively at Bonferroni alpha/k (the level Holm's first step demands).
    """
    if effect_size_dz == 0:
        raise ValueError("no finite number of seeds detects an effect of 0")
    a = alpha / family_size
    es = abs(effect_size_dz) if alternative == "two-sided" else effect_size_dz
    n = TTestPower().solve_power(effect_size=es, nobs=None, alpha=a, power=power, alternative=_alt(alternative))
    n = max(2, math.ceil(float(n) - 1e-9))
    if exact_test:
        n = max(n, min_seeds_for_exact(alpha, alternative, family_size))
    return n
