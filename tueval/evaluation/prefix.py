"""Teacher-forced scoring of many continuations that share prompts, each prompt encoded once.

A block of prompts runs once, left-padded, keeping its KV cache and its last-position logits (which predict the
first continuation token). Every continuation of those prompts then runs from the cache: the rows of one forward are
continuations of any prompts of the block (their caches gathered by row), sorted by length so that little is
padding. Only continuation positions reach the output layer, and per-token log-probabilities come from a
log-sum-exp and a gather, never a full-vocabulary log-softmax (except on the rows that want the MIA distribution
statistics). Mathematically this is the forward of each ``prompt + continuation`` sequence on its own.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..forward import eval_mode, model_device

LOGITS_BYTES = 8 * 2**20
"""Memory of the logits of one continuation forward (sets the tokens per forward from the vocabulary size)."""


@dataclass
class Continuations:
    """What to score: ``prompts`` (ids incl. BOS) and continuations ``tokens`` (ids incl. the final EOS), each owned
    by the prompt ``owner[r]``; ``gt[r]`` marks the fact tokens of row r; ``dist[r]`` asks for the MIA
    distribution statistics of row r; ``acc[r]`` for its greedy-token accuracies (None: every row)."""

    prompts: list[list[int]]
    tokens: list[list[int]]
    owner: np.ndarray
    gt: list[np.ndarray] | None = None
    dist: np.ndarray | None = None
    acc: np.ndarray | None = None


@dataclass
class ContinuationScores:
    """Per continuation row: summed NLL (float64), token count, teacher-forced accuracy, fact-token accuracy (NaN
    without fact tokens), fact-token count; for the ``dist`` rows (``dist_rows``, in row order) the per-token
    log-probs ``dist_lp`` and Min-K%++ z-scores ``dist_z`` ([Rd, Lmax], valid where ``dist_mask``)."""

    sum_nll: np.ndarray
    n_tokens: np.ndarray
    acc: np.ndarray
    fact_acc: np.ndarray
    n_fact: np.ndarray
    dist_rows: np.ndarray
    dist_lp: torch.Tensor
    dist_z: torch.Tensor
    dist_mask: torch.Tensor


def _accepts(model, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def cache_kwarg(model) -> str:
    """The name of the KV-cache argument of ``model.forward`` (``cache`` in recent transformers)."""
    return "cache" if _accepts(model, "cache") else "past_key_values"


def new_cache(model):
    """An empty dynamic KV cache for ``model``."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _layers_kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _gathered_cache(model, kv: list[tuple[torch.Tensor, torch.Tensor]], rows: torch.Tensor):
    cache = new_cache(model)
    for i, (k, v) in enumerate(kv):
        cache.update(k.index_select(0, rows), v.index_select(0, rows), i)
    return cache


def pad_rows(rows: Sequence[Sequence[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids and attention mask [B, T] of token lists (T >= 1)."""
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    T = max(1, int(lens.max()) if len(rows) else 1)
    flat = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lens.sum()))
    col = np.arange(T)[None, :]
    valid = (col >= T - lens[:, None]) if left else (col < lens[:, None])
    ids = np.full((len(rows), T), pad, dtype=np.int64)
    ids[valid] = flat  # row-major order of the valid cells is each row's tokens in order
    return torch.from_numpy(ids), torch.from_numpy(valid.astype(np.int64))


def left_positions(attn: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows (0 at each row's first token; pads 1, as transformers' generate)."""
    return (attn.cumsum(-1) - 1).masked_fill(attn == 0, 1)


def prompt_pass(model, prompts: Sequence[Sequence[int]], pad: int):
    """One left-padded forward of ``prompts``: (the filled KV cache, attention mask [B, Tp], last-position logits
    [B, V] in float32, prompt lengths [B])."""
    device = model_device(model)
    ids, attn = pad_rows(prompts, pad, left=True)
    ids, attn = ids.to(device), attn.to(device)
    cache = new_cache(model)
    kw = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    out = model(input_ids=ids, attention_mask=attn, position_ids=left_positions(attn), use_cache=True,
                **{cache_kwarg(model): cache}, **kw)
    return cache, attn, out.logits[:, -1].float(), attn.sum(1)


def score_continuations(model, req: Continuations, pad: int, batch_size: int = 256,
                        max_tokens: int | None = None, accuracy: bool = True) -> ContinuationScores:
    """Score every continuation of ``req``: blocks of ``batch_size`` prompts (sorted by length) each run once, and
    their continuations run from the block's cache, ``max_tokens`` continuation tokens per forward (default: what
    fits ``LOGITS_BYTES`` of logits). The greedy-token accuracies (an argmax over the vocabulary at every
    position) are computed only on the rows ``req.acc`` marks, and on none without ``accuracy``; elsewhere they are
    NaN. Every likelihood value is the same either way."""
    R = len(req.tokens)
    owner = np.asarray(req.owner, dtype=np.int64)
    lens = np.fromiter((len(t) for t in req.tokens), dtype=np.int64, count=R)
    dist = np.zeros(R, dtype=bool) if req.dist is None else np.asarray(req.dist, dtype=bool)
    acc = np.full(R, accuracy, dtype=bool) if req.acc is None else np.asarray(req.acc, dtype=bool) & accuracy
    out = {k: np.zeros(R) for k in ("sum_nll", "n_tokens", "acc", "fact_acc", "n_fact")}
    Ld = int(lens[dist].max()) if dist.any() else 0
    dist_rows = np.flatnonzero(dist)
    dist_pos = np.full(R, -1, dtype=np.int64)
    dist_pos[dist_rows] = np.arange(len(dist_rows))
    dist_lp = torch.zeros(len(dist_rows), Ld)
    dist_z = torch.zeros(len(dist_rows), Ld)
    dist_mask = torch.arange(Ld)[None, :] < torch.as_tensor(lens[dist_rows])[:, None]
    if R == 0:
        return ContinuationScores(**out, dist_rows=dist_rows, dist_lp=dist_lp, dist_z=dist_z, dist_mask=dist_mask)
    device = model_device(model)
    vocab = int(model.get_output_embeddings().weight.shape[0]) if hasattr(model, "get_output_embeddings") \
        and model.get_output_embeddings() is not None else 32768
    max_tokens = max_tokens or max(256, LOGITS_BYTES // (4 * vocab))
    G = _padded_bool(req.gt, lens) if req.gt is not None else None
    p_order = np.argsort([len(p) for p in req.prompts], kind="stable")
    with eval_mode(model):
        for b0 in range(0, len(p_order), batch_size):
            block = p_order[b0: b0 + batch_size]
            local = np.full(len(req.prompts), -1, dtype=np.int64)
            local[block] = np.arange(len(block))
            cache, p_attn, first, p_len = prompt_pass(model, [req.prompts[i] for i in block], pad)
            kv = _layers_kv(cache)
            rows = np.flatnonzero(local[owner] >= 0)
            rows = rows[np.argsort(-lens[rows], kind="stable")]
            start = 0
            while start < len(rows):
                L = int(lens[rows[start]])
                n = max(1, max_tokens // max(L, 1))
                chunk = rows[start: start + n]
                start += len(chunk)
                _score_chunk(model, req, chunk, local[owner[chunk]], kv, p_attn, first, p_len, pad, device,
                             out, G, dist, dist_pos, dist_lp, dist_z, acc)
    return ContinuationScores(sum_nll=out["sum_nll"], n_tokens=out["n_tokens"].astype(np.int64), acc=out["acc"],
                              fact_acc=out["fact_acc"], n_fact=out["n_fact"].astype(np.int64), dist_rows=dist_rows,
                              dist_lp=dist_lp, dist_z=dist_z, dist_mask=dist_mask)


def _padded_bool(arrs: Sequence[np.ndarray], lens: np.ndarray) -> np.ndarray:
    """[R, max len] bool matrix of per-row bool arrays (row r holds ``arrs[r]`` in its first ``lens[r]`` cells)."""
    T = int(lens.max()) if len(lens) else 0
    valid = np.arange(T)[None, :] < lens[:, None]
    out = np.zeros((len(lens), T), dtype=bool)
    out[valid] = np.concatenate([np.asarray(a, dtype=bool)[:n] for a, n in zip(arrs, lens)]) if len(lens) else []
    return out


def _score_chunk(model, req, chunk, owners, kv, p_attn, first, p_len, pad, device, out, G, dist, dist_pos,
                 dist_lp, dist_z, acc: np.ndarray) -> None:
    """Forward one chunk of continuation rows from their prompts' caches and store its statistics."""
    own = torch.as_tensor(owners, device=device)
    tgt, valid = pad_rows([req.tokens[r] for r in chunk], pad, left=False)
    tgt, valid = tgt.to(device), valid.bool().to(device)
    parts = [first.index_select(0, own)[:, None]]  # predicts each row's first token
    if tgt.shape[1] > 1:
        inp = tgt[:, :-1]  # the last token (EOS) predicts nothing that is scored
        attn = torch.cat([p_attn.index_select(0, own), valid[:, :-1].long()], dim=1)
        pos = p_len.index_select(0, own)[:, None] + torch.arange(inp.shape[1], device=device)[None, :]
        parts.append(model(input_ids=inp, attention_mask=attn, position_ids=pos, use_cache=True,
                           **{cache_kwarg(model): _gathered_cache(model, kv, own)}).logits.float())
    # -log p of each target from the fused log-softmax + NLL kernel, per part (no copy of the logits)
    offs = np.cumsum([0] + [p.shape[1] for p in parts])
    nll = torch.cat([torch.nn.functional.cross_entropy(p.flatten(0, 1), tgt[:, a:b].flatten(), reduction="none")
                     .view(len(chunk), -1) for p, a, b in zip(parts, offs[:-1], offs[1:])], dim=1)
    m = valid.double()
    n = m.sum(1)
    out["sum_nll"][chunk] = (nll.double() * m).sum(1).cpu().numpy()
    out["n_tokens"][chunk] = n.cpu().numpy()
    g = torch.from_numpy(G[chunk, : tgt.shape[1]]).to(device).double() * m if G is not None else None
    out["n_fact"][chunk] = g.sum(1).cpu().numpy() if g is not None else 0
    out["acc"][chunk] = np.nan
    out["fact_acc"][chunk] = np.nan
    wa = acc[chunk]
    if wa.any():
        # the argmax only on the rows whose accuracies are read (on TOFU's sets one row in 6-7)
        sel = None if wa.all() else torch.as_tensor(np.flatnonzero(wa), device=device)
        pick = (lambda t: t) if sel is None else (lambda t: t.index_select(0, sel))
        rows = chunk[wa]
        pred = torch.cat([pick(p).argmax(-1) for p in parts], dim=1)
        ms = pick(m)
        correct = (pred == pick(tgt)).double() * ms
        out["acc"][rows] = (correct.sum(1) / ms.sum(1).clamp_min(1)).cpu().numpy()
        if g is not None:
            gs = pick(g)
            nf = gs.sum(1)
            fa = (correct * gs).sum(1) / nf.clamp_min(1)
            out["fact_acc"][rows] = torch.where(nf > 0, fa, torch.full_like(fa, float("nan"))).cpu().numpy()
    want = dist[chunk]
    if want.any():
        sel = torch.as_tensor(np.flatnonzero(want), device=device)
        lp_all = torch.cat([torch.log_softmax(p.index_select(0, sel), dim=-1) for p in parts], dim=1)
        p = lp_all.exp()
        mu = (p * lp_all).sum(-1)
        sigma2 = ((p * lp_all.square()).sum(-1) - mu.square()).clamp_min(1e-6)
        t = -nll.index_select(0, sel)
        z = (t - mu) / sigma2.sqrt()
        at = torch.as_tensor(dist_pos[chunk[want]])
        L = min(t.shape[1], dist_lp.shape[1])  # a longer row of the chunk outside the distribution set pads wider
        t, z = t[:, :L], z[:, :L]
        dist_lp[at, :L] = t.cpu()
        dist_z[at, :L] = z.cpu()
