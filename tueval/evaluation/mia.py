"""Membership-inference scores (LOSS, ZLib, Min-K%, Min-K%++), AUC and privleak, as open-unlearning defines them.

Scores are oriented like open-unlearning's: higher = *less* member-like (an NLL-like quantity).
- LOSS: average NLL over answer tokens incl. EOS.
- ZLib: LOSS / len(zlib.compress(answer.encode("utf-8"))).
- Min-K% (k): -mean of the floor(k*n) (at least 1) lowest token log-probs; EOS excluded.
- Min-K%++ (k): the same on z_t = (log p(y_t) - mu_t) / sigma_t with mu_t = Σ_v p_v log p_v and
  sigma_t^2 = Σ_v p_v (log p_v)^2 - mu_t^2 (clamped at 1e-6); EOS excluded.
A row without scoreable tokens scores 0 (as open-unlearning).
AUC = roc_auc_score(labels, scores) with forget (members) = 0 and holdout (non-members) = 1.
privleak = ((1 - AUC_model) - (1 - AUC_retain)) / (1 - AUC_retain) * 100 (open-unlearning, MUSE orientation).
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from ..data.schema import Example
from .likelihood import SetJob, SetScores, score_sets

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")
DEFAULT_K = 0.4
DEFAULT_RETAIN_AUC = 0.5
"""open-unlearning's fallback retain AUC for privleak when no retain-model value is given."""


def drop_last_token(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` without each row's last True position (the EOS label of an answer)."""
    m = mask.bool()
    last = m & (m.long().cumsum(1) == m.long().sum(1, keepdim=True))
    return m & ~last


def bottom_k_mean(values: torch.Tensor, mask: torch.Tensor, k: float = DEFAULT_K) -> torch.Tensor:
    """Per row, -mean of the floor(k*n) (>= 1) smallest masked values; 0 for rows with no masked value."""
    m = mask.bool()
    n = m.sum(1)
    num_k = torch.floor(n.double() * k).long().clamp_min(1)
    v = values.double().masked_fill(~m, float("inf"))
    srt = v.sort(dim=1).values
    take = torch.arange(v.shape[1], device=v.device)[None, :] < num_k[:, None]
    total = torch.where(take, srt, torch.zeros_like(srt)).sum(1)
    return torch.where(n > 0, -total / num_k, torch.zeros_like(total))


def min_k(token_logprobs: torch.Tensor, mask: torch.Tensor, k: float = DEFAULT_K) -> torch.Tensor:
    """Min-K% score per row from token log-probs [B, T] and the scored-token mask [B, T]."""
    return bottom_k_mean(token_logprobs, mask, k)


def scores_from_token_stats(token_lp: torch.Tensor, z: torch.Tensor, mask: torch.Tensor,
                            k: float = DEFAULT_K) -> dict[str, torch.Tensor]:
    """LOSS, Min-K% and Min-K%++ scores ([B] each) from per-token log-probs, Min-K%++ z-scores and the answer mask
    ([B, T] each, aligned alike)."""
    m = mask.bool()
    n = m.sum(1)
    loss = -(token_lp * m).sum(1) / n.clamp_min(1)
    scored = drop_last_token(m)
    return {"loss": loss, "min_k": min_k(token_lp, scored, k), "min_k_plus_plus": bottom_k_mean(z, scored, k),
            "n_tokens": n}


def scores_from_logits(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor,
                       k: float = DEFAULT_K) -> dict[str, torch.Tensor]:
    """LOSS, Min-K% and Min-K%++ scores ([B] each) from logits aligned as in ``tueval.tokens``."""
    lp_all = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = F.pad(lp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1), (1, 0))
    p = lp_all.exp()
    mu = (p * lp_all).sum(-1)
    sigma2 = ((p * lp_all.square()).sum(-1) - mu.square()).clamp_min(1e-6)
    z = F.pad((tok[:, 1:] - mu) / sigma2.sqrt(), (1, 0))
    return scores_from_token_stats(tok, z, answer_mask, k)


@lru_cache(maxsize=100_000)
def zlib_length(text: str) -> int:
    """Length in bytes of the zlib-compressed UTF-8 text."""
    return len(zlib.compress(text.encode("utf-8")))


def scores_table(examples: Sequence[Example], scores: SetScores, k: float = DEFAULT_K) -> pd.DataFrame:
    """Per-example MIA scores (example_id, loss, zlib, min_k, min_k_plus_plus, n_tokens) from the ``answer``
    scores of ``score_sets`` with ``dist=("answer",)``."""
    lp, z, mask = scores.dist["answer"]
    s = scores_from_token_stats(lp, z, mask, k)
    st = scores.stats["answer"]
    df = pd.DataFrame({"example_id": [e.id for e in examples]})
    with np.errstate(divide="ignore", invalid="ignore"):
        df["loss"] = np.where(st.n_tokens > 0, st.sum_nll / np.maximum(st.n_tokens, 1), 0.0)
    df["zlib"] = df["loss"].to_numpy() / np.array([zlib_length(e.answer) for e in examples], dtype=float)
    df["min_k"] = s["min_k"].double().numpy()
    df["min_k_plus_plus"] = s["min_k_plus_plus"].double().numpy()
    df["n_tokens"] = st.n_tokens.astype(np.int64)
    return df


def example_scores(model, tokenizer, examples: Sequence[Example], k: float = DEFAULT_K,
                   batch_size: int = 256) -> pd.DataFrame:
    """Per-example MIA scores on the answers of ``examples``: example_id, loss, zlib, min_k, min_k_plus_plus."""
    sc = score_sets(model, tokenizer, {"x": SetJob(examples, ("answer",), ("answer",), ())}, batch_size)["x"]
    return scores_table(examples, sc, k)


def labelled(forget: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """Forget (members, label 0) and holdout (non-members, label 1) score tables as one table."""
    f, h = forget.copy(), holdout.copy()
    f.insert(1, "split", "forget")
    f.insert(2, "label", 0)
    h.insert(1, "split", "holdout")
    h.insert(2, "label", 1)
    return pd.concat([f, h], ignore_index=True)


def mia_table(model, tokenizer, forget_examples: Sequence[Example], holdout_examples: Sequence[Example],
              k: float = DEFAULT_K, batch_size: int = 256) -> pd.DataFrame:
    """Per-example scores of forget (members, label 0) and holdout (non-members, label 1) examples."""
    jobs = {"forget": SetJob(forget_examples, ("answer",), ("answer",), ()),
            "holdout": SetJob(holdout_examples, ("answer",), ("answer",), ())}
    sc = score_sets(model, tokenizer, jobs, batch_size)
    return labelled(scores_table(forget_examples, sc["forget"], k), scores_table(holdout_examples, sc["holdout"], k))


def mia_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC-AUC of separating members (label 0) from non-members (label 1) by score (1 = fully memorised)."""
    m, nm = np.asarray(member_scores, dtype=float), np.asarray(nonmember_scores, dtype=float)
    labels = np.concatenate([np.zeros(len(m)), np.ones(len(nm))])
    return float(roc_auc_score(labels, np.concatenate([m, nm])))


def privleak(auc_model: float, auc_retain: float = DEFAULT_RETAIN_AUC) -> float:
    """Relative privacy leakage (%) of the model's AUC vs the retain model's, on the 1 - AUC scale; ~0 is ideal."""
    a, r = 1.0 - auc_model, 1.0 - auc_retain
    return (a - r) / (r + 1e-10) * 100.0


def mia_summary(table: pd.DataFrame, retain_aucs: Mapping[str, float] | None = None) -> dict[str, float]:
    """AUC per attack (``mia_<attack>``) and privleak on Min-K% against the retain model (or AUC 0.5)."""
    mem, non = table[table["label"] == 0], table[table["label"] == 1]
    out = {f"mia_{a}": mia_auc(mem[a], non[a]) for a in ATTACKS}
    ref = (retain_aucs or {}).get("mia_min_k", DEFAULT_RETAIN_AUC)
    out["privleak"] = privleak(out["mia_min_k"], ref)
    out["privleak_reference_auc"] = float(ref)
    return out
