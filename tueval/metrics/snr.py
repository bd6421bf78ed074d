"""Token-level gradient signal-to-noise: per-example gradients (torch.func) split into a GT part and the rest.

For example i, token weights w and per-token loss l_t = -log p(y_t | y_<t) on answer tokens:

    s_i(w) = grad sum_t w_t m*_t l_t        (signal: ground-truth tokens)
    n_i(w) = grad sum_t w_t (1 - m*_t) l_t  (noise: every other answer token)
    g_i(w) = s_i + n_i                      (exactly, by linearity)

Reference direction u = normalise(sum over a HELD-OUT batch of s_i(1)), one ordinary backward. Metrics, over the
n evaluation examples:
* ``snr_dir`` (primary) = (mean_i <g_i, u>)^2 / var_i <g_i, u> (ddof 1); invariant to rescaling w;
* ``inv_b_simple`` = |G|^2 / tr(Sigma) with the unbiased per-example estimators
  |G|^2 = (||sum g_i||^2 - sum ||g_i||^2) / (n(n-1)), tr(Sigma) = (sum ||g_i||^2 - ||sum g_i||^2 / n) / (n-1)
  (it can be negative when the mean gradient is small: the numerator is unbiased, not positive);
* ``composition_ratio`` R = ||sum s_i||^2 / ||sum n_i||^2 and ``composition_db`` = 10 log10 R;
* ``cos_mean_u`` = cos(sum_i g_i, u).

Per-example gradients are computed with ``vmap(jacrev(losses))`` over ``functional_call``: one forward per example
and one vector-Jacobian product per (weighting, signal|noise) pair; the model must use eager attention
(``TinyModelConfig(attn_implementation="eager")``; sdpa fails under vmap). Gradients are streamed in chunks of
examples into running sums, so memory is O(chunk * 2W * |theta|).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call, jacrev, vmap

from tueval.errors import SpecError
from tueval.forward import eval_mode
from tueval.metrics.catalogue import Metric, family
from tueval.tokens import token_logprobs

METRICS: dict[str, Metric] = family("snr")


def transformer_blocks(model) -> list[tuple[str, torch.nn.Module]]:
    """(qualified name, module) of the model's transformer blocks, bottom to top."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers", "layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, torch.nn.ModuleList):
            return [(f"{path}.{i}", m) for i, m in enumerate(obj)]
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise SpecError("cannot find the transformer blocks (no nn.ModuleList in the model)")
    name, ml = max(lists, key=lambda x: len(x[1]))
    return [(f"{name}.{i}", m) for i, m in enumerate(ml)]


def select_params(model, params: str | Sequence[str] | None = None) -> list[str]:
    """Names of the parameters to differentiate: all (None), ``"last_block"``, a regex (str) or a list of names."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if params is None:
        return names
    if isinstance(params, str):
        if params == "last_block":
            prefix = transformer_blocks(model)[-1][0] + "."
            chosen = [n for n in names if n.startswith(prefix)]
        else:
            chosen = [n for n in names if re.search(params, n)]
    else:
        wanted = set(params)
        unknown = wanted - set(names)
        if unknown:
            raise SpecError(f"unknown parameter names: {sorted(unknown)[:5]}")
        chosen = [n for n in names if n in wanted]
    if not chosen:
        raise SpecError(f"parameter selection {params!r} matches no parameter of the model")
    return chosen


def _weights(batch, weights: torch.Tensor) -> torch.Tensor:
    """Weights as [B, K, T], zeroed outside answer tokens."""
    w = torch.as_tensor(weights, dtype=torch.float32)
    squeeze = w.dim() == 2
    w = w[None] if squeeze else w
    if w.shape[1:] != batch.answer_mask.shape:
        raise SpecError(f"weights must be [B, T] or [K, B, T] with [B, T] = {tuple(batch.answer_mask.shape)}; "
                        f"got {tuple(torch.as_tensor(weights).shape)}")
    return (w * batch.answer_mask.to(w.dtype)).permute(1, 0, 2).contiguous()


def _iter_grads(model, batch, W: torch.Tensor, names: list[str], chunk_size: int) -> Iterator[torch.Tensor]:
    """Yield per-example gradients [c, K, P] of sum_t W[i, k, t] l_t for chunks of examples."""
    dev = next(model.parameters()).device
    params = dict(model.named_parameters())
    sub = {n: params[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in params.items() if n not in sub}
    buffers = dict(model.named_buffers())

    def losses(p, ids, am, w):
        out = functional_call(model, ({**frozen, **p}, buffers), args=(),
                              kwargs={"input_ids": ids[None], "attention_mask": am[None]})
        nll = -token_logprobs(out.logits, ids[None])[0]
        return w @ nll

    per_example = vmap(jacrev(losses), in_dims=(None, 0, 0, 0))
    lengths = batch.attention_mask.sum(1)
    for c in range(0, len(batch), chunk_size):
        sl = slice(c, c + chunk_size)
        L = int(lengths[sl].max())  # right-padded: trim the chunk's common padding
        J = per_example(sub, batch.input_ids[sl, :L].to(dev), batch.attention_mask[sl, :L].to(dev),
                        W[sl, :, :L].to(dev))
        yield torch.cat([J[n].reshape(J[n].shape[0], J[n].shape[1], -1) for n in names], dim=2)


def per_example_grads(model, batch, weights: torch.Tensor, params: str | Sequence[str] | None = None,
                      chunk_size: int = 8) -> torch.Tensor:
    """Flattened per-example gradients of sum_t w_t l_t: [B, P] for weights [B, T], [K, B, T] for [K, B, T]."""
    names = select_params(model, params)
    W = _weights(batch, weights)
    with eval_mode(model, grad=True):
        G = torch.cat(list(_iter_grads(model, batch, W, names, chunk_size)), dim=0)  # [B, K, P]
    return G[:, 0] if torch.as_tensor(weights).dim() == 2 else G.permute(1, 0, 2)


def per_example_grads_loop(model, batch, weights: torch.Tensor,
                           params: str | Sequence[str] | None = None) -> torch.Tensor:
    """Reference for ``per_example_grads``: one unpadded forward and backward per example ([B, P])."""
    names = select_params(model, params)
    pmap = dict(model.named_parameters())
    plist = [pmap[n] for n in names]
    W = _weights(batch, weights)[:, 0]
    dev = plist[0].device
    out = []
    with eval_mode(model, grad=True):
        for i in range(len(batch)):
            L = int(batch.attention_mask[i].sum())
            ids = batch.input_ids[i:i + 1, :L].to(dev)
            logits = model(input_ids=ids, attention_mask=batch.attention_mask[i:i + 1, :L].to(dev)).logits
            loss = (W[i, :L].to(dev) * -token_logprobs(logits, ids)[0]).sum()
            gs = torch.autograd.grad(loss, plist, allow_unused=True)
            out.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                  for g, p in zip(gs, plist)]))
    return torch.stack(out)


def reference_direction(model, batch_ref, gt_mask: torch.Tensor | None = None,
                        params: str | Sequence[str] | None = None) -> torch.Tensor:
    """u = normalised gradient of sum over the reference batch of its GT-token losses (one backward) [P]."""
    names = select_params(model, params)
    pmap = dict(model.named_parameters())
    gt = (batch_ref.gt_mask if gt_mask is None else gt_mask).bool() & batch_ref.answer_mask.bool()
    dev = pmap[names[0]].device
    with eval_mode(model, grad=True):
        logits = model(input_ids=batch_ref.input_ids.to(dev), attention_mask=batch_ref.attention_mask.to(dev)).logits
        loss = (-token_logprobs(logits, batch_ref.input_ids.to(dev)) * gt.to(dev)).sum()
        gs = torch.autograd.grad(loss, [pmap[n] for n in names], allow_unused=True)
    u = torch.cat([(g if g is not None else torch.zeros_like(pmap[n])).reshape(-1) for g, n in zip(gs, names)])
    norm = u.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise SpecError("reference direction is zero or not finite: does the reference batch have GT tokens?")
    return (u / norm).detach()


@dataclass
class _GradStats:
    """Sufficient statistics of per-example signal/noise gradients for one weighting."""

    proj: list
    sqnorm: list
    sum_g: torch.Tensor | None = None
    sum_s: torch.Tensor | None = None
    sum_n: torch.Tensor | None = None

    def update(self, s: torch.Tensor, n: torch.Tensor, u: torch.Tensor) -> None:
        g = (s + n).double()
        self.proj.append(g @ u.double())
        self.sqnorm.append((g * g).sum(1))
        for name, v in (("sum_g", g.sum(0)), ("sum_s", s.double().sum(0)), ("sum_n", n.double().sum(0))):
            cur = getattr(self, name)
            setattr(self, name, v if cur is None else cur + v)

    def compute(self, u: torch.Tensor) -> dict[str, float]:
        return snr_metrics(torch.cat(self.proj), torch.cat(self.sqnorm), self.sum_g, self.sum_s, self.sum_n, u)


def snr_metrics(proj: torch.Tensor, sqnorm: torch.Tensor, sum_g: torch.Tensor, sum_s: torch.Tensor,
                sum_n: torch.Tensor, u: torch.Tensor) -> dict[str, float]:
    """Every SNR metric (module docstring) from the sufficient statistics over the n evaluation examples: the
    projections <g_i, u> [n], the squared norms ||g_i||^2 [n], the sums of g_i, s_i and n_i [P] and u [P]."""
    p, sq = torch.as_tensor(proj).double(), torch.as_tensor(sqnorm).double()
    sum_g, sum_s, sum_n = sum_g.double(), sum_s.double(), sum_n.double()
    n = p.numel()
    S2 = float(sum_g @ sum_g)
    sum_sq = float(sq.sum())
    g2 = (S2 - sum_sq) / (n * (n - 1)) if n > 1 else float("nan")
    tr = (sum_sq - S2 / n) / (n - 1) if n > 1 else float("nan")
    var = float(p.var(unbiased=True)) if n > 1 else float("nan")
    mean = float(p.mean())
    ns, nn_ = float(sum_s @ sum_s), float(sum_n @ sum_n)
    ratio = ns / nn_ if nn_ > 0 else float("inf")
    gnorm = float(sum_g.norm())
    return {
        "n_examples": n, "mean_proj": mean, "sd_proj": var ** 0.5 if var == var else float("nan"),
        "snr_dir": mean ** 2 / var if var > 0 else float("nan"),
        "g_sq_unbiased": g2, "tr_sigma": tr, "inv_b_simple": g2 / tr if tr > 0 else float("nan"),
        "composition_ratio": ratio, "composition_db": 10 * np.log10(ratio) if ratio > 0 else -np.inf,
        "cos_mean_u": float(sum_g @ u.double()) / gnorm if gnorm > 0 else float("nan"),
    }


def snr_from_grads(s: torch.Tensor, n: torch.Tensor, u: torch.Tensor) -> dict[str, float]:
    """All SNR metrics from per-example signal and noise gradients [B, P] and a unit reference direction [P]."""
    st = _GradStats([], [])
    st.update(s, n, u)
    return st.compute(u)


def snr_report(model, batch_eval, batch_ref, weights_by_name: dict[str, torch.Tensor],
               gt_mask: torch.Tensor | None = None, params: str | Sequence[str] | None = None,
               chunk_size: int = 8, ref_gt_mask: torch.Tensor | None = None) -> pd.DataFrame:
    """One row per weighting: directional SNR, 1/B_simple, composition ratio and cos to u on ``batch_eval``.

    ``gt_mask`` overrides ``batch_eval.gt_mask`` (e.g. a counterfactual GT); ``ref_gt_mask`` overrides
    ``batch_ref.gt_mask``. All weightings share one forward per example."""
    if not weights_by_name:
        raise SpecError("weights_by_name is empty")
    names = select_params(model, params)
    u = reference_direction(model, batch_ref, ref_gt_mask, names)
    gt = ((batch_eval.gt_mask if gt_mask is None else gt_mask).bool() & batch_eval.answer_mask.bool()).float()
    keys = list(weights_by_name)
    Ws = []
    for k in keys:
        w = torch.as_tensor(weights_by_name[k], dtype=torch.float32)
        if w.shape != gt.shape:
            raise SpecError(f"weights '{k}' must be [B, T] = {tuple(gt.shape)}; got {tuple(w.shape)}")
        Ws += [w * gt, w * (1 - gt)]
    W = _weights(batch_eval, torch.stack(Ws))  # [B, 2K, T]
    stats = {k: _GradStats([], []) for k in keys}
    u_dev = u.to(next(model.parameters()).device)
    with eval_mode(model, grad=True):
        for J in _iter_grads(model, batch_eval, W, names, chunk_size):
            for j, k in enumerate(keys):
                stats[k].update(J[:, 2 * j], J[:, 2 * j + 1], u_dev)
    n_params = sum(dict(model.named_parameters())[n].numel() for n in names)
    rows = [{"weighting": k, **stats[k].compute(u_dev), "n_params": n_params} for k in keys]
    return pd.DataFrame(rows)
