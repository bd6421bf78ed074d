"""Functional cores of the analyses: alignment with ground truth, input interventions, gradient SNR, sanity checks.

Every module declares its metrics as ``MetricInfo`` constants (name, direction, chance level) in ``METRICS``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MetricInfo:
    """Metadata of one metric: its name, direction, chance level and value range.

    ``chance`` is a number, the name of the column that holds the per-example chance level (e.g. ``"ap_chance"``),
    or None when there is no closed form (use a permutation null instead)."""

    name: str
    higher_is_better: bool | None
    chance: float | str | None
    range: tuple[float, float]
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# Submodules import MetricInfo from here, so these imports come after its definition.
from .alignment import (  # noqa: E402
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
from .intervention import (  # noqa: E402
    METRICS as INTERVENTION_METRICS,
    OPERATORS,
    InterventionResult,
    PerturbationSpec,
    answer_logprob,
    perturbation_curves,
)
from .sanity import (  # noqa: E402
    cascading_randomisation,
    heuristic_scores,
    masked_spearman,
    score_shift,
    token_counts_from_ids,
)
from .snr import (  # noqa: E402
    METRICS as SNR_METRICS,
    per_example_grads,
    per_example_grads_loop,
    reference_direction,
    select_params,
    snr_from_grads,
    snr_report,
)

__all__ = [
    "MetricInfo", "ALIGNMENT_METRICS", "INTERVENTION_METRICS", "SNR_METRICS",
    "alignment_metrics", "alignment_per_label", "alignment_table", "average_precision", "average_precision_chance",
    "gt_permutation_null", "masked_ranks", "precision_recall_f1_at_k", "roc_auc", "summarise_alignment",
    "OPERATORS", "InterventionResult", "PerturbationSpec", "answer_logprob", "perturbation_curves",
    "cascading_randomisation", "heuristic_scores", "masked_spearman", "score_shift", "token_counts_from_ids",
    "per_example_grads", "per_example_grads_loop", "reference_direction", "select_params", "snr_from_grads",
    "snr_report",
]
