"""``tueval finetune``: a target and a retain model from one base model, with TOFU's finetuning recipe.

TOFU trains its target on every fictitious author (``full``) and its retain model on all but the forget split,
both from the same base: AdamW, learning rate 1e-5, weight decay 0.01, one warm-up epoch then linear decay, five
epochs, loss on answer tokens (EOS included: the model must learn to stop). Gradient accumulation and gradient
checkpointing are settings; batches are as long as their longest row.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..data.collate import Batch, collate
from ..data.schema import Example
from ..forward import model_device
from ..tokens import token_logprobs


@dataclass
class FinetuneResult:
    """What finetuning did (the fields ``tueval prepare`` reports for every model)."""

    epochs: int
    steps: int
    loss: float
    acc: float
    fact_acc: float
    train_tokens: int
    seconds: float
    tokens_per_second: float
    log: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` optimiser steps, then linear decay to 0 at ``total`` (HF's linear schedule)."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


@torch.no_grad()
def answer_accuracy(model, data: Batch, batch_size: int = 16) -> tuple[float, float]:
    """Teacher-forced accuracy on answer tokens and on ground-truth (fact) tokens."""
    from ..forward import eval_mode

    hit_a = n_a = hit_f = n_f = 0
    dev = model_device(model)
    with eval_mode(model):
        for i in range(0, len(data), batch_size):
            b = Batch.trim(data.select(range(i, min(i + batch_size, len(data))))).to(dev)
            logits = model(**b.model_inputs()).logits
            pred = torch.nn.functional.pad(logits[:, :-1].argmax(-1), (1, 0), value=-1)
            hit = pred == b.input_ids
            hit_a += int((hit & b.answer_mask).sum())
            n_a += int(b.answer_mask.sum())
            hit_f += int((hit & b.gt_mask).sum())
            n_f += int(b.gt_mask.sum())
    return hit_a / max(n_a, 1), (hit_f / n_f if n_f else float("nan"))


def finetune(model, tokenizer, examples: Sequence[Example], settings, progress: bool = True, desc: str = "finetune",
             max_steps: int | None = None) -> FinetuneResult:
    """Train ``model`` in place on ``examples`` (``settings``: ``tueval.config.workdir.FinetuneSettings``).
    ``max_steps`` stops early (a dry run that measures the cost of a step)."""
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    data = collate(list(examples), tokenizer, max_length=settings.max_length, special_tokens="include")
    dev = model_device(model)
    n, bs, accum = len(data), settings.batch_size, settings.grad_accum
    micro_per_epoch = math.ceil(n / bs)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total = steps_per_epoch * settings.epochs
    if settings.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr,
                            weight_decay=settings.weight_decay)
    warm = settings.warmup_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warm, total))
    model.train()
    tokens, step, t0, loss_v, log = 0, 0, time.perf_counter(), float("nan"), []
    bar = tqdm(total=max_steps or total, desc=desc, unit="step", disable=not progress, leave=False)
    epoch = 0
    for epoch in range(1, settings.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        micro = [perm[i: i + bs] for i in range(0, n, bs)]
        for j in range(0, len(micro), accum):
            group = micro[j: j + accum]
            n_tok = sum(int(data.answer_mask[idx].sum()) for idx in group)
            opt.zero_grad(set_to_none=True)
            total_loss = 0.0
            for idx in group:
                b = Batch.trim(data.select(idx)).to(dev)
                lp = token_logprobs(model(**b.model_inputs()).logits, b.input_ids)
                # the token mean over the whole accumulated batch: accumulation gives the same update as one batch
                loss = -(lp * b.answer_mask).sum() / max(n_tok, 1)
                loss.backward()
                total_loss += float(loss.detach())
                tokens += int(b.attention_mask.sum())
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            loss_v = total_loss
            bar.update(1)
            bar.set_postfix(loss=f"{loss_v:.3f}")
            if max_steps is not None and step >= max_steps:
                break
        log.append({"epoch": epoch, "step": step, "loss": loss_v, "seconds": time.perf_counter() - t0})
        if max_steps is not None and step >= max_steps:
            break
    bar.close()
    secs = time.perf_counter() - t0
    acc, fact_acc = (float("nan"), float("nan")) if max_steps is not None else answer_accuracy(model, data)
    model.eval()
    return FinetuneResult(epochs=epoch, steps=step, loss=loss_v, acc=acc, fact_acc=fact_acc, train_tokens=tokens,
                          seconds=secs, tokens_per_second=tokens / max(secs, 1e-9), log=log)


def finetune_pair(base: str | Path, bench, settings, out: dict[str, Path], forget_split: str, device: str = "cpu",
                  dtype: str = "float32", prompt=None, progress: bool = True) -> dict[str, dict]:
    """Finetune ``base`` into the target (every training example) and the retain model (all but the forget
    split) and save each to ``out[which]``; returns each model's ``FinetuneResult`` as a dict."""
    from ..data.format import set_format
    from ..models.load import is_complete_model_dir, load_model, save_model
    from ..provenance import provenance

    results = {}
    for which in ("target", "retain"):
        if is_complete_model_dir(out[which]):
            import json

            results[which] = json.loads((Path(out[which]) / "meta.json").read_text())["train"]
            continue
        model, tok = load_model(base, device=device, dtype=dtype)
        if prompt is not None:
            set_format(tok, prompt)
        examples = bench.train_examples(which, forget_split)
        res = finetune(model, tok, examples, settings, progress=progress, desc=f"finetune {which}")
        save_model(model, tok, out[which], meta={"train": res.to_dict(), "base": str(base),
                                                 "finetune": settings.to_dict(), "which": which,
                                                 "n_train_examples": len(examples), "provenance": provenance()})
        results[which] = res.to_dict()
        del model
    return results
