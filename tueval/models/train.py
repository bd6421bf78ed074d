"""Training a tiny model from scratch on QA examples, seeded, stopping on fact-token accuracy."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..data.collate import Batch, collate
from ..data.schema import Example
from ..tokens import token_logprobs


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and stopping settings (feasibility: AdamW 3e-3, betas .9/.98, 2-epoch warm-up, clip 1).

    ``schedule``: ``constant`` after the linear warm-up, or ``cosine``: decay from ``lr`` to ``lr * min_lr_frac``
    at epoch ``decay_epochs``, then constant. Fact-token accuracy is evaluated every ``eval_every`` epochs from
    epoch ``eval_from`` on; training stops at ``stop_fact_acc`` once ``min_epochs`` are done."""

    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    warmup_epochs: int = 2
    batch_size: int = 32
    clip: float = 1.0
    max_epochs: int = 80
    min_epochs: int = 10
    eval_every: int = 5
    stop_fact_acc: float = 0.985
    seed: int = 0
    schedule: str = "constant"
    decay_epochs: int = 0
    min_lr_frac: float = 0.05
    eval_from: int = 0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{self.schedule}'; valid: {', '.join(SCHEDULES)}")
        if self.schedule == "cosine" and self.decay_epochs <= self.warmup_epochs:
            raise ValueError(f"cosine schedule needs decay_epochs > warmup_epochs, got {self.decay_epochs}")

    def to_dict(self) -> dict:
        """The settings, without the later-added ones that hold their default (so model hashes stay stable)."""
        d = asdict(self)
        for k in HASH_OPTIONAL:
            if d[k] == self.__dataclass_fields__[k].default:
                d.pop(k)
        return d

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        """The learning-rate multiplier at optimiser step ``step`` (0-based)."""
        warm = max(1, self.warmup_epochs * steps_per_epoch)
        if step < warm or self.schedule == "constant":
            return min(1.0, (step + 1) / warm)
        span = max(1, self.decay_epochs * steps_per_epoch - warm)
        frac = min(1.0, (step - warm) / span)
        return self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac))


SCHEDULES = ("constant", "cosine")
#: TrainConfig fields added after models were cached: left out of ``to_dict`` (the model hash) at their default
HASH_OPTIONAL = ("schedule", "decay_epochs", "min_lr_frac", "eval_from")


@dataclass
class TrainResult:
    """What training did: epochs, final accuracies, tokens per second, a per-evaluation log."""

    epochs: int
    fact_acc: float
    acc: float
    train_tokens: int
    seconds: float
    tokens_per_second: float
    log: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def next_stop_check(cfg: TrainConfig, after: int) -> int:
    """The first epoch after ``after`` at which training can stop: an accuracy check at or after ``min_epochs``
    (``max_epochs`` at the latest)."""
    for e in range(after + 1, cfg.max_epochs + 1):
        checked = (e % cfg.eval_every == 0 and e >= cfg.eval_from) or e == cfg.max_epochs
        if checked and e >= cfg.min_epochs:
            return e
    return cfg.max_epochs


def pack(examples: Sequence[Example], tokenizer) -> Batch:
    """All examples as one right-padded Batch (sliced per step to each batch's own length)."""
    return collate(list(examples), tokenizer)


@torch.no_grad()
def token_accuracy(model, data: Batch, batch_size: int = 128) -> tuple[float, float]:
    """Teacher-forced accuracy on answer tokens and on fact (gt) tokens."""
    model.eval()
    hit_a = n_a = hit_f = n_f = 0
    for i in range(0, len(data), batch_size):
        b = Batch.trim(data.select(range(i, min(i + batch_size, len(data)))))
        logits = model(**b.model_inputs()).logits
        pred = torch.cat([torch.zeros_like(b.input_ids[:, :1]), logits[:, :-1].argmax(-1)], 1)
        hit = pred == b.input_ids
        hit_a += int((hit & b.answer_mask).sum())
        n_a += int(b.answer_mask.sum())
        hit_f += int((hit & b.gt_mask).sum())
        n_f += int(b.gt_mask.sum())
    return hit_a / max(n_a, 1), hit_f / max(n_f, 1)


def answer_nll(model, b: Batch) -> torch.Tensor:
    """Token-mean NLL over answer tokens (the training loss)."""
    logits = model(**b.model_inputs()).logits
    lp = token_logprobs(logits, b.input_ids)
    m = b.answer_mask.float()
    return -(lp * m).sum() / m.sum()


def train_model(
    model, tokenizer, examples: Sequence[Example], cfg: TrainConfig = TrainConfig(),
    eval_examples: Sequence[Example] | None = None, progress: bool = True, desc: str = "train",
    on_eval: Callable[[dict], None] | None = None, position: int | None = None,
) -> TrainResult:
    """Train ``model`` in place on answer tokens until fact-token accuracy reaches ``cfg.stop_fact_acc``."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = pack(examples, tokenizer)
    eval_data = pack(eval_examples, tokenizer) if eval_examples is not None else data
    n = len(data)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cfg.lr_factor(s, steps_per_epoch))
    log: list[dict] = []
    tokens = 0
    t0 = time.perf_counter()
    acc = fact_acc = 0.0
    epoch = 0
    # the bar counts to the next epoch at which training may stop (the next accuracy check), moved on at each
    # check that does not stop it: its total and ETA are what it will count, never the max_epochs cap
    bar = tqdm(total=next_stop_check(cfg, 0), desc=desc, unit="epoch", disable=not progress, leave=False,
               position=position)
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            b = Batch.trim(data.select(perm[i: i + cfg.batch_size]))
            loss = answer_nll(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            tokens += int(b.attention_mask.sum())
        if (epoch % cfg.eval_every == 0 and epoch >= cfg.eval_from) or epoch == cfg.max_epochs:
            acc, fact_acc = token_accuracy(model, eval_data)
            rec = {"epoch": epoch, "loss": float(loss.detach()), "acc": acc, "fact_acc": fact_acc,
                   "seconds": time.perf_counter() - t0}
            log.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", fact_acc=f"{fact_acc:.3f}")
            if on_eval:
                on_eval(rec)
            if epoch >= cfg.min_epochs and fact_acc >= cfg.stop_fact_acc:
                bar.update(1)
                break
        bar.update(1)
        if epoch >= bar.total and epoch < cfg.max_epochs:
            bar.total = next_stop_check(cfg, epoch)
            bar.refresh()
    bar.close()
    model.eval()
    secs = time.perf_counter() - t0
    return TrainResult(epochs=epoch, fact_acc=fact_acc, acc=acc, train_tokens=tokens, seconds=secs,
                       tokens_per_second=tokens / max(secs, 1e-9), log=log)
