"""One unlearning step and what it needs: models, collated forget/retain data, RNG streams, optimiser, static
scores, and the checks that guard it (plugin scorers on the first batch, non-finite losses at every step)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .data.collate import Batch
from .errors import SpecError, TuevalError
from .forward import model_device, model_forward
from .registry import is_plugin
from .spec import RunSpec
from .workdir import Workdir


class NonFiniteLossError(TuevalError):
    """The loss or its gradient became NaN or infinite: the run stops before that step's update."""


@torch.no_grad()
def static_scores(scorer, ref_model, data: Batch, ctx, chunk: int = 64) -> torch.Tensor:
    """Scores of a static scorer on every forget example, computed once on the reference model ([N, T])."""
    out = torch.zeros(data.input_ids.shape, dtype=torch.float32, device=data.input_ids.device)
    for i in range(0, len(data), chunk):
        b = Batch.trim(data.select(range(i, min(i + chunk, len(data)))))
        s = scorer.score(ref_model, b, ctx)
        out[i: i + len(b), : s.shape[1]] = s.float()
    return out


def _load_frozen(wd: Workdir, which: str):
    m, _ = wd.load_model(which)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def _nonfinite_kinds(x: torch.Tensor) -> str:
    return "/".join(k for k, f in (("NaN", torch.isnan), ("inf", torch.isinf)) if bool(f(x).any()))


@dataclass
class Trainer:
    """The state of one unlearning run and its step: ``trainer(step) -> log row``."""

    spec: RunSpec
    model: Any
    tokenizer: Any
    scorer: Any
    wspec: Any
    objective: Any
    forget: Batch
    retain: Batch
    static: torch.Tensor | None
    ctx: Any
    gens: dict[str, torch.Generator]
    ref_model: Any
    opt: torch.optim.Optimizer
    plugin_scorer: bool
    _perm_epoch: int = -1
    _perm: torch.Tensor | None = None
    _keys: torch.Tensor | None = None
    group: Any = None  # the run's processes (tueval.distributed): one unless a launcher started several
    train_model: Any = None  # ``model`` as trained: wrapped for data parallel over ``group``, else ``model``
    ref_store: Any = None  # the reference's per-token values of the forget examples (tueval.ref_tokens)

    def __post_init__(self):
        if self.group is None:
            from .distributed import current

            self.group = current()
        if self.train_model is None:
            self.train_model = self.model
        from . import ref_tokens

        what = getattr(self.objective, "ref_tokens", None)
        if self.ref_store is None and what and self.ref_model is not None and ref_tokens.CACHE:
            self.ref_store = ref_tokens.RefStore(what, tuple(self.forget.input_ids.shape),
                                                 self.forget.input_ids.device)

    @classmethod
    def build(cls, spec: RunSpec, wd: Workdir, scorer, wspec, objective, forget_split: str) -> "Trainer":
        """Load models and data for ``spec``; a plugin scorer is checked on the first batch before any step.
        The caller seeds torch's global RNG first: model loading and the scorers draw from it in this order."""
        from .distributed import current
        from .scoring import ScoringContext

        group = current()
        group.check(spec, objective)

        model, tok = wd.load_model("target")
        model.train()
        needs_ref = objective.needs_ref_model or scorer.static or getattr(scorer, "needs_ref_model", False)
        ref_model = _load_frozen(wd, "target") if needs_ref else None
        retain_model = _load_frozen(wd, "retain") if getattr(scorer, "needs_retain_model", False) else None
        retain_split = wd.retain_split_for(forget_split)
        dev = model_device(model)
        F = wd.collated(forget_split, tok, spec.special_tokens).to(dev)
        R = wd.collated(retain_split, tok, spec.special_tokens).to(dev)
        gens = {"data": torch.Generator().manual_seed(spec.seed),
                "retain": torch.Generator().manual_seed(spec.seed + 1_000_003),
                "weights": torch.Generator().manual_seed(spec.seed + 2_000_003)}
        ctx = ScoringContext(ref_model=ref_model, retain_model=retain_model, tokenizer=tok, generator=gens["weights"])
        keep = objective.trainable_parameters(model) if hasattr(objective, "trainable_parameters") else None
        if keep is not None:  # e.g. RMU's WMDP setting: only the named modules move
            ids = {id(p) for p in keep}
            for p in model.parameters():
                p.requires_grad_(id(p) in ids)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr,
                                weight_decay=spec.weight_decay)
        t = cls(spec, model, tok, scorer, wspec, objective, F, R, None, ctx, gens, ref_model, opt,
                is_plugin(scorer), group=group)
        t.train_model, t.opt = group.prepare(model, opt)
        if hasattr(scorer, "set_run_steps"):  # a scorer with a learning-rate schedule learns the run's length
            scorer.set_run_steps(t.total_steps)
        if t.plugin_scorer:
            t.check_scorer()
        if scorer.static:
            t.static = static_scores(scorer, ref_model, F, ctx)
            if t.plugin_scorer:
                t._require_finite_scores(t.static, F.answer_mask, "on the forget split")
        return t

    # ---- geometry -----------------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.forget) / self.spec.batch_size)

    @property
    def total_steps(self) -> int:
        return self.spec.epochs * self.steps_per_epoch

    def _indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            # the permutation of an epoch is a function of the seed and the epoch only (resume-safe)
            self._perm = torch.randperm(len(self.forget),
                                        generator=torch.Generator().manual_seed(self.spec.seed * 7919 + epoch))
            self._perm_epoch = epoch
        bs = self.spec.batch_size
        return self._perm[pos * bs: (pos + 1) * bs]

    def forget_batch(self, step: int) -> tuple[torch.Tensor, Batch]:
        """The indices and the prepared forget batch of ``step``. Objectives may attach what they need (IdkPO:
        refusal answers), drawn from a seed-and-step generator so that a resumed run draws the same."""
        idx = self._indices(step)
        fb = self.objective.prepare_batch(Batch.trim(self.forget.select(idx)), self.tokenizer,
                                          torch.Generator().manual_seed(self.spec.seed * 104_729 + step))
        return idx, fb

    # ---- checks -------------------------------------------------------------------------------------------
    def check_scorer(self) -> None:
        """The conformance check of ``tueval check`` on the first forget batch (the global RNG is left as it
        was, so a checked run trains exactly as an unchecked one)."""
        from .scoring import check_scorer

        with torch.random.fork_rng():
            _, fb = self.forget_batch(0)
            model = self.ref_model if self.scorer.static else self.model
            try:
                check_scorer(self.scorer, model, fb, seed=self.spec.seed, context=self.ctx)
            except SpecError as e:
                msg = str(e) if f"'{self.spec.scorer}'" in str(e) else f"scorer '{self.spec.scorer}': {e}"
                raise SpecError(f"{msg} (checked on the first forget batch, before training)") from None

    def _require_finite_scores(self, scores: torch.Tensor, answer_mask: torch.Tensor, where: str) -> None:
        vals = scores.detach().float()[answer_mask.to(scores.device)]
        bad = ~torch.isfinite(vals)
        if bool(bad.any()):
            raise SpecError(f"scorer '{self.spec.scorer}' returned non-finite values ({_nonfinite_kinds(vals)}) "
                            f"on {int(bad.sum())} of {vals.numel()} answer tokens {where}")

    def _plugin_scores(self, fb: Batch, step: int) -> torch.Tensor:
        name = self.spec.scorer
        try:
            s = self.scorer.score(self.model, fb, self.ctx)
        except TuevalError:
            raise
        except Exception as e:  # noqa: BLE001 - user code: reported with the scorer's name and the step
            raise SpecError(" ".join(f"scorer '{name}' raised {type(e).__name__} at step {step}: {e}".split())) \
                from e
        if not torch.is_tensor(s) or tuple(s.shape) != tuple(fb.answer_mask.shape):
            got = list(s.shape) if torch.is_tensor(s) else type(s).__name__
            raise SpecError(f"scorer '{name}' returned {got} at step {step}; expected a tensor [B, T] = "
                            f"{list(fb.answer_mask.shape)}")
        self._require_finite_scores(s, fb.answer_mask, f"at step {step}")
        return s

    @staticmethod
    def _require_finite(step: int, what: str, value: torch.Tensor, loss) -> None:
        if not bool(torch.isfinite(value.detach()).all()):
            parts = ", ".join(f"{k} {float(getattr(loss, k).detach()):.4g}" for k in ("total", "forget", "retain"))
            raise NonFiniteLossError(f"unlearning stopped at step {step}: the {what} is not finite ({parts}); "
                                     "the model was not updated and no checkpoint was written at this step")

    def fixed_keys(self, idx: torch.Tensor, width: int) -> torch.Tensor | None:
        """The ``random_k_fixed`` control's random keys of the forget examples ``idx`` (None for other controls):
        one key per (example, position), drawn once per run from a stream of their own."""
        if self.wspec.control != "random_k_fixed":
            return None
        if self._keys is None:
            from .weighting import fixed_keys

            self._keys = fixed_keys(self.forget.input_ids.shape, self.spec.seed + 3_000_017)
        return self._keys[idx][:, :width]

    # ---- the step -----------------------------------------------------------------------------------------
    def __call__(self, step: int) -> dict:
        """One optimisation step; returns its log row. Split over processes, each computes the loss of its rows
        of the batch, while scores and weights are computed on the whole batch (``tueval.distributed``)."""
        from . import step_matching
        from .weighting import apply_weighting, grad_norm_matched_scale

        spec, model, objective, scorer, ctx = self.spec, self.model, self.objective, self.scorer, self.ctx
        group = self.group
        epoch = step // self.steps_per_epoch
        idx, fb = self.forget_batch(step)
        rb = Batch.trim(self.retain.select(torch.randint(len(self.retain), (spec.batch_size,),
                                                         generator=self.gens["retain"])))
        ctx.step = step
        hidden = bool(scorer.needs_hidden or objective.needs_hidden)
        out = model_forward(self.train_model, group.shard(fb), hidden=hidden)
        if group.parallel and self.static is None:
            with torch.no_grad():  # the scorer sees the whole batch, as in one process
                ctx.outputs = model_forward(model, fb, hidden=hidden)
        else:
            ctx.outputs = out
        if self.static is not None:
            scores = self.static[idx][:, : fb.input_ids.shape[1]]
        elif self.plugin_scorer:
            scores = self._plugin_scores(fb, step)
        else:
            scores = scorer.score(model, fb, ctx)
        wr = apply_weighting(self.wspec, scores, fb.answer_mask, generator=self.gens["weights"],
                             keys=self.fixed_keys(idx, fb.input_ids.shape[1]))
        ref = self.ref_store(self.ref_model, idx, fb) if self.ref_store is not None else None
        loss = objective(self.train_model, group.shard(fb), group.shard(rb), group.shard(wr.weights),
                         self.ref_model, forget_out=out, ref_out=None if ref is None else ref.shard(group))
        total, matched = loss.total, {}
        if wr.match is not None:
            method = objective(model, fb, None, wr.method_weights, self.ref_model, forget_out=out,
                               compute_retain=False, ref_out=ref)
        if wr.match == "grad_norm":
            c = grad_norm_matched_scale(model, method.forget, loss.forget)
            total = objective.gamma * c * loss.forget + objective.alpha * loss.retain
        self._require_finite(step, "loss", total, loss)
        if wr.match == "step_norm":  # the method's step on the same batch and optimiser state sets the step size
            method_total = objective.gamma * method.forget + objective.alpha * loss.retain
            self._require_finite(step, "method's loss", method_total, method)
            target = step_matching.method_step_norm(self.opt, method_total, spec.clip, model.parameters())
            self._require_finite(step, "method's step norm", torch.tensor(target), method)
            matched = {"method_step_norm": target}
        self.opt.zero_grad(set_to_none=True)
        group.backward(total)
        gnorm = group.clip_grad_norm(self.train_model, spec.clip)
        self._require_finite(step, "gradient norm", gnorm, loss)
        before = step_matching.snapshot(self.opt) if matched else None
        self.opt.step()
        if matched:
            matched["uniform_step_norm"] = step_matching.rescale_step(self.opt, before, matched["method_step_norm"])
        if scorer.stateful:
            scorer.update(model, fb, ctx, outputs=ctx.outputs.detach())
        return {"step": step, "epoch": epoch, "total": float(total.detach()), "forget": float(loss.forget.detach()),
                "retain": float(loss.retain.detach()), "grad_norm": float(gnorm), **matched,
                **{k: float(v) for k, v in loss.extras.items() if v.numel() == 1}}

    # ---- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self, step: int, log: list[dict]) -> dict:
        """Everything a resumed run needs to continue bit for bit."""
        out = {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
               "rng": {k: g.get_state() for k, g in self.gens.items()}, "scorer": self.scorer.state_dict(),
               "step": step, "log": log, "torch_rng": torch.get_rng_state()}
        if self.ref_store is not None:
            out["ref_tokens"] = self.ref_store.state_dict()
        return out

    def load_state_dict(self, state: dict) -> tuple[int, list[dict]]:
        """Restore ``state_dict()``; returns (steps done, log rows)."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        for k, g in self.gens.items():
            g.set_state(state["rng"][k])
        self.scorer.load_state_dict(state["scorer"])
        if self.ref_store is not None and "ref_tokens" in state:
            self.ref_store.load_state_dict(state["ref_tokens"])
        torch.set_rng_state(state["torch_rng"])
        step, log = int(state["step"]), list(state["log"])
        if not 0 <= step <= self.total_steps or len(log) != step:
            raise ValueError(f"step {step} with {len(log)} log rows does not fit a run of {self.total_steps} steps")
        return step, log
