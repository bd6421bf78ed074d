"""Functional cores of the analyses: alignment with ground truth, input interventions, gradient SNR, sanity checks.

Each module exposes its metrics (name, direction, label, chance level) as ``METRICS``, read from the one
catalogue in ``tueval.metrics.catalogue``.
"""
from __future__ import annotations

from .catalogue import METRICS as CATALOGUE, Metric
from .alignment import (
    METRICS as ALIGNMENT_METRICS,
    alignment_metrics,
    alignment_per_label,
    alignment_table,
    average_precision,
    average_precision_chance,
    gt_permutation_null,
    masked_ranks,
    precision_recall_f1_at_k,
    roc_auc,
    summarise_alignment,
)
from .intervention import (
    METRICS as INTERVENTION_METRICS,
    OPERATORS,
    InterventionResult,
    PerturbationSpec,
    answer_logprob,
    perturbation_curves,
)
from .sanity import (
    cascading_randomisation,
    heuristic_scores,
    masked_spearman,
    score_shift,
    token_counts_from_ids,
)
from .snr import (
    METRICS as SNR_METRICS,
    per_example_grads,
    per_example_grads_loop,
    reference_direction,
    select_params,
    snr_from_grads,
    snr_report,
)

__all__ = [
    "CATALOGUE", "Metric", "ALIGNMENT_METRICS", "INTERVENTION_METRICS", "SNR_METRICS",
    "alignment_metrics", "alignment_per_label", "alignment_table", "average_precision", "average_precision_chance",
    "gt_permutation_null", "masked_ranks", "precision_recall_f1_at_k", "roc_auc", "summarise_alignment",
    "OPERATORS", "InterventionResult", "PerturbationSpec", "answer_logprob", "perturbation_curves",
    "cascading_randomisation", "heuristic_scores", "masked_spearman", "score_shift", "token_counts_from_ids",
    "per_example_grads", "per_example_grads_loop", "reference_direction", "select_params", "snr_from_grads",
    "snr_report",
]
