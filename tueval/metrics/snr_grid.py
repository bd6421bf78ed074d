"""Gradient SNR of many weightings at once, on per-seed (reference half, evaluation half) splits.

Every metric is a quadratic form in per-TOKEN gradients. For example i with per-token gradients J_i [K_i, P]
(one vector-Jacobian product per answer token, ``per_example_grads`` with one weighting per token),
g_i(w) = J_i^T w_i, so <g_i, u> = w_i . (J_i u), ||g_i||^2 = w_i^T (J_i J_i^T) w_i, and the sums over the
evaluation half are accumulated as one matrix product. This costs K_i VJPs per example once per model, against 2
per weighting per example in ``snr_report``; ``snr_grid`` takes the cheaper route and both agree (tests check it).
The formulas are ``tueval.metrics.snr.snr_metrics``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .snr import per_example_grads, reference_direction, select_params, snr_metrics, snr_report


def seed_split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """(reference half, evaluation half) of n examples for ``seed``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[: n // 2]), sorted(perm[n // 2:])


def _grid_metrics(proj: np.ndarray, sq: np.ndarray, ssum: torch.Tensor, nsum: torch.Tensor, u: torch.Tensor
                  ) -> dict:
    """``snr_metrics`` from the token route's per-example projections and squared norms."""
    return snr_metrics(torch.from_numpy(proj), torch.from_numpy(sq), (ssum + nsum).double(), ssum, nsum, u)


def _answer_positions(ans: torch.Tensor) -> list[torch.Tensor]:
    return [torch.nonzero(row, as_tuple=True)[0] for row in ans]


def _token_route(model, batch, splits, weights, gt, names, chunk: int, mem_mb: int) -> pd.DataFrame:
    """Every (split, weighting) from per-token gradients: K VJPs per example, once."""
    ans = batch.answer_mask.bool()
    pos = _answer_positions(ans)
    N = len(batch)
    K = max(int(p.numel()) for p in pos)
    U = torch.stack([reference_direction(model, batch.select(r), params=names) for r, _ in splits]).float()
    P = U.shape[1]
    gtf = (gt.bool() & ans).float()

    def packed(x: torch.Tensor) -> torch.Tensor:  # [N, T] -> [N, K] over answer positions
        out = torch.zeros(N, K, dtype=torch.float64)
        for i, p in enumerate(pos):  # N rows, once per weighting: cheap bookkeeping, not a hot path
            out[i, : p.numel()] = x[i, p].double()
        return out

    gtp = packed(gtf)
    # rows of the accumulator: (split j, weighting key, part) with part 0 = signal, 1 = noise
    jobs, wp = [], {}
    for j, (_, ev) in enumerate(splits):
        evm = torch.zeros(N, 1, dtype=torch.float64)
        evm[ev] = 1.0
        for key, w in weights[j].items():
            p = packed(w)
            wp[(j, key)] = p
            jobs.append(((j, key), p * gtp * evm, p * (1 - gtp) * evm))
    per_group = max(1, int(mem_mb * 2 ** 20 // (2 * 4 * P)))
    groups = [jobs[i:i + per_group] for i in range(0, len(jobs), per_group)]
    union = sorted(set().union(*[set(ev) for _, ev in splits]))
    A = torch.zeros(N, K, len(splits), dtype=torch.float64)
    Gram = torch.zeros(N, K, K, dtype=torch.float64)
    sums: dict = {}
    for gi, group in enumerate(groups):
        M = torch.stack([x for _, s, n in group for x in (s, n)]).float()  # [R, N, K]
        acc = torch.zeros(M.shape[0], P)
        for c in range(0, len(union), chunk):
            idx = union[c:c + chunk]
            sub = batch.select(idx)
            kc = max(int(pos[i].numel()) for i in idx)
            W = torch.zeros(kc, len(idx), sub.input_ids.shape[1])
            for b, i in enumerate(idx):
                W[torch.arange(pos[i].numel()), b, pos[i]] = 1.0
            J = per_example_grads(model, sub, W, params=names, chunk_size=len(idx)).permute(1, 0, 2)  # [c, kc, P]
            if gi == 0:
                A[idx, :kc] = torch.einsum("ckp,sp->cks", J, U).double()
                Gram[idx, :kc, :kc] = torch.bmm(J, J.transpose(1, 2)).double()
            acc += M[:, idx, :kc].reshape(M.shape[0], -1) @ J.reshape(-1, P)
        for r, (key, _, _) in enumerate(group):
            sums[key] = (acc[2 * r], acc[2 * r + 1])
    rows = []
    for j, (_, ev) in enumerate(splits):
        for key in weights[j]:
            w = wp[(j, key)][ev]
            proj = (w * A[ev, :, j]).sum(1).numpy()
            sq = torch.einsum("nk,nkl,nl->n", w, Gram[ev], w).numpy()
            rows.append({"split": j, "weighting": key[0], "k": key[1],
                         **_grid_metrics(proj, sq, *sums[(j, key)], U[j]), "n_params": P})
    return pd.DataFrame(rows)


def _report_route(model, batch, splits, weights, gt, names, chunk: int) -> pd.DataFrame:
    """Every (split, weighting) by ``snr_report``: 2 VJPs per weighting per example."""
    frames = []
    for j, (ref, ev) in enumerate(splits):
        keys = list(weights[j])
        wb = {f"{i}": weights[j][k][ev] for i, k in enumerate(keys)}
        be, br = batch.select(ev), batch.select(ref)
        df = snr_report(model, be, br, wb, gt_mask=gt[ev], params=names, chunk_size=chunk,
                        ref_gt_mask=gt[ref])
        idx = [int(i) for i in df.weighting]
        df["weighting"] = [keys[i][0] for i in idx]
        df.insert(1, "k", [keys[i][1] for i in idx])
        df.insert(0, "split", j)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def snr_grid(model, batch, splits, weights, gt: torch.Tensor, params: str | None = "last_block", chunk: int = 4,
             mem_mb: int = 1024, route: str = "auto") -> pd.DataFrame:
    """SNR metrics of every (split, weighting): ``splits`` = [(reference idx, evaluation idx)], ``weights`` = one
    dict per split {(name, k label): [N, T]}, ``gt`` [N, T] the signal tokens. ``route``: ``tokens`` (per-token
    gradients, cost ~K VJPs per example once), ``report`` (``snr_report`` per split, 2 VJPs per weighting per
    example) or ``auto`` (the cheaper)."""
    names = select_params(model, params)
    if route == "auto":
        K = float(batch.answer_mask.sum(1).float().mean())
        n_union = len(set().union(*[set(ev) for _, ev in splits]))
        cost_tokens = n_union * K
        cost_report = sum(2 * len(w) * len(ev) for w, (_, ev) in zip(weights, splits))
        route = "tokens" if cost_tokens < cost_report else "report"
    if route == "tokens":
        df = _token_route(model, batch, splits, weights, gt, names, chunk, mem_mb)
    else:
        df = _report_route(model, batch, splits, weights, gt, names, chunk)
    df["route"] = route
    return df
