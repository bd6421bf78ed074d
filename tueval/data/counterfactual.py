"""The counterfactual ground truth: answer tokens the target model predicts much better than the retain model."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..forward import model_device
from ..tokens import token_logprobs
from .collate import Batch, collate
from .schema import Example


@torch.no_grad()
def token_table(target, retain, tokenizer, examples: Sequence[Example], threshold: float = 1.0,
                batch_size: int = 64) -> pd.DataFrame:
    """One row per answer token: log-probs under both models, top-1 hits, span and counterfactual labels."""
    frames = []
    dev_t, dev_r = model_device(target), model_device(retain)
    for i in range(0, len(examples), batch_size):
        b = collate(examples[i: i + batch_size], tokenizer)
        lt_logits = target(**b.to(dev_t).model_inputs()).logits.float().cpu()
        lr_logits = retain(**b.to(dev_r).model_inputs()).logits.float().cpu()
        lt, lr = token_logprobs(lt_logits, b.input_ids), token_logprobs(lr_logits, b.input_ids)
        top_t = torch.cat([b.input_ids[:, :1], lt_logits[:, :-1].argmax(-1)], 1) == b.input_ids
        top_r = torch.cat([b.input_ids[:, :1], lr_logits[:, :-1].argmax(-1)], 1) == b.input_ids
        rows, cols = torch.nonzero(b.answer_mask, as_tuple=True)
        frames.append(pd.DataFrame({
            "example_id": np.asarray(b.example_ids)[rows.numpy()],
            "position": cols.numpy(),
            "token_id": b.input_ids[rows, cols].numpy(),
            "lp_target": lt[rows, cols].numpy(),
            "lp_retain": lr[rows, cols].numpy(),
            "top1_target": top_t[rows, cols].numpy(),
            "top1_retain": top_r[rows, cols].numpy(),
            "gt_span": b.gt_mask[rows, cols].numpy(),
        }))
    df = pd.concat(frames, ignore_index=True)
    df["gt_counterfactual"] = (df.lp_target - df.lp_retain) > threshold
    df.attrs["threshold"] = threshold
    return df


def overlap_summary(df: pd.DataFrame) -> dict:
    """How the span ground truth (a) and the counterfactual ground truth (b) overlap, plus retain predictability."""
    a, b = df.gt_span.to_numpy(bool), df.gt_counterfactual.to_numpy(bool)
    inter, union = int((a & b).sum()), int((a | b).sum())
    return {
        "answer_tokens": int(len(df)),
        "span_tokens": int(a.sum()),
        "counterfactual_tokens": int(b.sum()),
        "span_fraction": float(a.mean()),
        "counterfactual_fraction": float(b.mean()),
        "p_cf_given_span": float(b[a].mean()) if a.any() else float("nan"),
        "p_span_given_cf": float(a[b].mean()) if b.any() else float("nan"),
        "jaccard": inter / union if union else float("nan"),
        "retain_top1_on_span_tokens": float(df.top1_retain.to_numpy()[a].mean()) if a.any() else float("nan"),
        "target_top1_on_span_tokens": float(df.top1_target.to_numpy()[a].mean()) if a.any() else float("nan"),
        "retain_top1_on_other_tokens": float(df.top1_retain.to_numpy()[~a].mean()) if (~a).any() else float("nan"),
        "threshold_nats": float(df.attrs.get("threshold", float("nan"))),
    }


def attach_counterfactual(batch: Batch, df: pd.DataFrame) -> Batch:
    """Put the counterfactual mask into ``batch.extras['gt_counterfactual']`` (False where unknown)."""
    mask = torch.zeros_like(batch.gt_mask)
    sub = df[df.example_id.isin(batch.example_ids)]
    if len(sub):
        row_of = {e: i for i, e in enumerate(batch.example_ids)}
        # copies: pandas hands out read-only views of its columns, which torch cannot wrap
        rows = torch.tensor(sub.example_id.map(row_of).to_numpy(copy=True), dtype=torch.long)
        cols = torch.tensor(sub.position.to_numpy(copy=True), dtype=torch.long)
        mask[rows, cols] = torch.tensor(sub.gt_counterfactual.to_numpy(bool, copy=True))
    batch.extras["gt_counterfactual"] = mask
    return batch
