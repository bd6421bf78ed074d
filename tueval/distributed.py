"""One run across several processes: data parallel through accelerate (torch DDP over gloo; docs/scale_out.md).

``tueval unlearn ... --launcher accelerate``, started by ``accelerate launch`` (or ``torchrun``), makes every
process a rank of one run: each rank computes the forward and backward of its contiguous share of every forget
and retain batch, and accelerate (torch DDP) averages the gradients. The result is the one-process run's up to
floating-point reduction order, because nothing is normalised per rank:

- every batch reduction of a data-parallel objective (``Objective.data_parallel``) is global: a token-weighted
  mean is ``sum over all ranks of w * x`` over ``sum over all ranks of Z`` (``global_sum``, an autograd-aware
  all-reduce), a mean over sequences divides by the global batch size, so every rank holds the global loss, and
  the averaged gradient is the one-process gradient;
- token scores and weights are computed on the whole global batch (identically on every rank: static scores are
  indexed, a dynamic scorer gets one no-grad forward of the global batch) and each rank takes its rows, so
  batch-level weightings (soft scaling, hard top-k over the batch, permutations, random draws) are unchanged;
- rank 0 alone holds the run's lock, writes the run folder and evaluates; the others wait for it.

What is refused with more than one process: objectives whose reductions are not global (``data_parallel``
False, e.g. tpo and rmu, and plugin objectives unless they declare it) and the ``magnitude_matched_grad``
control (its gradient norms would be per rank). Without a launcher (one process) nothing here is active and the
engine runs exactly as before.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from .errors import SpecError, TuevalError

LAUNCHERS = ("none", "accelerate")
#: accelerate strategies that shard the model (refused: see docs/scale_out.md)
SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")


@dataclass
class ProcessGroup:
    """The processes of one run: this one's ``rank`` of ``world``, and the accelerate ``Accelerator`` (None for
    a single process)."""

    rank: int = 0
    world: int = 1
    accelerator: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether the batch is split over more than one process."""
        return self.world > 1

    # ---- coordination ------------------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.parallel:
            self.accelerator.wait_for_everyone()

    def agree(self, value: bool) -> bool:
        """Rank 0's ``value`` on every rank (a decision taken from the file system, seen once)."""
        if not self.parallel:
            return value
        t = torch.tensor([int(bool(value))], device=self.accelerator.device)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def close(self) -> None:
        """Leave the group after a run every rank finished: gloo's worker threads stopped while Python is still
        whole (left to interpreter exit, they can abort the process after its work is done)."""
        if self.parallel:
            self.barrier()
            self.accelerator.end_training()
            if self in _ACTIVE:
                _ACTIVE.remove(self)

    @contextlib.contextmanager
    def main_only(self, cm) -> Iterator[None]:
        """``cm`` entered on rank 0 only (the run's lock: one holder per run, not per rank)."""
        if self.is_main:
            with cm:
                yield
        else:
            yield

    # ---- the batch split ---------------------------------------------------------------------------------
    def rows(self, n: int) -> slice:
        """This rank's contiguous rows of a batch of ``n`` (the first ``n % world`` ranks take one more)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def shard(self, x):
        """This rank's rows of a tensor or a Batch (a Batch keeps its columns: the global batch's padding)."""
        if not self.parallel:
            return x
        r = self.rows(len(x))
        if torch.is_tensor(x):
            return x[r]
        from .data.collate import Batch

        idx = list(range(len(x)))[r]
        out = x.select(idx)
        out.extras = {k: (v.select(idx) if isinstance(v, Batch) and len(v) == len(x) else v)
                      for k, v in out.extras.items()}
        return out

    # ---- the model ----------------------------------------------------------------------------------------
    def prepare(self, model, optimizer):
        """The model and optimiser wrapped for data-parallel training (unchanged for one process)."""
        if not self.parallel:
            return model, optimizer
        return self.accelerator.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        if self.parallel:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def clip_grad_norm(self, model, max_norm: float) -> torch.Tensor:
        """Clip the (synchronised) gradients; returns their total norm."""
        if self.parallel:
            return self.accelerator.clip_grad_norm_(model.parameters(), max_norm)
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def check(self, spec, objective) -> None:
        """Refuse what cannot be split over ranks exactly (see the module docstring)."""
        if not self.parallel:
            return
        if not getattr(objective, "data_parallel", False):
            raise SpecError(f"objective '{spec.objective}' cannot run data parallel over {self.world} processes "
                            "(its batch reductions are per process); run it in one process")
        if spec.control in ("magnitude_matched_grad", "step_matched"):
            raise SpecError(f"control '{spec.control}' cannot run data parallel over {self.world} "
                            "processes (its gradient or step norms would be per process); run it in one process")


_SINGLE = ProcessGroup()
_ACTIVE: list[ProcessGroup] = []


def current() -> ProcessGroup:
    """The process group of this run (one process unless a launcher started several)."""
    return _ACTIVE[-1] if _ACTIVE else _SINGLE


def launch(launcher: str = "accelerate") -> ProcessGroup:
    """Join the processes that ``launcher`` started (``accelerate launch``/``torchrun`` set the environment);
    ``none`` is one process. The group stays active for this process."""
    if launcher not in LAUNCHERS:
        raise SpecError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got '{launcher}'")
    if launcher == "none":
        return current()
    try:
        from accelerate import Accelerator
    except ImportError as e:
        raise TuevalError(f"--launcher accelerate needs accelerate ({e.msg}); pip install accelerate") from None
    # the engine computes on the CPU (models and batches stay there), so the processes join over gloo
    # (accelerate's MULTI_CPU), also on a machine with GPUs
    acc = Accelerator(cpu=True)
    kind = getattr(acc.distributed_type, "value", str(acc.distributed_type))
    if kind in SHARDED:
        raise TuevalError(f"--launcher accelerate: the {kind} strategy shards the model, which the engine does not "
                          "support yet (it trains data parallel, DDP); see docs/scale_out.md")
    group = ProcessGroup(acc.process_index, acc.num_processes, acc)
    if not group.parallel:
        import sys

        print("tueval: --launcher accelerate found one process: nothing to split (start several with torchrun "
              "--nproc_per_node N or accelerate launch --multi_gpu --num_processes N)", file=sys.stderr)
    _ACTIVE.append(group)
    return group


# ------------------------------------------------------------------------------------------- global reductions
def global_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over every rank, with gradients flowing back to each rank's share (``x`` itself in one
    process). Every rank must call it in the same order."""
    g = current()
    if not g.parallel:
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x)


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of per-sequence values ``x`` over the global batch (``x.mean()`` in one process)."""
    if not current().parallel:
        return x.mean()
    n = global_sum(torch.tensor(float(x.numel()), dtype=x.dtype, device=x.device))
    return global_sum(x.sum()) / n
