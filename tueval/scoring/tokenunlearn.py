"""TokenUnlearn importance (reconstruction, methods.md §2): phi = alpha * minmax(Delta) + (1 - alpha) * minmax(H).

Delta_t = |log p(y_t | full prompt) - log p(y_t | question hidden)|: the question ("knowledge context") is hidden
by setting attention_mask = 0 on its tokens in ONE extra forward per batch; BOS, positions (explicit 0..T-1) and,
with ``mask='question'`` (default), the template tokens ("Question:", "\\nAnswer:") stay visible, so only the
question's content is removed. ``mask='prompt'`` hides every prompt token except BOS (no tokenizer needed).
H_t = predictive entropy (nats) at temperature T. Both are min-max normalised per sequence over answer tokens
(a constant sequence -> 0.5). Static by default (the engine passes the reference model once); ``dynamic=True``
recomputes H on the current model each call and keeps Delta from ``context.ref_model`` (methods.md A3).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.format import PROMPT_TEMPLATE
from ..errors import SpecError
from ..forward import model_forward
from ..tokens import token_entropy
from .base import SCORERS, Scorer, ScoringContext, current_outputs, minmax_per_sequence, on_answers, require

MASK_MODES = ("question", "prompt")


def question_mask(batch, tokenizer=None, mode: str = "question") -> torch.Tensor:
    """Positions to hide [B, T] (bool): the question's content tokens (``question``; needs the tokenizer) or all
    prompt tokens but BOS (``prompt``). ``batch.extras['question_mask']`` wins when present."""
    if "question_mask" in batch.extras:
        return batch.extras["question_mask"].bool()
    if mode not in MASK_MODES:
        raise SpecError(f"question mask mode '{mode}' is not one of {', '.join(MASK_MODES)}")
    B, T = batch.input_ids.shape
    pos = torch.arange(T, device=batch.input_ids.device)[None]
    plen = batch.prompt_lengths.to(pos.device)[:, None]
    if mode == "prompt":
        return (pos >= 1) & (pos < plen)
    if tokenizer is None:
        raise SpecError("masking the question (mask='question') needs the tokenizer (ScoringContext.tokenizer) or "
                        "batch.extras['question_mask']; or use mask='prompt'")
    prefix, suffix = PROMPT_TEMPLATE.split("{question}")
    prompts = [batch.input_ids[i, :n].tolist() for i, n in enumerate(batch.prompt_lengths.tolist())]
    texts = tokenizer.batch_decode(prompts, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    enc = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True)
    starts = np.zeros((B, T), dtype=np.int64)
    ends = np.zeros((B, T), dtype=np.int64)
    for i, (ids, offs) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):
        if list(ids) != prompts[i]:
            raise SpecError(f"example {batch.example_ids[i]}: the prompt does not re-tokenise to the same ids, so "
                            "question tokens cannot be located; use mask='prompt' or batch.extras['question_mask']")
        o = np.asarray(offs, dtype=np.int64).reshape(-1, 2)
        starts[i, : len(o)], ends[i, : len(o)] = o[:, 0], o[:, 1]
    lo = len(prefix)
    hi = np.asarray([len(t) - len(suffix) for t in texts], dtype=np.int64)[:, None]
    hide = (ends > starts) & (starts < hi) & (ends > lo)
    return torch.from_numpy(hide).to(batch.input_ids.device) & (pos < plen) & (pos >= 1)


def copied_from_question(batch, tokenizer=None, min_len: int = 2, hide: torch.Tensor | None = None) -> torch.Tensor:
    """Answer tokens copied from the question [B, T] (bool): tokens inside a run of at least ``min_len``
    consecutive answer tokens that also occurs, token for token, among the question's content tokens (``hide``:
    those positions, default ``question_mask(batch, tokenizer)``). On TOFU-style answers this is mostly the
    subject's name ("Where was Ana Lopez born?" -> "Ana Lopez was born ..."), plus echoed phrases."""
    if min_len < 1:
        raise SpecError(f"min_len must be >= 1, got {min_len}")
    q = question_mask(batch, tokenizer, "question") if hide is None else hide.bool()
    ans, ids = batch.answer_mask.bool(), batch.input_ids
    B, T = ids.shape
    if T < min_len:
        return torch.zeros_like(ans)
    # every window of min_len positions, as the tuple of its ids; a window counts where all its positions are
    # answer (resp. question) tokens; an answer window is copied when it equals some question window of its row
    win = ids.unfold(1, min_len, 1)  # [B, W, L]
    a_ok = ans.unfold(1, min_len, 1).all(-1)
    q_ok = q.unfold(1, min_len, 1).all(-1)
    same = (win[:, :, None, :] == win[:, None, :, :]).all(-1) & q_ok[:, None, :]  # [B, W_answer, W_question]
    hit = (same.any(-1) & a_ok).float()  # [B, W]: answer windows found in the question
    # a token is copied when any window covering it is a hit
    cover = torch.nn.functional.conv1d(hit[:, None], torch.ones(1, 1, min_len), padding=min_len - 1)[:, 0]
    return (cover[:, :T] > 0) & ans


def masked_logprobs(model, batch, hide: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs [B, T] with the ``hide`` positions removed from attention (one no-grad forward)."""
    am = batch.attention_mask * (~hide).to(batch.attention_mask.dtype)
    with torch.no_grad():
        return model_forward(model, batch, attention_mask=am).logp


def knowledge_signal(model, batch, hide: torch.Tensor, logp: torch.Tensor | None = None) -> torch.Tensor:
    """Delta = |log p_orig - log p_masked| per answer token ([B, T], 0 off-answer); ``logp``: the plain
    forward's log-probs when already computed."""
    if logp is None:
        with torch.no_grad():
            logp = model_forward(model, batch).logp
    return on_answers((logp.detach() - masked_logprobs(model, batch, hide)).abs(), batch.answer_mask)


@SCORERS.register("tokenunlearn")
class TokenUnlearnScorer(Scorer):
    """TokenUnlearn phi (see module doc). Settings: ``alpha`` (knowledge share, 0.5), ``mask`` (question|prompt),
    ``dynamic`` (False: static on the reference model), ``temperature`` of the entropy (1.0).
    Cost: 2 forwards per example once (static); dynamic: 2 ref forwards + 1 current forward per call
    (the latter free when ``context.outputs`` is given)."""

    name = "tokenunlearn"

    def __init__(self, alpha: float = 0.5, mask: str = "question", dynamic: bool = False, temperature: float = 1.0):
        self.alpha, self.mask, self.dynamic, self.temperature = alpha, mask, dynamic, temperature
        if not 0.0 <= alpha <= 1.0:
            raise SpecError(f"scorer 'tokenunlearn': alpha must lie in [0, 1], got {alpha}")
        if mask not in MASK_MODES:
            raise SpecError(f"scorer 'tokenunlearn': mask '{mask}' is not one of {', '.join(MASK_MODES)}")

    @property
    def static(self) -> bool:  # type: ignore[override]
        return not self.dynamic

    @property
    def cost(self) -> float:  # type: ignore[override]
        return 3.0 if self.dynamic else 2.0

    @property
    def needs_ref_model(self) -> bool:  # type: ignore[override]
        return bool(self.dynamic)

    def signals(self, model, batch, context: ScoringContext | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw (un-normalised) Delta and H, [B, T] each."""
        ctx = context or ScoringContext()
        hide = question_mask(batch, ctx.tokenizer, self.mask)
        out = current_outputs(model, batch, ctx)
        H = on_answers(token_entropy(out.logits, self.temperature), batch.answer_mask)
        if self.dynamic:
            ref = require(ctx.ref_model, "context.ref_model when dynamic=True (Delta stays on the reference)",
                          self.name)
            delta = knowledge_signal(ref, batch, hide)
        else:
            delta = knowledge_signal(model, batch, hide, logp=out.logp)
        return delta, H

    def score(self, model, batch, context: ScoringContext | None = None) -> torch.Tensor:
        """phi = alpha * minmax(Delta) + (1 - alpha) * minmax(H), per sequence over answer tokens."""
        delta, H = self.signals(model, batch, context)
        m = batch.answer_mask
        return self.alpha * minmax_per_sequence(delta, m) + (1 - self.alpha) * minmax_per_sequence(H, m)
