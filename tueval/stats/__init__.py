"""Statistics: seed-paired CIs and exact tests, example-unit comparisons with a crossed (seeds x examples)
bootstrap, Holm/BH, TOST, power, rliable aggregates, verdicts and their Monte-Carlo calibration."""
from tueval.stats.aggregate import (IntervalEstimate, aggregate_mean, aggregate_median, iqm, optimality_gap,
                                    probability_of_improvement, probability_of_improvement_ci,
                                    stratified_bootstrap_ci)
from tueval.stats.calibration import decide, simulate_arms, simulate_fpr, simulate_power
from tueval.stats.crossed import (crossed_bootstrap, crossed_summary, paired_matrix, per_seed_means,
                                  unit_comparison, value_matrix, verdicts_frame, vs_control)
from tueval.stats.equivalence import EquivalenceResult, equivalence_from_diffs, equivalence_test
from tueval.stats.multiple import adjust, adjust_batch
from tueval.stats.paired import (PairedResult, bca_interval, effect_size_dz, group_ci, paired_difference,
                                 paired_from_diffs, paired_t, sign_flip_pvalue, t_interval)
from tueval.stats.power import min_seeds_for_exact, power_paired, seeds_needed
from tueval.stats.verdict import (Comparison, Verdict, beats_all, better_alternative, compare, verdict_table,
                                  verdicts_from_frame, verdicts_to_frame)

__all__ = [
    "IntervalEstimate", "aggregate_mean", "aggregate_median", "iqm", "optimality_gap", "probability_of_improvement",
    "probability_of_improvement_ci", "stratified_bootstrap_ci",
    "bca_interval", "crossed_bootstrap", "crossed_summary", "paired_matrix", "per_seed_means", "unit_comparison",
    "value_matrix", "verdicts_frame", "vs_control",
    "decide", "simulate_arms", "simulate_fpr", "simulate_power",
    "EquivalenceResult", "equivalence_from_diffs", "equivalence_test",
    "adjust", "adjust_batch",
    "PairedResult", "effect_size_dz", "group_ci", "paired_difference", "paired_from_diffs", "paired_t",
    "sign_flip_pvalue", "t_interval",
    "min_seeds_for_exact", "power_paired", "seeds_needed",
    "Comparison", "Verdict", "beats_all", "better_alternative", "compare", "verdict_table", "verdicts_from_frame",
    "verdicts_to_frame",
]
