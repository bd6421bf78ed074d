"""Teacher-forced scoring of many continuations that share prompts, each prompt encoded once.

A block of prompts runs once, left-padded, keeping its KV cache and its last-position logits (which predict the
first continuation token). Every continuation of those prompts then runs from the cache: the rows of one forward are
continuations of any prompts of the block (their caches gathered by row), sorted by length so that little is
padding. A continuation that begins with the same tokens as another of its prompt (a perturbed answer and the
answer it perturbs) runs only from where the two part, from the other's keys and values (``share_plan``). Only
continuation positions reach the output layer, and per-token log-probabilities come from a
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
from .share import SharePlan, ancestors_too, padded, share_plan

LOGITS_BYTES = 8 * 2**20
"""Memory of the logits of one continuation forward (sets the tokens per forward from the vocabulary size)."""
SHARE = True
"""Whether continuations run from the cache of a continuation they begin like (``share_plan``), by default."""


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


@dataclass
class _Work:
    """The per-token values of every row, filled chunk by chunk: NLL, greedy-token hit and Min-K%++ z ([R, L])."""

    tok: torch.Tensor
    lens: torch.Tensor
    lens_np: np.ndarray
    plan: SharePlan
    acc: np.ndarray
    dist: np.ndarray
    nll: torch.Tensor
    hit: torch.Tensor
    z: torch.Tensor


def score_continuations(model, req: Continuations, pad: int, batch_size: int = 256,
                        max_tokens: int | None = None, accuracy: bool = True,
                        share: bool | None = None) -> ContinuationScores:
    """Score every continuation of ``req``: blocks of ``batch_size`` prompts (sorted by length) each run once, and
    their continuations run from the block's cache, ``max_tokens`` continuation tokens per forward (default: what
    fits ``LOGITS_BYTES`` of logits). With ``share`` (default ``SHARE``) a continuation that begins like another of
    its prompt runs from that one's cache too (``SharePlan``). The greedy-token accuracies (an argmax over the
    vocabulary at every position) are computed only on the rows ``req.acc`` marks, and on none without
    ``accuracy``; elsewhere they are NaN. Every likelihood value is the same either way."""
    R = len(req.tokens)
    owner = np.asarray(req.owner, dtype=np.int64)
    lens = np.fromiter((len(t) for t in req.tokens), dtype=np.int64, count=R)
    dist = np.zeros(R, dtype=bool) if req.dist is None else np.asarray(req.dist, dtype=bool)
    acc = np.full(R, accuracy, dtype=bool) if req.acc is None else np.asarray(req.acc, dtype=bool) & accuracy
    device = model_device(model)
    tok = padded(req.tokens, lens, pad, np.int64)
    none = np.zeros(R, dtype=np.int64)
    plan = share_plan(tok, lens, owner, acc | dist) if (SHARE if share is None else share) \
        else SharePlan(none - 1, none)
    T = tok.shape[1]
    w = _Work(torch.from_numpy(tok).to(device), torch.from_numpy(lens).to(device), lens, plan, acc, dist,
              torch.zeros(R, T, device=device), torch.zeros(R, T, device=device), torch.zeros(R, T, device=device))
    if R:
        vocab = int(model.get_output_embeddings().weight.shape[0]) if hasattr(model, "get_output_embeddings") \
            and model.get_output_embeddings() is not None else 32768
        max_tokens = max_tokens or max(256, LOGITS_BYTES // (4 * vocab))
        need_hit, need_z = ancestors_too(acc, plan), ancestors_too(dist, plan)
        p_order = np.argsort([len(p) for p in req.prompts], kind="stable")
        with eval_mode(model):
            for b0 in range(0, len(p_order), batch_size):
                block = p_order[b0: b0 + batch_size]
                local = np.full(len(req.prompts), -1, dtype=np.int64)
                local[block] = np.arange(len(block))
                _score_block(model, req, w, block, np.flatnonzero(local[owner] >= 0), local[owner], pad,
                             max_tokens, need_hit, need_z)
    return _results(w, req.gt, device)


def _score_block(model, req: Continuations, w: _Work, block: np.ndarray, rows: np.ndarray, at: np.ndarray,
                 pad: int, max_tokens: int, need_hit: np.ndarray, need_z: np.ndarray) -> None:
    """Run the prompts ``block`` once and then, wave by wave, the continuation rows ``rows`` of those prompts
    (``at[r]``: row r's prompt's index in the block)."""
    cache, p_attn, first, p_len = prompt_pass(model, [req.prompts[i] for i in block], pad)
    kv = _layers_kv(cache)
    lens, plan = w.lens_np, w.plan
    parents = np.zeros(len(lens), dtype=bool)
    parents[plan.parent[rows][plan.parent[rows] >= 0]] = True
    slot = np.full(len(lens), -1, dtype=np.int64)
    kept = rows[parents[rows]]
    slot[kept] = np.arange(len(kept))
    width = int(lens[kept].max()) - 1 if len(kept) else 0
    store = [(k.new_zeros(len(kept), k.shape[1], width, k.shape[3]), v.new_zeros(len(kept), v.shape[1], width,
              v.shape[3])) for k, v in kv] if len(kept) and width > 0 else []
    reused = plan.reused
    out_len = lens - reused - (plan.parent >= 0)  # positions this row scores itself
    for wave in range(int(plan.wave[rows].max()) + 1 if len(rows) else 0):
        todo = rows[plan.wave[rows] == wave]
        _copy_from_parents(w, todo)
        todo = todo[np.argsort(-out_len[todo], kind="stable")]
        start = 0
        while start < len(todo):
            n = max(1, max_tokens // max(int(out_len[todo[start]]), 1))
            chunk = todo[start: start + n]
            start += len(chunk)
            _score_chunk(model, w, chunk, at[chunk], kv, p_attn, first, p_len, store, slot, need_hit,
                         need_z)


def _copy_from_parents(w: _Work, rows: np.ndarray) -> None:
    """Give each row with a parent the parent's per-token values of their shared tokens."""
    rows = rows[w.plan.parent[rows] >= 0]
    if not len(rows):
        return
    h = int(w.plan.share[rows].max())
    r = torch.as_tensor(rows, device=w.nll.device)
    p = torch.as_tensor(w.plan.parent[rows], device=w.nll.device)
    m = torch.arange(h, device=w.nll.device)[None, :] < torch.as_tensor(w.plan.share[rows],
                                                                         device=w.nll.device)[:, None]
    for t in (w.nll, w.hit, w.z):
        t[r, :h] = torch.where(m, t[p, :h], t[r, :h])


def _score_chunk(model, w: _Work, chunk: np.ndarray, owners: np.ndarray, kv, p_attn, first, p_len, store, slot,
                 need_hit: np.ndarray, need_z: np.ndarray) -> None:
    """Forward one chunk of continuation rows from their prompts' (and parents') caches; store its per-token values
    and, for rows that are parents, their keys and values."""
    device = w.nll.device
    own = torch.as_tensor(owners, device=device)
    rc = torch.as_tensor(chunk, device=device)
    lens = w.lens.index_select(0, rc)
    a_np = w.plan.reused[chunk]
    a = torch.as_tensor(a_np, device=device)
    n_in = lens - 1 - a  # tokens this row runs (its last token predicts nothing that is scored)
    A, Tn = int(a_np.max()), int(n_in.max())
    parts = []  # (logits [n, t, V], targets [n, t], valid [n, t], position in the row [n, t], chunk index [n])
    if Tn > 0:
        col = torch.arange(Tn, device=device)[None, :]
        valid = col < n_in[:, None]
        at = (a[:, None] + col).clamp_max(w.tok.shape[1] - 1)
        rows_tok = w.tok.index_select(0, rc)
        cache = new_cache(model)
        ps = torch.as_tensor(np.maximum(slot[np.maximum(w.plan.parent[chunk], 0)], 0), device=device)
        for i, (k, v) in enumerate(kv):
            ks, vs = k.index_select(0, own), v.index_select(0, own)
            if A > 0:
                ks = torch.cat([ks, store[i][0].index_select(0, ps)[:, :, :A]], dim=2)
                vs = torch.cat([vs, store[i][1].index_select(0, ps)[:, :, :A]], dim=2)
            cache.update(ks, vs, i)
        attn = torch.cat([p_attn.index_select(0, own), (torch.arange(A, device=device)[None, :] < a[:, None]).long(),
                          valid.long()], dim=1)
        pos = p_len.index_select(0, own)[:, None] + a[:, None] + col
        lg = model(input_ids=rows_tok.gather(1, at), attention_mask=attn, position_ids=pos, use_cache=True,
                   **{cache_kwarg(model): cache}).logits.float()
        tgt = rows_tok.gather(1, (at + 1).clamp_max(w.tok.shape[1] - 1))
        parts.append((lg, tgt, valid, a[:, None] + 1 + col, np.arange(len(chunk))))
        if store:
            _keep_kv(cache, store, slot[chunk], a, n_in, A, p_attn.shape[1])
    roots = np.flatnonzero(w.plan.parent[chunk] < 0)
    if len(roots):  # a row without a parent: its first token is predicted by the prompt's last position
        r = torch.as_tensor(roots, device=device)
        parts.append((first.index_select(0, own.index_select(0, r))[:, None],
                      w.tok.index_select(0, rc.index_select(0, r))[:, :1],
                      torch.ones(len(roots), 1, dtype=torch.bool, device=device),
                      torch.zeros(len(roots), 1, dtype=torch.long, device=device), roots))
    for lg, tgt, ok, at_pos, sub in parts:
        rr = rc.index_select(0, torch.as_tensor(sub, device=device))
        # -log p of each target from the fused log-softmax + NLL kernel (no copy of the logits)
        nll = torch.nn.functional.cross_entropy(lg.flatten(0, 1), tgt.flatten(), reduction="none").view(tgt.shape)
        _put(w.nll, rr, at_pos, ok, nll, None)
        for need, fn, dst in ((need_hit, _hits, w.hit), (need_z, _zscores, w.z)):
            # the argmax (accuracies) and the full log-softmax (MIA) only where read: on TOFU's sets 1 row in 6-7
            s = np.flatnonzero(need[chunk[sub]])
            if len(s):
                st = torch.as_tensor(s, device=device)
                _put(dst, rr, at_pos, ok, fn(lg.index_select(0, st), tgt.index_select(0, st),
                                             nll.index_select(0, st)), st)


def _put(dst: torch.Tensor, rows: torch.Tensor, at_pos: torch.Tensor, ok: torch.Tensor, val: torch.Tensor,
         sel: torch.Tensor | None) -> None:
    """Write per-token values ``val`` [n, t] of rows ``rows[sel]`` at their positions, where ``ok``."""
    if sel is not None:
        rows, at_pos, ok = rows.index_select(0, sel), at_pos.index_select(0, sel), ok.index_select(0, sel)
    dst[rows[:, None].expand_as(at_pos)[ok], at_pos[ok]] = val[ok]


def _hits(lg: torch.Tensor, tgt: torch.Tensor, nll: torch.Tensor) -> torch.Tensor:
    return (lg.argmax(-1) == tgt).float()


def _zscores(lg: torch.Tensor, tgt: torch.Tensor, nll: torch.Tensor) -> torch.Tensor:
    """Min-K%++ z-score of each target: its log-prob standardised by the mean and spread of the log-probs."""
    lp = torch.log_softmax(lg, dim=-1)
    p = lp.exp()
    mu = (p * lp).sum(-1)
    sigma2 = ((p * lp.square()).sum(-1) - mu.square()).clamp_min(1e-6)
    return (-nll - mu) / sigma2.sqrt()


def _keep_kv(cache, store, slots: np.ndarray, a: torch.Tensor, n_in: torch.Tensor, A: int, Tp: int) -> None:
    """Copy the keys/values of each parent row's own tokens (reused ones, then run ones) into its store slot."""
    keep = np.flatnonzero(slots >= 0)
    if not len(keep):
        return
    device = a.device
    kk = torch.as_tensor(keep, device=device)
    width = store[0][0].shape[2]
    j = torch.arange(width, device=device)[None, :]
    ak = a.index_select(0, kk)[:, None]
    src = torch.where(j < ak, Tp + j, Tp + A + (j - ak))
    src = src.clamp_max(Tp + A + int(n_in.max()) - 1)
    dst = torch.as_tensor(slots[keep], device=device)
    for (ks, vs), layer in zip(store, cache.layers):
        for buf, t in ((ks, layer.keys), (vs, layer.values)):
            t = t.index_select(0, kk)
            idx = src[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[3])
            buf[dst] = t.gather(2, idx)


def _results(w: _Work, gt: Sequence[np.ndarray] | None, device) -> ContinuationScores:
    """Per-row statistics from the per-token values."""
    R, T = w.nll.shape
    lens = w.lens_np
    valid = torch.arange(T, device=device)[None, :] < w.lens[:, None]
    m = valid.double()
    g = torch.from_numpy(padded(gt, lens, False, bool)).to(device).double() * m if gt is not None else None
    n_fact = g.sum(1) if g is not None else torch.zeros(R, dtype=torch.float64, device=device)
    hit = w.hit.double() * m
    acc = hit.sum(1) / m.sum(1).clamp_min(1)
    fa = (hit * g).sum(1) / n_fact.clamp_min(1) if g is not None else torch.full_like(acc, float("nan"))
    fa = torch.where(n_fact > 0, fa, torch.full_like(fa, float("nan")))
    nan = torch.as_tensor(~w.acc, device=device)
    dist_rows = np.flatnonzero(w.dist)
    Ld = int(lens[dist_rows].max()) if len(dist_rows) else 0
    dr = torch.as_tensor(dist_rows, device=device)
    dmask = valid.index_select(0, dr)[:, :Ld]
    return ContinuationScores(
        sum_nll=(w.nll.double() * m).sum(1).cpu().numpy(), n_tokens=lens.astype(np.int64),
        acc=acc.masked_fill(nan, float("nan")).cpu().numpy(),
        fact_acc=fa.masked_fill(nan, float("nan")).cpu().numpy(), n_fact=n_fact.cpu().numpy().astype(np.int64),
        dist_rows=dist_rows, dist_lp=(-w.nll.index_select(0, dr)[:, :Ld] * dmask).cpu(),
        dist_z=(w.z.index_select(0, dr)[:, :Ld] * dmask).cpu(), dist_mask=dmask.cpu())
