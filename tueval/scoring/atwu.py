"""ATWU (methods.md §3, the prototype verified in code): a linear scorer on detached last hidden states,
s_t = sigmoid(u^T h_t + b) (u, b zero-initialised), normalised within each sequence over answer tokens
(softmax of s by default, so weights sum to 1 per sequence). ``update`` ascends the weighted forget NLL
F = sum_it w_it * nll_it / N (N = answer tokens in the batch) in (u, b) every ``every`` steps with
SGD(lr 0.1, momentum 0.9, weight decay 1e-4), gradient clipping at 1.0 and linear LR decay to 0 over the run
(``lr_decay='linear'``; the engine passes the run's length through ``set_run_steps``, ``total_steps`` overrides
it). These are the prototype's settings, tuned for 7B hidden states; the ``atwu`` preset holds the values
measured for the tiny models (benchmarks/atwu.md).

``atwu_sat`` multiplies the weights by sg(p_t)^beta1 (SatImp saturation, beta1 = 5), in scoring and in the
scorer's own objective. Prototype-faithful use: WeightingSpec(mode='none') with GradDiff (token-mean of w*nll);
mode='soft' rescales the weights to mean 1 per sequence instead (ETW's convention).
Hidden states: taken from ``context.outputs.hidden`` / the ``outputs`` argument when the engine passes them
(free), else one no-grad forward with output_hidden_states per call (cost 1).
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import SpecError
from .base import SCORERS, Scorer, ScoringContext, current_outputs, on_answers

ATWU_NORMALISERS = ("softmax", "softmax_logit", "sigmoid_mean1")
LR_DECAYS = ("linear", "none")


def weight_stats(weights: torch.Tensor, answer_mask: torch.Tensor) -> dict[str, float]:
    """How far per-sequence weights are from flat, averaged over sequences: ``nw_spread`` (max - min of n * w,
    n = the sequence's answer tokens, w normalised to sum 1 over them), ``nw_min`` / ``nw_max`` (over all
    tokens), ``entropy`` (nats) and ``entropy_norm`` (entropy / log n; 1 = flat)."""
    m = answer_mask.bool()
    w = torch.where(m, weights.float().clamp_min(0), torch.zeros_like(weights, dtype=torch.float32))
    tot = w.sum(-1, keepdim=True)
    keep = (tot.squeeze(-1) > 0) & (m.sum(-1) > 1)
    w, m = (w / tot.clamp_min(1e-30))[keep], m[keep]
    n = m.sum(-1, keepdim=True).float()
    nw = w * n
    hi = torch.where(m, nw, torch.full_like(nw, -float("inf"))).amax(-1)
    lo = torch.where(m, nw, torch.full_like(nw, float("inf"))).amin(-1)
    ent = -(torch.where(m & (w > 0), w * w.clamp_min(1e-30).log(), torch.zeros_like(w))).sum(-1)
    return {"nw_spread": float((hi - lo).mean()), "nw_min": float(lo.min()), "nw_max": float(hi.max()),
            "entropy": float(ent.mean()), "entropy_norm": float((ent / n.squeeze(-1).log()).mean()),
            "n_sequences": int(keep.sum())}


@SCORERS.register("atwu_proto")
class ATWUScorer(Scorer):
    """ATWU prototype scorer. Settings: ``every`` (scorer update period in steps, 10), ``lr`` 0.1, ``momentum``
    0.9, ``weight_decay`` 1e-4, ``clip`` 1.0, ``normaliser`` (softmax of sigmoid | softmax_logit with
    ``temperature`` | sigmoid_mean1), ``lr_decay`` (linear to 0 over ``total_steps`` | none), ``total_steps``
    (None: the run's length, set by the engine)."""

    name = "atwu_proto"
    static = False
    stateful = True
    needs_hidden = True

    def __init__(self, every: int = 10, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
                 clip: float = 1.0, normaliser: str = "softmax", temperature: float = 1.0,
                 total_steps: int | None = None, lr_decay: str = "linear"):
        self.every, self.lr, self.momentum, self.weight_decay = every, lr, momentum, weight_decay
        self.clip, self.normaliser, self.temperature, self.total_steps = clip, normaliser, temperature, total_steps
        self.lr_decay = lr_decay
        if normaliser not in ATWU_NORMALISERS:
            raise SpecError(f"scorer '{self.name}': normaliser '{normaliser}' is not one of "
                            f"{', '.join(ATWU_NORMALISERS)}")
        if lr_decay not in LR_DECAYS:
            raise SpecError(f"scorer '{self.name}': lr_decay '{lr_decay}' is not one of {', '.join(LR_DECAYS)}")
        if every < 1:
            raise SpecError(f"scorer '{self.name}': every must be >= 1, got {every}")
        if lr <= 0 or clip <= 0:
            raise SpecError(f"scorer '{self.name}': lr and clip must be > 0, got lr {lr}, clip {clip}")
        self._u: torch.Tensor | None = None
        self._b: torch.Tensor | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._run_steps: int | None = None
        self.n_updates = 0
        self.last_grad_norm = float("nan")  # of the last scorer update, before clipping (a diagnostic)

    def set_run_steps(self, n: int) -> None:
        """The run's number of steps (the engine calls this before training): the horizon of the LR decay."""
        self._run_steps = int(n)

    def lr_at(self, step: int) -> float:
        """The scorer's learning rate at ``step``: linear decay to 0 over ``total_steps`` (or the run's length)."""
        horizon = self.total_steps or self._run_steps
        if self.lr_decay == "none" or not horizon:
            return self.lr
        return self.lr * max(0.0, 1.0 - step / float(horizon))

    @property
    def cost(self) -> float:  # type: ignore[override]
        return 1.0

    # ---- parameters -----------------------------------------------------------------------------------
    def _init(self, hidden_size: int, device) -> None:
        if self._u is None:
            self._u = torch.zeros(hidden_size, device=device, requires_grad=True)
            self._b = torch.zeros((), device=device, requires_grad=True)
            self._opt = torch.optim.SGD([self._u, self._b], lr=self.lr, momentum=self.momentum,
                                        weight_decay=self.weight_decay)

    def weights(self, hidden: torch.Tensor, answer_mask: torch.Tensor,
                logp: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised weights [B, T] from hidden states (differentiable in u, b)."""
        self._init(hidden.shape[-1], hidden.device)
        z = hidden.float() @ self._u + self._b
        if self.normaliser == "sigmoid_mean1":
            s = torch.where(answer_mask, torch.sigmoid(z), torch.zeros_like(z))
            w = s * answer_mask.sum(-1, keepdim=True) / s.sum(-1, keepdim=True).clamp_min(1e-12)
        else:
            a = torch.sigmoid(z) if self.normaliser == "softmax" else z / self.temperature
            a = torch.where(answer_mask, a, torch.full_like(a, float("-inf")))
            w = torch.nan_to_num(torch.softmax(a, dim=-1), nan=0.0)
        w = on_answers(w, answer_mask)
        return w * self._saturation(logp) if logp is not None else w

    def _saturation(self, logp: torch.Tensor) -> torch.Tensor | float:
        return 1.0

    def _needs_p(self) -> bool:
        return False

    # ---- Scorer API -----------------------------------------------------------------------------------
    def score(self, model, batch, context: ScoringContext | None = None) -> torch.Tensor:
        """Current weights [B, T] (sum 1 per sequence for the softmax normalisers)."""
        out = current_outputs(model, batch, context, hidden=True)
        with torch.no_grad():
            return self.weights(out.hidden, batch.answer_mask, out.logp if self._needs_p() else None).detach()

    def update(self, model, batch, context: ScoringContext | None = None, outputs=None) -> bool:
        """One scorer ascent step on F when ``context.step % every == 0``; returns whether it stepped."""
        ctx = context or ScoringContext()
        if ctx.step % self.every != 0:
            return False
        if outputs is not None and outputs.hidden is not None:
            out = outputs.detach()
        else:
            out = current_outputs(model, batch, ctx, hidden=True)
        m = batch.answer_mask
        w = self.weights(out.hidden, m, out.logp if self._needs_p() else None)
        nll = torch.where(m, -out.logp, torch.zeros_like(out.logp))
        F = (w * nll).sum() / m.sum().clamp_min(1)
        for g in self._opt.param_groups:
            g["lr"] = self.lr_at(ctx.step)
        self._opt.zero_grad(set_to_none=True)
        (-F).backward()
        self.last_grad_norm = float(torch.nn.utils.clip_grad_norm_([self._u, self._b], self.clip))
        self._opt.step()
        self.n_updates += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """u, b, optimiser state and the update count."""
        if self._u is None:
            return {"n_updates": self.n_updates}
        return {"u": self._u.detach().clone(), "b": self._b.detach().clone(), "opt": self._opt.state_dict(),
                "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``."""
        self.n_updates = int(state.get("n_updates", 0))
        if "u" in state:
            self._u = None
            self._init(state["u"].shape[0], state["u"].device)
            with torch.no_grad():
                self._u.copy_(state["u"])
                self._b.copy_(state["b"])
            self._opt.load_state_dict(state["opt"])


@SCORERS.register("atwu_sat")
class ATWUSatScorer(ATWUScorer):
    """ATWU with saturated weights: w * sg(p)^beta1 (beta1 = 5), in scoring and in the scorer's objective."""

    name = "atwu_sat"

    def __init__(self, beta1: float = 5.0, every: int = 10, lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 1e-4, clip: float = 1.0, normaliser: str = "softmax",
                 temperature: float = 1.0, total_steps: int | None = None, lr_decay: str = "linear"):
        self.beta1 = beta1
        super().__init__(every, lr, momentum, weight_decay, clip, normaliser, temperature, total_steps, lr_decay)

    def _needs_p(self) -> bool:
        return True

    def _saturation(self, logp: torch.Tensor) -> torch.Tensor:
        return logp.detach().float().exp() ** self.beta1
