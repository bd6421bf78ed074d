"""Statistics: seed-paired CIs (t, bootstrap-t) and exact sign-flip tests, d_z with its CI, example-unit
comparisons with a crossed (seeds x examples) bootstrap, Holm/BH, TOST and non-inferiority, power, rliable
aggregates, verdicts (Holm labels, intersection-union "beats every control") and their Monte-Carlo calibration."""
from tueval.stats.aggregate import (IntervalEstimate, aggregate_mean, aggregate_median, iqm, optimality_gap,
                                    probability_of_improvement, probability_of_improvement_ci,
                                    stratified_bootstrap_ci)
from tueval.stats.calibration import decide, decide_diffs, simulate_arms, simulate_fpr, simulate_power
from tueval.stats.crossed import (crossed_bootstrap, crossed_summary, paired_matrix, per_seed_means,
                                  unit_comparison, value_matrix, verdicts_frame, vs_control)
from tueval.stats.equivalence import (EquivalenceResult, NonInferiorityResult, equivalence_from_diffs,
                                     equivalence_test, non_inferiority_from_diffs)
from tueval.stats.multiple import adjust, adjust_batch
from tueval.stats.paired import (T_MAX_N, PairedResult, bca_interval, bootstrap_t_interval, dz_interval,
                                 effect_size_dz, group_ci, paired_difference, paired_from_diffs, paired_t,
                                 sign_flip_pvalue, t_interval)
from tueval.stats.power import min_seeds_for_exact, power_paired, seeds_needed
from tueval.stats.verdict import (Comparison, Verdict, beats_all, better_alternative, compare, compare_diffs,
                                  direction_of, verdict_table, verdicts_from_frame, verdicts_to_frame)

__all__ = [
    "IntervalEstimate", "aggregate_mean", "aggregate_median", "iqm", "optimality_gap", "probability_of_improvement",
    "probability_of_improvement_ci", "stratified_bootstrap_ci",
    "bca_interval", "crossed_bootstrap", "crossed_summary", "paired_matrix", "per_seed_means", "unit_comparison",
    "value_matrix", "verdicts_frame", "vs_control",
    "decide", "decide_diffs", "simulate_arms", "simulate_fpr", "simulate_power",
    "EquivalenceResult", "NonInferiorityResult", "equivalence_from_diffs", "equivalence_test",
    "non_inferiority_from_diffs",
    "adjust", "adjust_batch",
    "T_MAX_N", "PairedResult", "bootstrap_t_interval", "dz_interval", "effect_size_dz", "group_ci",
    "paired_difference", "paired_from_diffs", "paired_t", "sign_flip_pvalue", "t_interval",
    "min_seeds_for_exact", "power_paired", "seeds_needed",
    "Comparison", "Verdict", "beats_all", "better_alternative", "compare", "compare_diffs", "direction_of",
    "verdict_table", "verdicts_from_frame", "verdicts_to_frame",
]
