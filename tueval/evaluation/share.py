"""How the answer variants of one prompt share their first tokens: which row runs from which other's keys and
values, and from where (``share_plan``), for ``tueval.evaluation.prefix``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class SharePlan:
    """How the continuations of one prompt share their first tokens: row r reuses the first ``share[r]``
    per-token scores of row ``parent[r]`` (-1: none, a root) and the keys/values of its first ``share[r] - 1``
    tokens, so it runs only its tokens from ``share[r]`` on. A parent is always a root, so the work runs in two
    waves: the roots, then every other row."""

    parent: np.ndarray
    share: np.ndarray

    @property
    def reused(self) -> np.ndarray:
        """Keys/values taken from the parent per row (0 for a root)."""
        return np.maximum(self.share - 1, 0)

    @property
    def wave(self) -> np.ndarray:
        """The wave each row runs in: 0 for a root, 1 for a row with a parent."""
        return (self.parent >= 0).astype(np.int64)


def share_plan(tok: np.ndarray, lens: np.ndarray, owner: np.ndarray, prefer: np.ndarray | None = None,
               min_share: int = 2) -> SharePlan:
    """The sharing plan of padded continuation ids ``tok`` [R, L] (row r valid in its first ``lens[r]`` cells) owned
    by prompts ``owner``: the rows of one prompt that begin with the same ``min_share`` tokens share with one of
    them, the first ``prefer``-red row of the group if any, else the lexicographically first, as far as they agree
    with it (one position runs again: the last shared token predicts the row's own next token). Rows whose
    accuracies or MIA statistics are read are preferred, so that no other row has to compute them to pass on."""
    R = len(lens)
    parent, share = np.full(R, -1, dtype=np.int64), np.zeros(R, dtype=np.int64)
    if R < 2 or tok.shape[1] < min_share:
        return SharePlan(parent, share)
    key = np.where(np.arange(tok.shape[1])[None, :] < lens[:, None], tok, -1)  # -1: shorter rows sort first
    order = np.lexsort(tuple(key[:, j] for j in range(key.shape[1] - 1, -1, -1)) + (owner,))
    head = np.column_stack([owner, key[:, :min_share]])[order]
    new = np.ones(R, dtype=bool)
    new[1:] = (head[1:] != head[:-1]).any(1)
    group = np.cumsum(new) - 1
    at = np.flatnonzero(new)[group]  # sorted position of each group's first row
    if prefer is not None:
        pos = np.where(np.asarray(prefer, dtype=bool)[order], np.arange(R), R)
        first_pref = np.full(group[-1] + 1, R)
        np.minimum.at(first_pref, group, pos)
        at = np.where(first_pref[group] < R, first_pref[group], at)
    root = order[at]
    lcp = np.cumprod(key[root] == key[order], axis=1).sum(1)
    s = np.minimum(np.minimum(lcp, lens[root]), lens[order] - 1)  # a row keeps at least its last token to run
    ok = (root != order) & (s >= min_share)
    parent[order[ok]], share[order[ok]] = root[ok], s[ok]
    return SharePlan(parent, share)


def ancestors_too(flag: np.ndarray, plan: SharePlan) -> np.ndarray:
    """``flag`` raised also on the parent of every flagged row (a child copies its parent's per-token values)."""
    out = flag.copy()
    out[plan.parent[flag & (plan.parent >= 0)]] = True
    return out


def padded(arrs: Sequence[Sequence], lens: np.ndarray, fill, dtype) -> np.ndarray:
    """[R, max len] matrix of per-row sequences (row r holds ``arrs[r]`` in its first ``lens[r]`` cells)."""
    T = int(lens.max()) if len(lens) else 0
    valid = np.arange(T)[None, :] < lens[:, None]
    out = np.full((len(lens), T), fill, dtype=dtype)
    if len(lens):
        out[valid] = np.concatenate([np.asarray(a, dtype=dtype)[:n] for a, n in zip(arrs, lens)])
    return out
