"""Gradient ascent (GA) and GradDiff: the token-weighted forget NLL, ascended."""
from __future__ import annotations

import torch

from .base import OBJECTIVES, ForwardOut, Objective, weighted_mean


@OBJECTIVES.register("ga")
class GradAscent(Objective):
    """GA: forget = -sum(w * nll) / Z (Z per ``normaliser``); no retain term by default."""

    name = "ga"
    data_parallel = True

    def __init__(self, gamma: float = 1.0, alpha: float = 0.0, retain_loss: str = "none",
                 normaliser: str = "weight_sum", kl_positions: str = "all"):
        super().__init__(gamma, alpha, retain_loss, normaliser, kl_positions)

    def forget_term(self, out: ForwardOut, batch, weights: torch.Tensor, ref_out=None, model=None, ref_model=None):
        """Negative weighted mean NLL of the forget answer tokens."""
        nll = weighted_mean(-out.logp, weights, batch.answer_mask, self.normaliser)
        return -nll, {"weighted_nll": nll}


@OBJECTIVES.register("graddiff")
class GradDiff(GradAscent):
    """GradDiff: gamma * GA forget term + alpha * retain (token-mean NLL, or KL(pi_ref||pi_theta) with
    ``retain_loss='kl'``)."""

    name = "graddiff"

    def __init__(self, gamma: float = 1.0, alpha: float = 1.0, retain_loss: str = "nll",
                 normaliser: str = "weight_sum", kl_positions: str = "all"):
        super().__init__(gamma, alpha, retain_loss, normaliser, kl_positions)
