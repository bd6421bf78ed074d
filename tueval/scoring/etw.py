"""ETW (methods.md §4): predictive entropy of the detached model at temperature T; with soft weighting the
weights are n_i * H / sum_j H (mean 1 per sequence; uniform when the entropies sum to 0)."""
from __future__ import annotations

from ..errors import SpecError
from ..tokens import token_entropy
from .base import SCORERS, Scorer, ScoringContext, current_outputs, on_answers


@SCORERS.register("etw")
class ETWScorer(Scorer):
    """Entropy (nats) of sg(current model) at ``temperature`` (default 1). Dynamic; free when the engine passes
    ``context.outputs`` (else one no-grad forward). Use with WeightingSpec(mode='soft')."""

    name = "etw"
    static = False

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature
        if temperature <= 0:
            raise SpecError(f"scorer '{self.name}': temperature must be > 0, got {temperature}")

    @property
    def cost(self) -> float:  # type: ignore[override]
        return 1.0

    def score(self, model, batch, context: ScoringContext | None = None):
        """Entropy per answer token, [B, T]."""
        out = current_outputs(model, batch, context)
        return on_answers(token_entropy(out.logits, self.temperature), batch.answer_mask)


@SCORERS.register("etw_static")
class ETWStaticScorer(ETWScorer):
    """ETW with the entropy computed once on the reference model (static; methods.md §4 option)."""

    name = "etw_static"
    static = True
