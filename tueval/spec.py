"""The run spec: every field that defines an unlearning run (its hash names the run folder)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import SpecError

#: RunSpec fields added after runs were cached: omitted from the hashed spec (and spec.json) while equal to their
#: default, so every run that does not use them keeps its id
HASH_OPTIONAL = ("lmeval_tasks",)


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines an unlearning run (its hash names the run folder).

    ``scorer='uniform', mode='none'`` is the sequence-level base. ``control`` replaces the method's weights by a
    control built from them (random_k, permuted, magnitude_matched, magnitude_matched_grad, bottom_k).
    ``lmeval_tasks`` (task names; a list or a comma-separated string becomes a tuple) adds an lm-eval
    multiple-choice evaluation of the unlearned model on the workdir's exported tasks."""

    objective: str = "ga"
    scorer: str = "uniform"
    mode: str = "none"
    ratio: float = 0.3
    control: str | None = None
    seed: int = 0
    lr: float = 1e-3
    epochs: int = 5
    batch_size: int = 16
    weight_decay: float = 0.0
    clip: float = 1.0
    normaliser: str = "auto"
    forget_split: str | None = None
    objective_params: dict = field(default_factory=dict)
    scorer_params: dict = field(default_factory=dict)
    generate: bool = True
    save_model: bool = False
    snapshot_steps: tuple = ()
    ckpt_every: int = 20
    lmeval_tasks: tuple = ()

    def __post_init__(self):
        if not isinstance(self.lmeval_tasks, tuple):
            object.__setattr__(self, "lmeval_tasks", _task_tuple(self.lmeval_tasks))

    def to_dict(self) -> dict:
        return asdict(self)

    def hash_dict(self) -> dict:
        """``to_dict()`` without the ``HASH_OPTIONAL`` fields that hold their default (the dict the hash sees)."""
        d = self.to_dict()
        for k in HASH_OPTIONAL:
            if d[k] == self.__dataclass_fields__[k].default:
                d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        d = dict(d)
        if "snapshot_steps" in d:
            d["snapshot_steps"] = tuple(d["snapshot_steps"])
        if "lmeval_tasks" in d:
            d["lmeval_tasks"] = _task_tuple(d["lmeval_tasks"])
        valid = {f for f in cls.__dataclass_fields__}
        bad = sorted(set(d) - valid)
        if bad:
            raise SpecError(f"unknown run-spec field(s) {', '.join(bad)}; valid: {', '.join(sorted(valid))}")
        return cls(**d)

    def label(self) -> str:
        """A short human label: objective/scorer-mode-ratio[+control]."""
        if self.scorer == "uniform" and self.mode == "none" and self.control is None:
            return f"{self.objective}/sequence"
        s = f"{self.objective}/{self.scorer}-{self.mode}"
        if self.mode == "hard":
            s += f"{self.ratio:g}"
        return s + (f"+{self.control}" if self.control else "")


def _task_tuple(tasks) -> tuple:
    """lm-eval task names as a tuple: from a tuple/list of names or a comma-separated string (None/'' = none)."""
    if tasks is None:
        return ()
    items = [tasks] if isinstance(tasks, str) else list(tasks)
    return tuple(t.strip() for s in items for t in str(s).split(",") if t.strip())
