"""Per-token quantities of a causal LM, aligned with input positions (position t = the token at t)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(token_t | tokens_<t) at every position t ([B, T]; position 0 is 0)."""
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = lp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return F.pad(tok, (1, 0))


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Predictive entropy (nats) of the distribution over token t at every position t ([B, T])."""
    lp = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    h = -(lp.exp() * lp).sum(-1)
    return F.pad(h, (1, 0))


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` along ``dim`` (0 where the mask is empty)."""
    m = mask.to(x.dtype)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1)


def forward_logits(model, batch) -> torch.Tensor:
    """Logits [B, T, V] of a HF causal LM on a Batch."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
