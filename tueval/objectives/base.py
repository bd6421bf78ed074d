"""Shared pieces of every unlearning objective: one forward -> per-token quantities, weighted reductions,
retain terms, the ``Objective`` base class and the ``OBJECTIVES`` registry.

Sign convention: ``LossOutput.forget`` is the forget term that is *minimised* (for GA it is the negative
weighted NLL), ``LossOutput.total = gamma * forget + alpha * retain``.
Weights are [B, T], aligned with input positions, zero outside ``answer_mask``; ``None`` means uniform.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..distributed import batch_mean, global_sum  # noqa: F401 - batch_mean re-exported for the objectives
from ..errors import SpecError
from ..forward import ForwardOut, model_device, model_forward, position_ids_for  # noqa: F401 - re-exported
from ..params import Configurable
from ..registry import Registry

OBJECTIVES: Registry = Registry("objective", "tueval.objectives")
RETAIN_LOSSES = ("nll", "kl", "none")
NORMALISERS = ("weight_sum", "tokens")
#: positions the KL retain term averages over: ``all`` = every one of the B*T positions of the retain batch,
#: padding and prompt included (open-unlearning's ``batchmean`` over the flattened logits); ``answer`` = the
#: positions predicting answer tokens
KL_POSITIONS = ("all", "answer")


def gt_logits(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Raw (pre-softmax) logit of the ground-truth token t at every position t ([B,T]; position 0 = 0)."""
    z = logits[:, :-1].float().gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return F.pad(z, (1, 0))


def uniform_weights(answer_mask: torch.Tensor) -> torch.Tensor:
    """Weight 1 on every answer token, 0 elsewhere."""
    return answer_mask.float()


def check_weights(weights: torch.Tensor | None, batch) -> torch.Tensor:
    """Validate [B,T] weights (None -> uniform) and zero them outside the answer mask."""
    mask = batch.answer_mask
    if weights is None:
        return uniform_weights(mask)
    if not torch.is_tensor(weights) or tuple(weights.shape) != tuple(mask.shape):
        got = tuple(weights.shape) if torch.is_tensor(weights) else type(weights).__name__
        raise SpecError(f"weights must be a tensor of shape {tuple(mask.shape)} (= forget batch [B, T]); got {got}")
    w = weights.detach().to(mask.device, torch.float32)
    return torch.where(mask, w, torch.zeros_like(w))


def masked_sum(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-sequence sum of ``weights * x`` ([B]); positions with weight 0 contribute exactly 0 (also to grads)."""
    return torch.where(weights != 0, weights * x, torch.zeros_like(x)).sum(-1)


def weighted_mean(x: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor, normaliser: str) -> torch.Tensor:
    """Batch reduction ``sum(w * x) / Z`` with Z = sum(w) (``weight_sum``) or the number of answer tokens
    (``tokens``); 0 when Z is 0. Both sums run over the global batch when it is split over processes."""
    num = global_sum(masked_sum(x, weights).sum())
    if normaliser == "weight_sum":
        z = global_sum(weights.sum())
    elif normaliser == "tokens":
        z = global_sum(answer_mask.sum().to(x.dtype))
    else:
        raise SpecError(f"unknown normaliser '{normaliser}'. Valid names: {', '.join(NORMALISERS)}")
    return num / z.clamp_min(1e-12) if float(z) > 0 else num * 0.0


def nll_token_mean(out: ForwardOut, batch) -> torch.Tensor:
    """Token-mean NLL over answer tokens (what HF ``outputs.loss`` returns)."""
    m = batch.answer_mask
    return -global_sum((out.logp * m).sum()) / global_sum(m.sum()).clamp_min(1)


def kl_ref_to_model(out: ForwardOut, ref_out: ForwardOut, batch, positions: str = "answer") -> torch.Tensor:
    """KL(pi_ref || pi_theta) summed over the vocabulary, averaged over the ``positions`` of ``batch`` (see
    ``KL_POSITIONS``: ``all`` B*T positions, or the ``answer`` positions)."""
    if positions == "all":
        lp = torch.log_softmax(out.logits.float(), -1)
        lq = torch.log_softmax(ref_out.logits.float(), -1)
        kl_all = (lq.exp() * (lq - lp)).sum(-1)
        return global_sum(kl_all.sum()) / global_sum(torch.tensor(float(kl_all.numel()), device=kl_all.device))
    if positions != "answer":
        raise SpecError(f"KL positions '{positions}' is not one of {', '.join(KL_POSITIONS)}")
    lp = torch.log_softmax(out.logits[:, :-1].float(), -1)
    lq = torch.log_softmax(ref_out.logits[:, :-1].float(), -1)
    kl = (lq.exp() * (lq - lp)).sum(-1)
    m = batch.answer_mask[:, 1:]
    return global_sum((kl * m).sum()) / global_sum(m.sum()).clamp_min(1)


def sequence_weighted_mean(x: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor,
                           normaliser: str) -> torch.Tensor:
    """Per sequence ``sum_t w x / Z_i`` (Z_i = the sequence's weight sum, or its answer-token count with
    ``tokens``), then the mean over the sequences with Z_i > 0 (0 when there is none)."""
    num = masked_sum(x, weights)
    if normaliser == "weight_sum":
        z = weights.sum(-1)
    elif normaliser == "tokens":
        z = answer_mask.sum(-1).to(x.dtype)
    else:
        raise SpecError(f"unknown normaliser '{normaliser}'. Valid names: {', '.join(NORMALISERS)}")
    ok = z > 0
    return (num[ok] / z[ok]).mean() if bool(ok.any()) else num.sum() * 0.0


@dataclass
class LossOutput:
    """An objective's value: ``total`` (to minimise), its ``forget`` and ``retain`` terms, and detached
    diagnostics in ``extras`` (e.g. ``mean_weight``, ``forget_nll``)."""

    total: torch.Tensor
    forget: torch.Tensor
    retain: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective(Configurable):
    """Base class: ``__init__`` only stores settings; ``__call__`` computes a LossOutput from one policy forward
    on the forget batch (plus a no-grad reference forward when ``needs_ref`` and a retain forward when used).

    Settings shared by all: ``gamma`` (forget coefficient), ``alpha`` (retain coefficient), ``retain_loss``
    (``nll`` token-mean NLL | ``kl`` KL(pi_ref||pi_theta) | ``none``), ``normaliser`` (Z of weighted token
    means: ``weight_sum`` | ``tokens``; objectives whose forget term reduces per sequence record their own
    reduction instead), ``kl_positions`` (the positions the KL retain term averages over, ``KL_POSITIONS``;
    recorded only with ``retain_loss='kl'``, where it has an effect).

    ``data_parallel``: every batch reduction of the objective is global (``weighted_mean``, ``batch_mean``,
    ``global_sum``), so the batch may be split over processes (``tueval.distributed``). ``ref_tokens``: the one
    per-token value of the reference's forward on the forget batch that the forget term reads (``logp`` or
    ``gt_logit``, ``tueval.ref_tokens``), which the engine then computes once per run; None: the whole forward,
    every step."""

    name: ClassVar[str] = ""
    data_parallel: ClassVar[bool] = False
    needs_ref: ClassVar[bool] = False
    ref_tokens: ClassVar[str | None] = None
    needs_hidden: ClassVar[bool] = False

    def __init__(self, gamma: float = 1.0, alpha: float = 1.0, retain_loss: str = "nll",
                 normaliser: str = "weight_sum", kl_positions: str = "all"):
        self.gamma, self.alpha, self.retain_loss, self.normaliser = gamma, alpha, retain_loss, normaliser
        self.kl_positions = kl_positions
        self._validate()

    def get_params(self) -> dict[str, Any]:
        """Every setting that has an effect (``kl_positions`` only with the KL retain term)."""
        p = super().get_params()
        if self.retain_loss != "kl":
            p.pop("kl_positions", None)
        return p

    # ---- settings ----------------------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.retain_loss not in RETAIN_LOSSES:
            raise SpecError(f"objective '{self.name}': retain_loss '{self.retain_loss}' is not one of "
                            f"{', '.join(RETAIN_LOSSES)}")
        if self.normaliser not in NORMALISERS:
            raise SpecError(f"objective '{self.name}': normaliser '{self.normaliser}' is not one of "
                            f"{', '.join(NORMALISERS)}")
        if self.kl_positions not in KL_POSITIONS:
            raise SpecError(f"objective '{self.name}': kl_positions '{self.kl_positions}' is not one of "
                            f"{', '.join(KL_POSITIONS)}")

    def trainable_parameters(self, model) -> list | None:
        """The parameters this objective updates (None: all); the engine freezes every other one."""
        return None

    def prepare_batch(self, batch, tokenizer, generator: torch.Generator | None = None):
        """The forget batch with whatever this objective needs attached (default: unchanged)."""
        return batch

    @property
    def needs_retain(self) -> bool:
        """Whether a retain batch is required."""
        return self.retain_loss != "none" and self.alpha != 0

    @property
    def needs_ref_model(self) -> bool:
        """Whether a frozen reference model is required (forget term or KL retain term)."""
        return self.needs_ref or (self.needs_retain and self.retain_loss == "kl")

    # ---- computation ----------------------------------------------------------------------------------
    def forget_term(self, out: ForwardOut, batch, weights: torch.Tensor, ref_out: ForwardOut | None,
                    model=None, ref_model=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The forget term (minimised) and diagnostics; subclasses implement."""
        raise NotImplementedError

    def retain_term(self, model, retain_batch, ref_model=None) -> torch.Tensor:
        """The retain term on ``retain_batch`` (one policy forward, plus a no-grad ref forward for KL)."""
        if not self.needs_retain:
            return torch.zeros((), device=model_device(model))
        if retain_batch is None:
            raise SpecError(f"objective '{self.name}' with retain_loss='{self.retain_loss}' needs a retain batch")
        out = model_forward(model, retain_batch)
        if self.retain_loss == "nll":
            return nll_token_mean(out, retain_batch)
        if ref_model is None:
            raise SpecError(f"objective '{self.name}' with retain_loss='kl' needs ref_model")
        with torch.no_grad():
            ref = model_forward(ref_model, retain_batch)
        return kl_ref_to_model(out, ref, retain_batch, self.kl_positions)

    def __call__(self, model, forget_batch, retain_batch=None, weights: torch.Tensor | None = None, ref_model=None,
                 *, forget_out: ForwardOut | None = None, ref_out: ForwardOut | None = None,
                 compute_retain: bool = True) -> LossOutput:
        """Compute the loss. ``forget_out``: a policy forward on the forget batch already done by the caller
        (reused, no second forward); ``ref_out``: a cached no-grad reference forward on the forget batch (or the
        ``RefTokens`` of the batch, for an objective that declares ``ref_tokens``);
        ``compute_retain=False``: skip the retain term (retain = 0, total = gamma * forget; no retain batch)."""
        w = check_weights(weights, forget_batch)
        if forget_out is None:
            forget_out = model_forward(model, forget_batch, hidden=self.needs_hidden)
        if self.needs_ref and ref_out is None:
            if ref_model is None:
                raise SpecError(f"objective '{self.name}' needs ref_model (a frozen copy of the model before "
                                "unlearning)")
            with torch.no_grad():
                ref_out = model_forward(ref_model, forget_batch)
        forget, extras = self.forget_term(forget_out, forget_batch, w, ref_out, model=model, ref_model=ref_model)
        retain = (self.retain_term(model, retain_batch, ref_model) if compute_retain
                  else torch.zeros((), device=forget.device))
        total = self.gamma * forget + self.alpha * retain
        m = forget_batch.answer_mask
        n_answer = global_sum(m.sum()).clamp_min(1)
        base = {"mean_weight": (global_sum(w.sum()) / n_answer).detach(),
                "weight_sum": global_sum(w.sum()).detach(),
                "frac_weighted": (global_sum((w > 0).sum()) / n_answer).float().detach(),
                "forget_nll": (-global_sum((forget_out.logp.detach() * m).sum()) / n_answer)}
        base.update({k: v.detach() for k, v in extras.items()})
        return LossOutput(total=total, forget=forget, retain=retain, extras=base)


def make_objective(name: str, params: dict[str, Any] | None = None) -> Objective:
    """Build the objective ``name`` with ``params``; unknown names or settings raise SpecError."""
    return OBJECTIVES.build(name, params, Objective)
