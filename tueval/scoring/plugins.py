"""User scorers: ``module:function`` plugins wrapped as Scorers, scorer construction by name, and a
conformance check that names the scorer and the fault."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from ..errors import SpecError
from .base import SCORERS, Scorer, ScoringContext


class FunctionScorer(Scorer):
    """Wraps ``fn(model, batch) -> Tensor[B, T]`` (or ``fn(model, batch, context)``) as a Scorer.
    ``static``: computed once on the reference model (default False: called every step); ``cost``: declared
    extra forwards per example."""

    def __init__(self, fn: Callable, name: str | None = None, static: bool = False, cost: float = 1.0,
                 needs_ref_model: bool = False, needs_retain_model: bool = False):
        self.fn, self.static, self.cost = fn, static, cost
        self.needs_ref_model, self.needs_retain_model = needs_ref_model, needs_retain_model
        self.name = name or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        try:
            params = inspect.signature(fn).parameters.values()
            n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
            self._takes_context = n >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)
        except (TypeError, ValueError):
            self._takes_context = False

    @property
    def code_target(self) -> Callable:
        """The user code this scorer runs (its source enters the run hash)."""
        return self.fn

    def get_params(self) -> dict[str, Any]:
        """The plugin reference and its declared flags (the function itself is recorded by name)."""
        return {"fn": self.name, "static": self.static, "cost": self.cost,
                "needs_ref_model": self.needs_ref_model, "needs_retain_model": self.needs_retain_model}

    def score(self, model, batch, context: ScoringContext | None = None) -> torch.Tensor:
        """Call the wrapped function."""
        if self._takes_context:
            return self.fn(model, batch, context)
        return self.fn(model, batch)


def make_scorer(name: str | Scorer, params: dict[str, Any] | None = None) -> Scorer:
    """A Scorer from a registered name, an entry point (group ``tueval.scorers``) or ``module:attr``; the target
    may be a Scorer subclass (built with ``params``), a Scorer instance, or a function ``(model, batch)``
    (wrapped in FunctionScorer; ``params`` may set ``static``, ``cost``, ``needs_ref_model``,
    ``needs_retain_model``). Unknown names/settings -> SpecError."""
    if isinstance(name, Scorer):
        return name
    s = SCORERS.build(name, params, Scorer, wrap=_wrap_function)
    if not getattr(s, "name", ""):
        s.name = name
    return s


def _wrap_function(fn: Callable, name: str, params: dict[str, Any]) -> FunctionScorer:
    allowed = {"static", "cost", "needs_ref_model", "needs_retain_model"}
    bad = sorted(set(params) - allowed)
    if bad:
        raise SpecError(f"scorer '{name}' is a plain function; settings allowed: {', '.join(sorted(allowed))} "
                        f"(got {', '.join(bad)})")
    return FunctionScorer(fn, name=name, **params)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _call(scorer: Scorer, model, batch, context: ScoringContext, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    ctx = ScoringContext(ref_model=context.ref_model, retain_model=context.retain_model, step=context.step,
                         tokenizer=context.tokenizer, generator=torch.Generator().manual_seed(seed),
                         outputs=context.outputs)
    try:
        return scorer.score(model, batch, ctx)
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure inside user code is reported with the scorer's name
        raise SpecError(_one_line(f"scorer '{scorer.name}' raised {type(e).__name__}: {e}")) from e


def check_scorer(scorer: Scorer | str, model, batch, seed: int = 0, context: ScoringContext | None = None) -> None:
    """Conformance check: the scorer runs, returns a float tensor [B, T], finite on answer tokens, and gives the
    same scores twice under the same seed; otherwise SpecError naming the scorer and the fault."""
    sc = make_scorer(scorer) if isinstance(scorer, str) else scorer
    ctx = context or ScoringContext()
    B, T = batch.answer_mask.shape
    with torch.no_grad():
        s1 = _call(sc, model, batch, ctx, seed)
        if not torch.is_tensor(s1):
            raise SpecError(f"scorer '{sc.name}' returned {type(s1).__name__}; expected a torch.Tensor of shape "
                            f"[B, T] = [{B}, {T}]")
        if tuple(s1.shape) != (B, T):
            raise SpecError(f"scorer '{sc.name}' returned shape {list(s1.shape)}; expected [B, T] = [{B}, {T}]")
        if s1.dtype.is_complex:
            raise SpecError(f"scorer '{sc.name}' returned dtype {s1.dtype}; expected a real dtype")
        vals = s1.detach().float()[batch.answer_mask.to(s1.device)]
        bad = ~torch.isfinite(vals)
        if bad.any():
            kinds = []
            if torch.isnan(vals).any():
                kinds.append("NaN")
            if torch.isinf(vals).any():
                kinds.append("inf")
            raise SpecError(f"scorer '{sc.name}' returned non-finite values ({'/'.join(kinds)}) on "
                            f"{int(bad.sum())} of {vals.numel()} answer tokens")
        s2 = _call(sc, model, batch, ctx, seed)
        if not torch.is_tensor(s2) or s2.shape != s1.shape or not torch.equal(
                s1.detach().float()[batch.answer_mask], s2.detach().float()[batch.answer_mask]):
            diff = ((s1.float() - s2.float()).abs()[batch.answer_mask].max().item()
                    if torch.is_tensor(s2) and s2.shape == s1.shape else float("nan"))
            raise SpecError(f"scorer '{sc.name}' is non-deterministic: two calls with torch.manual_seed({seed}) "
                            f"differ on answer tokens (max abs difference {diff:.3g})")
