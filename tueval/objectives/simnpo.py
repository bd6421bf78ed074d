"""SimNPO with token weights: the length-normalised NLL becomes sum(w*nll)/sum(w) per sequence."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .base import OBJECTIVES, ForwardOut, Objective, batch_mean, masked_sum


@OBJECTIVES.register("simnpo")
class SimNPO(Objective):
    """SimNPO: a_i = sum_t w nll / sum_t w; forget = -(2/beta) mean_i log sigmoid(beta (a_i - delta)).
    Defaults beta 4.5, delta 0, gamma 0.125, alpha 1 (open-unlearning). No reference model."""

    name = "simnpo"
    data_parallel = True

    def __init__(self, beta: float = 4.5, delta: float = 0.0, gamma: float = 0.125, alpha: float = 1.0,
                 retain_loss: str = "nll", normaliser: str = "weight_sum", kl_positions: str = "all"):
        self.beta, self.delta = beta, delta
        super().__init__(gamma, alpha, retain_loss, normaliser, kl_positions)
        if beta <= 0:
            raise SpecError(f"objective 'simnpo': beta must be > 0, got {beta}")

    def forget_term(self, out: ForwardOut, batch, weights: torch.Tensor, ref_out=None, model=None, ref_model=None):
        """SimNPO forget term on per-sequence weighted mean NLLs (sequences with zero total weight give a constant)."""
        wsum = weights.sum(-1)
        a = masked_sum(-out.logp, weights) / wsum.clamp_min(1e-12)
        loss = -(2.0 / self.beta) * batch_mean(F.logsigmoid(self.beta * (a - self.delta)))
        return loss, {"seq_mean_nll": batch_mean(a)}
