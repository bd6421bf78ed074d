"""One forward of a causal LM on a Batch (log-probs, hidden states aligned with input positions), and the
eval-mode and device helpers every stage shares."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from .tokens import token_logprobs


@dataclass
class ForwardOut:
    """One forward of a causal LM on a Batch: raw logits [B,T,V] (HF convention: position t-1 predicts t),
    per-token log-probs ``logp`` [B,T] aligned with input positions (position 0 = 0), and optionally the
    last-layer hidden states ``hidden`` [B,T,H] aligned the same way (``hidden[:, t]`` is the state that
    predicts token t; position 0 is zeros)."""

    logits: torch.Tensor
    logp: torch.Tensor
    hidden: torch.Tensor | None = None

    def detach(self) -> "ForwardOut":
        """A copy without autograd history."""
        return ForwardOut(self.logits.detach(), self.logp.detach(),
                          None if self.hidden is None else self.hidden.detach())


def position_ids_for(input_ids: torch.Tensor) -> torch.Tensor:
    """Plain positions 0..T-1 for every row (right padding; masking tokens never shifts positions)."""
    return torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand_as(input_ids)


def model_forward(model, batch, hidden: bool = False, attention_mask: torch.Tensor | None = None) -> ForwardOut:
    """Run ``model`` once on ``batch`` (grad as the caller's context) and derive log-probs (and hidden states)."""
    am = batch.attention_mask if attention_mask is None else attention_mask
    out = model(input_ids=batch.input_ids, attention_mask=am, position_ids=position_ids_for(batch.input_ids),
                output_hidden_states=hidden)
    h = None
    if hidden:
        last = out.hidden_states[-1]
        h = torch.cat([torch.zeros_like(last[:, :1]), last[:, :-1]], dim=1)
    return ForwardOut(out.logits, token_logprobs(out.logits, batch.input_ids), h)


@contextlib.contextmanager
def eval_mode(model, grad: bool = False) -> Iterator[None]:
    """Put ``model`` in eval mode (under ``torch.no_grad`` unless ``grad``) and restore its training flag
    afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        model.train(was_training)


def model_device(model) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless model or a non-module)."""
    try:
        p = next(iter(model.parameters()), None)
    except (AttributeError, TypeError):
        p = None
    return p.device if p is not None else torch.device("cpu")
