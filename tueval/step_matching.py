"""The ``step_matched`` control's update: the uniform step, rescaled to the norm of the step the method would take
from the same parameters, batch and optimiser state.

AdamW renormalises a rescaled loss (its step follows m / sqrt(v), whatever the scale of the gradient), so a control
that only scales the loss or its gradient is not a smaller or larger update. This one matches the update itself:
1. the method's gradient, clipped as the method's own run clips it, goes through a shadow optimiser (the same
   optimiser class and hyperparameters, a copy of the state, copies of the parameters); the norm of the shadow's
   parameter change is the target;
2. the real optimiser takes the uniform step (its state advances with the uniform gradient, as the uniform base's
   does) and the parameter change it made is rescaled to the target norm.
"""
from __future__ import annotations

import copy
from typing import Iterable, Sequence

import torch


def _params(opt: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for g in opt.param_groups for p in g["params"]]


def total_norm(tensors: Iterable[torch.Tensor | None]) -> float:
    """The Euclidean norm of all ``tensors`` together (None entries count as zero), accumulated in float64."""
    sq = sum(float((t.detach().double() ** 2).sum()) for t in tensors if t is not None)
    return float(sq) ** 0.5


def shadow_step(opt: torch.optim.Optimizer, grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    """The parameter change ``opt`` would make with ``grads`` (one per parameter of its groups, in order; None =
    no gradient), computed on copies: neither the parameters nor the optimiser state change."""
    params = _params(opt)
    if len(grads) != len(params):
        raise ValueError(f"expected {len(params)} gradients, got {len(grads)}")
    copies = {p: p.detach().clone().requires_grad_(True) for p in params}
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [copies[p] for p in g["params"]]}
              for g in opt.param_groups]
    shadow = type(opt)(groups)
    for p, c in copies.items():
        state = opt.state.get(p)
        if state:
            shadow.state[c] = {k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()}
    for p, g in zip(params, grads):
        copies[p].grad = None if g is None else g.detach().clone()
    shadow.step()
    return [copies[p].detach() - p.detach() for p in params]


def method_step_norm(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float,
                     clip_params: Iterable[torch.nn.Parameter]) -> float:
    """Norm of the step ``opt`` would take on ``loss`` (backward with the graph kept, gradients clipped to
    ``clip`` over ``clip_params``, a shadow step); the gradients are cleared again afterwards."""
    opt.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    torch.nn.utils.clip_grad_norm_(list(clip_params), clip)
    delta = shadow_step(opt, [p.grad for p in _params(opt)])
    opt.zero_grad(set_to_none=True)
    return total_norm(delta)


def snapshot(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Copies of the optimiser's parameters (taken before its step, for ``rescale_step``)."""
    return [p.detach().clone() for p in _params(opt)]


@torch.no_grad()
def rescale_step(opt: torch.optim.Optimizer, before: Sequence[torch.Tensor], target_norm: float) -> float:
    """Rescale the change the optimiser's parameters made since ``before`` to ``target_norm``, in place; returns
    the norm of the change as it was. A zero change stays zero."""
    params = _params(opt)
    deltas = [p.detach() - b for p, b in zip(params, before)]
    made = total_norm(deltas)
    if made > 0:
        scale = target_norm / made
        for p, b, d in zip(params, before, deltas):
            p.copy_(b + d * scale)
    return made
