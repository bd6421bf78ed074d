"""NPO with token weights inside the sequence log-ratio sums (default) or token-wise sigmoids (``form='tnpo'``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .base import OBJECTIVES, ForwardOut, Objective, batch_mean, masked_sum, weighted_mean

NPO_FORMS = ("masked_sum", "tnpo")
#: the recorded reduction of the masked-sum form (per-sequence sums, no normaliser)
SEQUENCE_SUM = "sequence_sum"


@OBJECTIVES.register("npo")
class NPO(Objective):
    """NPO: r_i = sum_t w_it (log p_theta - log p_ref); forget = -(2/beta) mean_i log sigmoid(-beta r_i) (no
    normaliser: ``normaliser`` is recorded as ``sequence_sum``). ``form='tnpo'``: forget = -(2/beta) sum_it w_it
    log sigmoid(-beta (log p_theta - log p_ref)_it) / Z with Z per ``normaliser``."""

    name = "npo"
    data_parallel = True
    needs_ref = True
    ref_tokens = "logp"

    def __init__(self, beta: float = 0.1, form: str = "masked_sum", gamma: float = 1.0, alpha: float = 1.0,
                 retain_loss: str = "nll", normaliser: str = "weight_sum", kl_positions: str = "all"):
        self.beta, self.form = beta, form
        super().__init__(gamma, alpha, retain_loss, normaliser if normaliser != SEQUENCE_SUM else "weight_sum",
                         kl_positions)
        if form not in NPO_FORMS:
            raise SpecError(f"objective 'npo': form '{form}' is not one of {', '.join(NPO_FORMS)}")
        if beta <= 0:
            raise SpecError(f"objective 'npo': beta must be > 0, got {beta}")
        if form == "masked_sum":
            # the log-ratios are sequence sums (NPO's definition): no normaliser applies, and the record says so
            self.normaliser = SEQUENCE_SUM
        elif normaliser == SEQUENCE_SUM:
            raise SpecError("objective 'npo': normaliser 'sequence_sum' belongs to form 'masked_sum'; form 'tnpo' "
                            "takes weight_sum or tokens")

    def forget_term(self, out: ForwardOut, batch, weights: torch.Tensor, ref_out: ForwardOut | None = None,
                    model=None, ref_model=None):
        """NPO forget term on the (token-weighted) log-ratio to the reference."""
        ratio = out.logp - ref_out.logp.detach()
        if self.form == "masked_sum":
            r = masked_sum(ratio, weights)
            loss = -(2.0 / self.beta) * batch_mean(F.logsigmoid(-self.beta * r))
            return loss, {"log_ratio": batch_mean(r)}
        tok = -(2.0 / self.beta) * F.logsigmoid(-self.beta * ratio)
        loss = weighted_mean(tok, weights, batch.answer_mask, self.normaliser)
        return loss, {"log_ratio": batch_mean(masked_sum(ratio, weights))}
