"""RMU (methods.md §1, §6): push layer-l activations on forget tokens towards a fixed random direction c*u,
keep retain activations at the frozen model's, with token weights on the forget term."""
from __future__ import annotations

import torch

from ..errors import SpecError
from .base import (OBJECTIVES, ForwardOut, LossOutput, Objective, check_weights, position_ids_for,
                   sequence_weighted_mean)

RMU_RETAIN = ("activation", "none")
#: ``trainable``: every parameter (open-unlearning's TOFU config), or a module path inside each decoder block
#: (WMDP's ``mlp.down_proj``), updated in blocks layer - span + 1 .. layer only
ALL = "all"


def layer_activations(model, batch, layer: int) -> torch.Tensor:
    """Output [B, T, d] of decoder block ``layer`` (0-based, WMDP's ``layer_id``; = HF hidden_states[layer + 1])."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=position_ids_for(batch.input_ids), output_hidden_states=True)
    hs = out.hidden_states
    if not -len(hs) + 1 <= layer < len(hs) - 1:
        raise SpecError(f"objective 'rmu': layer {layer} is out of range for a model with {len(hs) - 1} blocks")
    return hs[layer + 1] if layer >= 0 else hs[layer]


def rmu_trainable_parameters(model, layer: int = 0, module: str = "mlp.down_proj", span: int = 3) -> list:
    """The parameters RMU updates: ``module`` of blocks max(0, layer-span+1) .. layer (WMDP: blocks 5, 6, 7 for
    layer 7); the engine freezes every other one."""
    blocks = model.model.layers
    layer = layer % len(blocks)
    ps = []
    for i in range(max(0, layer - span + 1), layer + 1):
        mod = blocks[i]
        for part in module.split("."):
            if not hasattr(mod, part):
                raise SpecError(f"objective 'rmu': decoder block {i} has no module '{module}' (no '{part}')")
            mod = getattr(mod, part)
        ps += list(mod.parameters())
    return ps


@OBJECTIVES.register("rmu")
class RMU(Objective):
    """RMU: per forget sequence, sum_t w_t ||h_t - c u||^2 / d / Z_i over its answer tokens (h = block ``layer``
    output, u ~ U[0,1)^d normalised, drawn once from ``seed``, c = ``steering_coeff``; Z_i per ``normaliser``),
    then the mean over sequences; retain = per retain sequence the mean over its answer tokens of
    ||h_theta - h_ref||^2 / d, then the mean over sequences (``retain_loss='activation'``, needs ref_model): the
    reductions of open-unlearning's RMU. ``trainable``: ``all`` (open-unlearning's TOFU config) or a module of
    each decoder block (WMDP: ``mlp.down_proj``) updated in blocks ``layer - trainable_span + 1 .. layer`` only;
    the engine freezes the rest. Defaults: WMDP's c 6.5 and alpha 1200 (tuned for 7B activations). Runs its own
    forwards (hidden states of an inner layer); ``forget_out`` is not used."""

    name = "rmu"
    needs_ref = False

    def __init__(self, layer: int = 0, steering_coeff: float = 6.5, seed: int = 0, gamma: float = 1.0,
                 alpha: float = 1200.0, retain_loss: str = "activation", normaliser: str = "weight_sum",
                 trainable: str = ALL, trainable_span: int = 3):
        self.layer, self.steering_coeff, self.seed = layer, steering_coeff, seed
        self.trainable, self.trainable_span = trainable, trainable_span
        super().__init__(gamma, alpha, retain_loss, normaliser)
        self._u: torch.Tensor | None = None

    def _validate(self) -> None:
        if self.retain_loss not in RMU_RETAIN:
            raise SpecError(f"objective 'rmu': retain_loss '{self.retain_loss}' is not one of {', '.join(RMU_RETAIN)}")
        if self.normaliser not in ("weight_sum", "tokens"):
            raise SpecError(f"objective 'rmu': normaliser '{self.normaliser}' is not one of weight_sum, tokens")
        if not isinstance(self.trainable, str) or not self.trainable.strip():
            raise SpecError(f"objective 'rmu': trainable must be 'all' or a module path such as mlp.down_proj, "
                            f"got {self.trainable!r}")
        if isinstance(self.trainable_span, bool) or not isinstance(self.trainable_span, int) or \
                self.trainable_span < 1:
            raise SpecError(f"objective 'rmu': trainable_span must be an integer >= 1, got {self.trainable_span!r}")

    def get_params(self) -> dict:
        """Every setting (``trainable_span`` only where ``trainable`` names a module)."""
        p = super().get_params()
        if self.trainable == ALL:
            p.pop("trainable_span")
        return p

    def trainable_parameters(self, model) -> list | None:
        """None (all) with ``trainable='all'``, else ``rmu_trainable_parameters`` of the setting."""
        if self.trainable == ALL:
            return None
        return rmu_trainable_parameters(model, self.layer, self.trainable, self.trainable_span)

    @property
    def needs_ref_model(self) -> bool:
        return self.needs_retain

    def control_vector(self, d: int, device) -> torch.Tensor:
        """c * u with u ~ U[0, 1)^d (seeded), unit norm; fixed for the objective's lifetime."""
        if self._u is None or self._u.shape[0] != d:
            u = torch.rand(d, generator=torch.Generator().manual_seed(self.seed))
            self._u = u / u.norm()
        return self.steering_coeff * self._u.to(device)

    def retain_term(self, model, retain_batch, ref_model=None) -> torch.Tensor:
        """Activation MSE to the frozen model on retain answer tokens."""
        if not self.needs_retain:
            return torch.zeros((), device=next(model.parameters()).device)
        if retain_batch is None or ref_model is None:
            raise SpecError("objective 'rmu' with retain_loss='activation' needs a retain batch and ref_model")
        h = layer_activations(model, retain_batch, self.layer).float()
        with torch.no_grad():
            h0 = layer_activations(ref_model, retain_batch, self.layer).float()
        mse = ((h - h0) ** 2).mean(-1)
        m = retain_batch.answer_mask
        return sequence_weighted_mean(mse, m.float(), m, "weight_sum")

    def __call__(self, model, forget_batch, retain_batch=None, weights=None, ref_model=None, *,
                 forget_out: ForwardOut | None = None, ref_out: ForwardOut | None = None,
                 compute_retain: bool = True) -> LossOutput:
        """Compute the RMU loss (see class doc); ``compute_retain=False`` skips the retain term."""
        w = check_weights(weights, forget_batch)
        h = layer_activations(model, forget_batch, self.layer).float()
        cu = self.control_vector(h.shape[-1], h.device)
        dist = ((h - cu) ** 2).mean(-1)
        forget = sequence_weighted_mean(dist, w, forget_batch.answer_mask, self.normaliser)
        retain = (self.retain_term(model, retain_batch, ref_model) if compute_retain
                  else torch.zeros((), device=h.device))
        m = forget_batch.answer_mask
        extras = {"mean_weight": (w.sum() / m.sum().clamp_min(1)).detach(), "weight_sum": w.sum().detach(),
                  "frac_weighted": ((w > 0).sum() / m.sum().clamp_min(1)).float().detach(),
                  "activation_norm": (h.norm(dim=-1) * m).sum().detach() / m.sum().clamp_min(1)}
        return LossOutput(self.gamma * forget + self.alpha * retain, forget, retain, extras)
