"""The Scorer contract, its context, the ``SCORERS`` registry and small shared helpers.

A scorer maps (model, batch) to token scores [B, T] aligned with input positions: finite on answer tokens
(other positions are ignored), higher = more forget-specific.
``static`` scorers are computed once by the engine on the reference (pre-unlearning) model and cached;
dynamic ones are called every step with the current model. ``cost`` = extra forward passes per example per call
(when the engine does not hand in ``context.outputs``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import SpecError
from ..forward import ForwardOut, model_forward
from ..params import Configurable
from ..registry import Registry

SCORERS: Registry = Registry("scorer", "tueval.scorers")


@dataclass
class ScoringContext:
    """What a scorer may use besides (model, batch): the frozen reference and retain models, the step, the
    tokenizer, a torch.Generator for random draws, and ``outputs`` = a ForwardOut of ``model`` on ``batch`` that
    the engine already computed (with ``hidden`` when the scorer has ``needs_hidden``); scorers detach it."""

    ref_model: Any = None
    retain_model: Any = None
    step: int = 0
    tokenizer: Any = None
    generator: torch.Generator | None = None
    outputs: ForwardOut | None = None


class Scorer(Configurable):
    """Base class (sklearn-style: ``__init__`` only stores settings; ``get_params()`` returns them).

    Class attributes: ``name``, ``static`` (computed once on the reference model and cached by the engine),
    ``cost`` (extra forward passes per example per call), ``stateful`` (has ``update``), ``needs_hidden``
    (wants ``context.outputs.hidden``), ``needs_ref_model`` / ``needs_retain_model`` (reads
    ``context.ref_model`` / ``context.retain_model``; a static scorer also gets the reference as ``model``),
    ``draws_randomness`` (draws from ``context.generator`` or the global RNG: its run's weights generator is then
    not the control's alone, so no other run can stand in for its ``random_k`` control, ``tueval.shared_training``)."""

    name: ClassVar[str] = ""
    static: bool = False
    cost: float = 0.0
    stateful: ClassVar[bool] = False
    needs_hidden: ClassVar[bool] = False
    needs_ref_model: bool = False  # reads context.ref_model
    needs_retain_model: bool = False  # reads context.retain_model
    draws_randomness: bool = False

    def describe(self) -> dict[str, Any]:
        """Name, settings, static flag and cost, for the run spec."""
        return {"name": self.name, "params": self.get_params(), "static": bool(self.static),
                "cost": float(self.cost), "needs_ref_model": bool(self.needs_ref_model),
                "needs_retain_model": bool(self.needs_retain_model)}

    def score(self, model, batch, context: ScoringContext | None = None) -> torch.Tensor:
        """Token scores [B, T] (finite on answer tokens; higher = more forget-specific)."""
        raise NotImplementedError

    def update(self, model, batch, context: ScoringContext | None = None, outputs: ForwardOut | None = None) -> bool:
        """Stateful scorers learn here (called by the engine once per step); returns whether an update happened."""
        return False

    def state_dict(self) -> dict[str, Any]:
        """Learned state for checkpoints (empty unless stateful)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def current_outputs(model, batch, context: ScoringContext | None, hidden: bool = False) -> ForwardOut:
    """Detached outputs of ``model`` on ``batch``: ``context.outputs`` when given (and complete), else one
    no-grad forward."""
    out = context.outputs if context is not None else None
    if out is not None and (not hidden or out.hidden is not None):
        return out.detach()
    with torch.no_grad():
        return model_forward(model, batch, hidden=hidden).detach()


def minmax_per_sequence(x: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence min-max normalisation over answer tokens to [0, 1] (a constant sequence -> 0.5; 0 off-answer)."""
    x = x.float()
    big = torch.finfo(x.dtype).max
    lo = torch.where(answer_mask, x, torch.full_like(x, big)).amin(-1, keepdim=True)
    hi = torch.where(answer_mask, x, torch.full_like(x, -big)).amax(-1, keepdim=True)
    rng = hi - lo
    const = rng <= 1e-12 * torch.maximum(hi.abs(), lo.abs()).clamp_min(1.0)
    out = torch.where(const, torch.full_like(x, 0.5), (x - lo) / rng.clamp_min(1e-30))
    return torch.where(answer_mask, out, torch.zeros_like(out))


def on_answers(x: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """``x`` on answer tokens, 0 elsewhere (float32)."""
    x = x.float()
    return torch.where(answer_mask, x, torch.zeros_like(x))


def require(value, what: str, scorer: str):
    """``value`` if not None, else SpecError naming the scorer and what is missing."""
    if value is None:
        raise SpecError(f"scorer '{scorer}' needs {what}")
    return value


def split_answer_scores(scores: torch.Tensor, batch) -> dict[str, torch.Tensor]:
    """Per-example answer-token scores (1-D, in token order), keyed by example id: the cacheable form of a
    static scorer's output (independent of padding and batch composition)."""
    counts = batch.answer_mask.sum(-1).tolist()
    flat = scores.detach().float().cpu()[batch.answer_mask.cpu()]
    return dict(zip(batch.example_ids, torch.split(flat, counts)))


def gather_answer_scores(cache: dict[str, torch.Tensor], batch) -> torch.Tensor:
    """Rebuild [B, T] scores for ``batch`` from ``split_answer_scores`` output (0 off-answer)."""
    missing = [i for i in batch.example_ids if i not in cache]
    if missing:
        raise SpecError(f"no cached scores for example(s) {', '.join(missing[:5])}")
    rows = [cache[i] for i in batch.example_ids]
    counts = batch.answer_mask.sum(-1).tolist()
    bad = [(i, len(r), c) for i, r, c in zip(batch.example_ids, rows, counts) if len(r) != c]
    if bad:
        i, got, want = bad[0]
        raise SpecError(f"cached scores for example {i} cover {got} answer tokens, the batch has {want} "
                        "(tokenisation changed?)")
    out = torch.zeros(batch.answer_mask.shape, dtype=torch.float32)
    out[batch.answer_mask.cpu()] = torch.cat(rows) if rows else torch.zeros(0)
    return out.to(batch.answer_mask.device)
