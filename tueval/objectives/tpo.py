"""TIF's Targeted Preference Optimisation: a logit-preference loss on unwanted tokens (weight > 0) and a
preservation loss (per-sequence summed CE) on general answer tokens (weight 0)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .base import OBJECTIVES, ForwardOut, Objective, gt_logits, masked_sum

#: the recorded reduction of TPO's terms (per sequence, then the batch mean)
PER_SEQUENCE = "per_sequence"


@OBJECTIVES.register("tpo")
class TPO(Objective):
    """TPO. zeta_i = sum_t w z_t[y_t] / sum_t w over unwanted tokens (RAW ground-truth logits; with binary
    weights = the mean over U_i); LPL = -(2/beta) log sigmoid(beta * mean_i(zeta_ref_i - zeta_i))
    (``tpo_batchmean=True``, TIF's code) or the mean of per-sample terms (False); sequences with no unwanted
    token are left out of the LPL. PL = mean_i sum_{t in G_i} nll (G = answer tokens with weight 0).
    forget = LPL + pl_weight * PL; retain term off by default (``retain_loss='nll'`` = TIF's tpo_grad_diff).
    ``normaliser`` is recorded as ``per_sequence``: both terms reduce per sequence, no normaliser applies."""

    name = "tpo"
    needs_ref = True
    ref_tokens = "gt_logit"

    def __init__(self, beta: float = 0.2, tpo_batchmean: bool = True, pl_weight: float = 1.0, gamma: float = 1.0,
                 alpha: float = 1.0, retain_loss: str = "none", normaliser: str = "weight_sum",
                 kl_positions: str = "all"):
        self.beta, self.tpo_batchmean, self.pl_weight = beta, tpo_batchmean, pl_weight
        super().__init__(gamma, alpha, retain_loss, normaliser if normaliser != PER_SEQUENCE else "weight_sum",
                         kl_positions)
        if beta <= 0:
            raise SpecError(f"objective 'tpo': beta must be > 0, got {beta}")
        # both terms reduce per sequence (LPL: weighted mean logit, PL: summed NLL): no normaliser applies
        self.normaliser = PER_SEQUENCE

    def forget_term(self, out: ForwardOut, batch, weights: torch.Tensor, ref_out: ForwardOut | None = None,
                    model=None, ref_model=None):
        """LPL on unwanted tokens + pl_weight * preservation loss on general tokens."""
        wsum = weights.sum(-1)
        has_u = wsum > 0
        z = gt_logits(out.logits, batch.input_ids)
        z_ref = ref_out.gt_logit if getattr(ref_out, "gt_logit", None) is not None \
            else gt_logits(ref_out.logits.detach(), batch.input_ids)
        zeta = masked_sum(z, weights) / wsum.clamp_min(1e-12)
        zeta_ref = masked_sum(z_ref, weights) / wsum.clamp_min(1e-12)
        diff = (zeta_ref - zeta)[has_u]
        if diff.numel() == 0:
            lpl = zeta.sum() * 0.0
        elif self.tpo_batchmean:
            lpl = -(2.0 / self.beta) * F.logsigmoid(self.beta * diff.mean())
        else:
            lpl = (-(2.0 / self.beta) * F.logsigmoid(self.beta * diff)).mean()
        general = (batch.answer_mask & (weights == 0)).float()
        pl = masked_sum(-out.logp, general).mean()
        return lpl + self.pl_weight * pl, {"lpl": lpl, "pl": pl, "logit_gap": (zeta_ref - zeta).mean()}
