"""Control scorers: uniform, random, oracle (ground truth) and anti (a reversed oracle or base scorer)."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import SpecError
from .base import SCORERS, Scorer, ScoringContext, on_answers

GT_SOURCES = ("spans", "counterfactual")
FLIPS = ("reflect", "negate")


@SCORERS.register("uniform")
class UniformScorer(Scorer):
    """1 on every answer token (the sequence-level base)."""

    name = "uniform"
    static = True
    cost = 0.0

    def score(self, model, batch, context: ScoringContext | None = None):
        """All ones on answer tokens."""
        return batch.answer_mask.float()


@SCORERS.register("random")
class RandomScorer(Scorer):
    """Uniform(0, 1) noise on answer tokens, drawn with ``context.generator`` (else the global torch RNG).
    ``redraw=False`` (default): static, drawn once and cached by the engine; True: fresh every step."""

    name = "random"
    cost = 0.0
    draws_randomness = True

    def __init__(self, redraw: bool = False):
        self.redraw = redraw

    @property
    def static(self) -> bool:  # type: ignore[override]
        return not self.redraw

    def score(self, model, batch, context: ScoringContext | None = None):
        """Seeded uniform noise [B, T]."""
        gen = context.generator if context is not None else None
        r = torch.rand(batch.answer_mask.shape, generator=gen)
        return on_answers(r.to(batch.answer_mask.device), batch.answer_mask)


@SCORERS.register("oracle")
class OracleScorer(Scorer):
    """The ground-truth mask as scores: ``gt='spans'`` -> ``batch.gt_mask``; ``gt='counterfactual'`` ->
    ``batch.extras['gt_counterfactual']`` (tokens whose fact the retain model lacks). ``exclude_copied=True``
    drops the answer tokens copied from the question (``copied_from_question``: mostly the subject's name) from the
    ground truth, so an oracle selection does not rest on the name; needs ``context.tokenizer``."""

    name = "oracle"
    static = True
    cost = 0.0

    def __init__(self, gt: str = "spans", exclude_copied: bool = False):
        self.gt, self.exclude_copied = gt, exclude_copied
        if gt not in GT_SOURCES:
            raise SpecError(f"scorer 'oracle': gt '{gt}' is not one of {', '.join(GT_SOURCES)}")
        if not isinstance(exclude_copied, bool):
            raise SpecError(f"scorer 'oracle': exclude_copied must be true or false, got {exclude_copied!r}")

    def get_params(self) -> dict[str, Any]:
        """Every setting (``exclude_copied`` only when set)."""
        p = super().get_params()
        if not self.exclude_copied:
            p.pop("exclude_copied")
        return p

    def score(self, model, batch, context: ScoringContext | None = None):
        """1 on ground-truth tokens, 0 on other answer tokens."""
        if self.gt == "spans":
            g = batch.gt_mask
        else:
            g = batch.extras.get("gt_counterfactual")
            if g is None:
                raise SpecError("scorer 'oracle' with gt='counterfactual' needs batch.extras['gt_counterfactual']")
        g = g.bool()
        if self.exclude_copied:
            from .base import require
            from .tokenunlearn import copied_from_question

            tok = require(context.tokenizer if context else None, "context.tokenizer (to find copied tokens)",
                          self.name)
            g = g & ~copied_from_question(batch, tok)
        return on_answers(g.float(), batch.answer_mask)


def _from_base(attr: str, kind: type) -> property:
    """A read-only property that reads ``attr`` of the wrapped base scorer."""
    return property(lambda self: kind(getattr(self._inner, attr)), doc=f"The base scorer's ``{attr}``.")


@SCORERS.register("anti")
class AntiScorer(Scorer):
    """Reversed scores of ``base`` (a scorer name, default the oracle, with ``base_params``):
    ``flip='reflect'`` (default) -> max_i + min_i - s per sequence over answer tokens (same range, reversed order,
    so soft weighting stays meaningful: anti-oracle = 1 - gt); ``flip='negate'`` -> -s (for hard selection only:
    soft weighting clamps negatives to 0 and falls back to uniform)."""

    name = "anti"

    def __init__(self, base: str = "oracle", base_params: dict[str, Any] | None = None, flip: str = "reflect"):
        self.base, self.base_params, self.flip = base, base_params, flip
        if flip not in FLIPS:
            raise SpecError(f"scorer 'anti': flip '{flip}' is not one of {', '.join(FLIPS)}")
        from .plugins import make_scorer

        self._inner = make_scorer(base, base_params)

    static = _from_base("static", bool)
    cost = _from_base("cost", float)
    stateful = _from_base("stateful", bool)
    needs_hidden = _from_base("needs_hidden", bool)
    needs_ref_model = _from_base("needs_ref_model", bool)
    needs_retain_model = _from_base("needs_retain_model", bool)
    draws_randomness = _from_base("draws_randomness", bool)

    def update(self, model, batch, context=None, outputs=None) -> bool:
        """Delegates to the base scorer."""
        return self._inner.update(model, batch, context, outputs)

    def state_dict(self) -> dict[str, Any]:
        """The base scorer's state."""
        return self._inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the base scorer's state."""
        self._inner.load_state_dict(state)

    def score(self, model, batch, context: ScoringContext | None = None):
        """The base scores, order reversed."""
        s = self._inner.score(model, batch, context).float()
        m = batch.answer_mask
        if self.flip == "negate":
            return on_answers(-s, m)
        big = torch.finfo(s.dtype).max
        lo = torch.where(m, s, torch.full_like(s, big)).amin(-1, keepdim=True)
        hi = torch.where(m, s, torch.full_like(s, -big)).amax(-1, keepdim=True)
        return on_answers(hi + lo - s, m)
