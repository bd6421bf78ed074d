"""From token scores to token weights: hard top-r, soft mean-1, raw; and the controls that take a method's own
weights (random_k, random_k_fixed, permuted, magnitude_matched, bottom_k, gradient-norm and step matching).

All tensors are [B, T], aligned with input positions; weights are exactly zero outside ``answer_mask``.
Normaliser rule (A1), made explicit by ``WeightingSpec.loss_normaliser``:
  soft -> per-sequence mean-1 weights, then a token mean (Z = number of answer tokens);
  hard -> mean over the selected tokens (Z = sum of weights);
  none -> the scores are the weights as they are, token mean (the WGA/SatImp/TNPO/ATWU-prototype form).
Controls keep the method's total weight, so they share its Z, except:
  ``magnitude_matched`` always uses the token-count normaliser: under ``weight_sum`` its scale cancels and it is
  the uniform base, token for token;
  ``magnitude_matched_grad`` and ``step_matched`` train with uniform weights and leave the matching to the engine
  (``WeightResult.match``): the first scales the loss to the method's gradient norm, the second rescales the
  optimiser's parameter step to the norm of the step the method would take (``tueval.step_matching``).
Ties: every selection ranks answer tokens in ONE order, score descending then position ascending; top-r takes its
head (equal scores: the earlier position) and ``bottom_k`` its tail (equal scores: the later position), so the two
sets stay disjoint whenever 2k <= n_i, constant scores included.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from .errors import SpecError

MODES = ("hard", "soft", "none")
CONTROLS = (None, "random_k", "random_k_fixed", "permuted", "magnitude_matched", "magnitude_matched_grad",
            "step_matched", "bottom_k")
#: controls whose uniform weights the engine still matches to the method: name -> what it matches
ENGINE_MATCHED = {"magnitude_matched_grad": "grad_norm", "step_matched": "step_norm"}
NORMALISERS = ("auto", "weight_sum", "tokens")
SCOPES = ("sequence", "batch")


@dataclass(frozen=True)
class WeightingSpec:
    """How scores become weights. ``mode``: hard | soft | none; ``ratio``: fraction kept by hard selection, in
    (0, 1] (at least one token per sequence); ``control``: None or a control name (CONTROLS); ``normaliser``:
    auto (the A1 rule) | weight_sum | tokens; ``scope``: sequence (per-sequence top-r / mean-1, default) |
    batch (one threshold / normalisation over the whole batch, ablation A2)."""

    mode: str = "soft"
    ratio: float = 0.3
    control: str | None = None
    normaliser: str = "auto"
    scope: str = "sequence"

    def __post_init__(self):
        if self.mode not in MODES:
            raise SpecError(f"weighting mode '{self.mode}' is not one of {', '.join(MODES)}")
        if self.control not in CONTROLS:
            raise SpecError(f"weighting control '{self.control}' is not one of "
                            f"{', '.join(str(c) for c in CONTROLS)}")
        if self.normaliser not in NORMALISERS:
            raise SpecError(f"weighting normaliser '{self.normaliser}' is not one of {', '.join(NORMALISERS)}")
        if self.scope not in SCOPES:
            raise SpecError(f"weighting scope '{self.scope}' is not one of {', '.join(SCOPES)}")
        check_ratio(self.ratio)

    @property
    def loss_normaliser(self) -> str:
        """The Z the objective must use: ``weight_sum`` or ``tokens`` (resolves ``auto`` by the A1 rule;
        ``magnitude_matched`` is always token-normalised, since under ``weight_sum`` it equals uniform)."""
        if self.control == "magnitude_matched":
            return "tokens"
        if self.normaliser != "auto":
            return self.normaliser
        return "weight_sum" if self.mode == "hard" else "tokens"

    def params(self) -> dict[str, Any]:
        """Every setting, with the resolved loss normaliser (for the run spec)."""
        return {**asdict(self), "loss_normaliser": self.loss_normaliser}


@dataclass
class WeightResult:
    """Weights for the objective (``weights``, after any control), the method's own weights before the control
    (``method_weights``), the normaliser to pass to the objective, and what the engine must still match to the
    method (``match``: None, ``grad_norm`` for ``magnitude_matched_grad``, ``step_norm`` for ``step_matched``)."""

    weights: torch.Tensor
    method_weights: torch.Tensor
    normaliser: str
    match: str | None = None

    @property
    def needs_grad_scale(self) -> bool:
        """Whether the engine scales the loss by ``grad_norm_matched_scale``."""
        return self.match == "grad_norm"


def check_ratio(ratio: float) -> float:
    """``ratio`` if it lies in (0, 1], else SpecError."""
    if not isinstance(ratio, (int, float)) or not (0.0 < float(ratio) <= 1.0):
        raise SpecError(f"weighting ratio must lie in (0, 1]; got {ratio!r}")
    return float(ratio)


# ---------------------------------------------------------------------------------------------------------------
# basic weightings
def _masked(x: torch.Tensor, mask: torch.Tensor, fill: float) -> torch.Tensor:
    return torch.where(mask, x, torch.full_like(x, fill))


def descending_rank(scores: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Rank (0 = highest score) of every answer token within its sequence; ties go to the earlier position;
    non-answer positions rank after all answer tokens."""
    s = _masked(scores.detach().float(), answer_mask, float("-inf"))
    order = torch.sort(s, dim=-1, descending=True, stable=True).indices
    ar = torch.arange(s.shape[-1], device=s.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, ar)


def keep_count(answer_mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per-sequence number kept by top-r: ceil(r * n_i), at least 1 when n_i > 0 ([B], long)."""
    ratio = check_ratio(ratio)
    n = answer_mask.sum(-1).double()
    k = torch.ceil(n * ratio - 1e-9).clamp_min(1)
    return torch.minimum(k, n).long()


def hard_weights(scores: torch.Tensor, answer_mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """1 on the top ceil(r * n_i) answer tokens of each sequence by score (at least one), 0 elsewhere."""
    k = keep_count(answer_mask, ratio)
    rank = descending_rank(scores, answer_mask)
    return ((rank < k[:, None]) & answer_mask).float()


def soft_weights(scores: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Scores clamped at 0 and scaled to mean 1 over each sequence's answer tokens (uniform where the sum is 0)."""
    s = _masked(scores.detach().float().clamp_min(0), answer_mask, 0.0)
    s = torch.nan_to_num(s, nan=0.0, posinf=0.0)
    m = answer_mask.float()
    n = m.sum(-1, keepdim=True)
    tot = s.sum(-1, keepdim=True)
    ok = tot > 1e-12
    return torch.where(ok, s * n / tot.clamp_min(1e-12), m)


def raw_weights(scores: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """The scores themselves (clamped at 0) on answer tokens, 0 elsewhere (mode ``none``)."""
    return _masked(scores.detach().float().clamp_min(0), answer_mask, 0.0)


def uniform_weights(answer_mask: torch.Tensor) -> torch.Tensor:
    """1 on every answer token."""
    return answer_mask.float()


# ---------------------------------------------------------------------------------------------------------------
# controls that take the method's own weights
def _count_and_value(weights: torch.Tensor, answer_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence number of non-zero weights and their mean value ([B] each)."""
    nz = (weights != 0) & answer_mask
    k = nz.sum(-1)
    val = (weights * nz).sum(-1) / k.clamp_min(1)
    return k, val


def _random_keys(answer_mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    r = torch.rand(answer_mask.shape, generator=generator, device="cpu").to(answer_mask.device)
    return r


def random_k(weights: torch.Tensor, answer_mask: torch.Tensor, generator: torch.Generator | None = None,
             keys: torch.Tensor | None = None) -> torch.Tensor:
    """As many tokens per sequence as the method weights (non-zero), at uniformly drawn answer positions, each with
    the method's mean non-zero weight of that sequence (so the totals match). The positions are the top-k of
    random ``keys`` [B, T]: fresh from ``generator`` each call unless ``keys`` are given (``random_k_fixed``)."""
    k, val = _count_and_value(weights, answer_mask)
    if keys is None:
        keys = _random_keys(answer_mask, generator)
    elif tuple(keys.shape) != tuple(answer_mask.shape):
        raise SpecError(f"random keys have shape {tuple(keys.shape)}, expected {tuple(answer_mask.shape)}")
    rank = descending_rank(keys, answer_mask)
    sel = (rank < k[:, None]) & answer_mask
    return sel.float() * val[:, None]


def fixed_keys(shape: Sequence[int], seed: int) -> torch.Tensor:
    """One random key per (example, position) of a whole split [N, T], a function of ``seed`` only: the
    ``random_k_fixed`` control takes its tokens from these, so an example keeps its random subset across epochs."""
    return torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed))


def permuted(weights: torch.Tensor, answer_mask: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The method's weights shuffled uniformly among each sequence's answer tokens (keeps the multiset)."""
    w = _masked(weights.detach().float(), answer_mask, 0.0)
    T = w.shape[-1]
    pos = torch.arange(T, device=w.device, dtype=torch.float32).expand_as(w)
    src = torch.sort(_masked(pos, answer_mask, float("inf")), dim=-1, stable=True).indices
    dst = torch.sort(_masked(_random_keys(answer_mask, generator), answer_mask, float("inf")), dim=-1,
                     stable=True).indices
    return torch.zeros_like(w).scatter_(-1, dst, w.gather(-1, src))


def magnitude_matched(weights: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Uniform weights on answer tokens, rescaled so the batch total equals the method's total weight (trained
    under the token-count normaliser, ``WeightingSpec.loss_normaliser``)."""
    m = answer_mask.float()
    c = _masked(weights.detach().float(), answer_mask, 0.0).sum() / m.sum().clamp_min(1)
    return m * c


def bottom_k(scores: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """The method's count of tokens per sequence taken from the LEAST-scored answer tokens (the tail of top-r's
    order, so equal scores go to the later position), each with the method's mean non-zero weight (disjoint from
    the top-k whenever 2k <= n_i)."""
    k, val = _count_and_value(weights, answer_mask)
    n = answer_mask.sum(-1)
    rank = descending_rank(scores, answer_mask)
    sel = (rank >= (n - k)[:, None]) & answer_mask
    return sel.float() * val[:, None]


def grad_norm_matched_scale(model, loss_method: torch.Tensor, loss_uniform: torch.Tensor,
                            params: Sequence[torch.nn.Parameter] | None = None) -> float:
    """The scale c with ||grad(c * L_uniform)|| = ||grad L_method|| over the trainable parameters (pass the forget
    terms). Cost: two backward passes through the (shared) graph, kept with retain_graph, on top of the step's
    own backward."""
    ps = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]

    def norm(loss):
        gs = torch.autograd.grad(loss, ps, retain_graph=True, allow_unused=True)
        return torch.sqrt(sum((g.float() ** 2).sum() for g in gs if g is not None))

    gm, gu = norm(loss_method), norm(loss_uniform)
    return float(gm / gu) if float(gu) > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------
def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(1, -1)


def apply_weighting(spec: WeightingSpec, scores: torch.Tensor, answer_mask: torch.Tensor,
                    generator: torch.Generator | None = None, keys: torch.Tensor | None = None) -> WeightResult:
    """Turn scores into weights per ``spec`` (mode, then control); see WeightResult. ``keys`` [B, T]: the batch's
    rows of ``fixed_keys`` (needed by ``random_k_fixed``)."""
    if tuple(scores.shape) != tuple(answer_mask.shape):
        raise SpecError(f"scores have shape {tuple(scores.shape)}, expected {tuple(answer_mask.shape)} ([B, T])")
    shape = answer_mask.shape
    s, m = (scores, answer_mask) if spec.scope == "sequence" else (_flat(scores), _flat(answer_mask))
    if spec.mode == "hard":
        w = hard_weights(s, m, spec.ratio)
    elif spec.mode == "soft":
        w = soft_weights(s, m)
    else:
        w = raw_weights(s, m)
    c, match = spec.control, ENGINE_MATCHED.get(spec.control)
    if c is None:
        out = w
    elif c == "random_k":
        out = random_k(w, m, generator)
    elif c == "random_k_fixed":
        if keys is None:
            raise SpecError("control random_k_fixed needs the batch's fixed random keys (weighting.fixed_keys)")
        out = random_k(w, m, keys=keys if spec.scope == "sequence" else _flat(keys))
    elif c == "permuted":
        out = permuted(w, m, generator)
    elif c == "magnitude_matched":
        out = magnitude_matched(w, m)
    elif c == "bottom_k":
        out = bottom_k(s, w, m)
    else:  # magnitude_matched_grad, step_matched: uniform weights; the engine matches the method (ENGINE_MATCHED)
        out = uniform_weights(m)
    return WeightResult(out.reshape(shape), w.reshape(shape), spec.loss_normaliser, match)


# ---------------------------------------------------------------------------------------------------------------
# the weightings of the gradient-SNR comparisons
def control_weightings(scores: dict[str, torch.Tensor], gt: torch.Tensor, ans: torch.Tensor, ks: Sequence[float],
                       seed: int, soft: bool = True) -> dict[tuple[str, str], torch.Tensor]:
    """Every weighting the SNR comparisons use for one seed, keyed (name, k label): each method's hard top-k and
    soft weights and the controls (random_k, oracle, anti, magnitude_matched per k; uniform at k = 1; permuted,
    oracle, anti for soft). ``gt`` [B, T] is the ground truth the oracle and anti select."""
    gen = torch.Generator().manual_seed(10_007 + seed)
    g = gt.float() * ans
    anti = (1.0 - gt.float()) * ans
    out: dict[tuple[str, str], torch.Tensor] = {}
    for k in ks:
        if k >= 1.0:
            out[("uniform", "1")] = ans.float()
            continue
        lab = f"{k:g}"
        for m, s in scores.items():
            out[(m, lab)] = hard_weights(s, ans, k)
        w_or = hard_weights(g, ans, k)
        out[("oracle", lab)] = w_or
        out[("anti", lab)] = hard_weights(anti, ans, k)
        out[("random_k", lab)] = random_k(w_or, ans, gen)
        out[("magnitude_matched", lab)] = magnitude_matched(w_or, ans)
    if soft:
        for m, s in scores.items():
            w = soft_weights(s, ans)
            out[(m, "soft")] = w
            out[(f"permuted:{m}", "soft")] = permuted(w, ans, gen)
        out[("oracle", "soft")] = soft_weights(g, ans)
        out[("anti", "soft")] = soft_weights(anti, ans)
    return out
