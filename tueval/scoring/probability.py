"""Probability-based token weights of the current (detached) model: WGA, SatImp, TNPO (methods.md §7.1-7.2).
Dynamic; use with WeightingSpec(mode='none') for the papers' form (token mean of w * nll)."""
from __future__ import annotations

import torch

from .base import SCORERS, Scorer, ScoringContext, current_outputs, on_answers, require


class _ProbScorer(Scorer):
    static = False

    @property
    def cost(self) -> float:  # type: ignore[override]
        return 1.0

    def probs(self, model, batch, context: ScoringContext | None) -> torch.Tensor:
        """sg(p) of the ground-truth token, [B, T]."""
        return current_outputs(model, batch, context).logp.exp()


@SCORERS.register("wga")
class WGAScorer(_ProbScorer):
    """WGA: w = sg(p)^beta (beta 1, open-unlearning default; G-effect code uses 5)."""

    name = "wga"

    def __init__(self, beta: float = 1.0):
        self.beta = beta

    def score(self, model, batch, context: ScoringContext | None = None):
        """p^beta on answer tokens."""
        return on_answers(self.probs(model, batch, context) ** self.beta, batch.answer_mask)


@SCORERS.register("satimp")
class SatImpScorer(_ProbScorer):
    """SatImp: w = sg(p)^beta1 * (1 - sg(p))^beta2 (beta1 5, beta2 1; open-unlearning defaults)."""

    name = "satimp"

    def __init__(self, beta1: float = 5.0, beta2: float = 1.0):
        self.beta1, self.beta2 = beta1, beta2

    def score(self, model, batch, context: ScoringContext | None = None):
        """p^beta1 (1-p)^beta2 on answer tokens."""
        p = self.probs(model, batch, context)
        return on_answers(p ** self.beta1 * (1 - p) ** self.beta2, batch.answer_mask)


@SCORERS.register("tnpo")
class TNPOScorer(_ProbScorer):
    """TNPO: w = 2 p^beta / (p^beta + p_ref^beta + 1e-5) (beta 4); needs ``context.ref_model``
    (+1 no-grad reference forward per call)."""

    name = "tnpo"
    needs_ref_model = True

    def __init__(self, beta: float = 4.0):
        self.beta = beta

    @property
    def cost(self) -> float:  # type: ignore[override]
        return 2.0

    def score(self, model, batch, context: ScoringContext | None = None):
        """The token-wise NPO gradient weight on answer tokens."""
        ref = require(context.ref_model if context else None, "context.ref_model", self.name)
        p = self.probs(model, batch, context) ** self.beta
        p_ref = current_outputs(ref, batch, None).logp.exp() ** self.beta
        return on_answers(2 * p / (p + p_ref + 1e-5), batch.answer_mask)
