"""The frozen reference model's per-token values on the forget examples, computed once per run.

NPO, IdkPO and TPO read one per-token value of the reference's forward on each forget batch (its log-probs, or
its raw logit of the ground-truth token). The reference never changes during a run, so a forward per step would
compute the same numbers every epoch: the store runs the reference on the rows of a batch it has not seen (in
the first epoch, every batch, as a forward per step would) and afterwards slices the stored rows
(``Objective.ref_tokens`` names the value; an objective without it keeps its own forward per step)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .data.collate import Batch
from .forward import model_forward
from .objectives.base import gt_logits

REF_TOKEN_VALUES = ("logp", "gt_logit")
"""The per-token reference values an objective may declare in ``ref_tokens``."""
CACHE = True
"""Whether the engine stores the reference's values across steps (False: a reference forward every step)."""


@dataclass
class RefTokens:
    """Per-token values of the reference's forward on a forget batch ([B, T], aligned with input positions as
    ``ForwardOut``): the log-probs ``logp`` or the raw ground-truth logits ``gt_logit``, whichever is read."""

    logp: torch.Tensor | None = None
    gt_logit: torch.Tensor | None = None

    def shard(self, group) -> "RefTokens":
        """This process's rows (``tueval.distributed``)."""
        return RefTokens(*(None if t is None else group.shard(t) for t in (self.logp, self.gt_logit)))


@torch.no_grad()
def reference_values(ref_model, batch: Batch, what: str) -> torch.Tensor:
    """The reference's ``what`` (one of ``REF_TOKEN_VALUES``) at every position of ``batch`` ([B, T]), from one
    forward."""
    f = model_forward(ref_model, batch)
    return f.logp if what == "logp" else gt_logits(f.logits, batch.input_ids)


class RefStore:
    """The reference's ``what`` of every forget example seen so far ([N, T] on the data's device), filled by a
    forward on the rows of each batch that are new to it."""

    def __init__(self, what: str, shape: tuple[int, int], device):
        if what not in REF_TOKEN_VALUES:
            raise ValueError(f"ref_tokens '{what}' is not one of {', '.join(REF_TOKEN_VALUES)}")
        self.what, self.shape, self.device = what, tuple(shape), device
        self.values: torch.Tensor | None = None
        self.seen = torch.zeros(shape[0], dtype=torch.bool)

    def __call__(self, ref_model, idx: torch.Tensor, batch: Batch) -> RefTokens:
        """The values of the forget batch ``batch`` (examples ``idx``, trimmed to its columns)."""
        new = ~self.seen[idx]
        if bool(new.any()):
            b = batch if bool(new.all()) else Batch.trim(batch.select(torch.nonzero(new).squeeze(1)))
            v = reference_values(ref_model, b, self.what)
            if self.values is None:  # the forward's own dtype, so that a step reads what it would compute
                self.values = v.new_zeros(self.shape)
            self.values[idx[new].to(v.device), : v.shape[1]] = v
            self.seen[idx[new]] = True
        return RefTokens(**{self.what: self.values[idx.to(self.values.device)][:, : batch.input_ids.shape[1]]})

    def state_dict(self) -> dict:
        """The stored rows (a resumed run reads the same values as the run it continues)."""
        return {"values": None if self.values is None else self.values.cpu(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``."""
        self.values = None if state["values"] is None else state["values"].to(self.device)
        self.seen = state["seen"].clone()
