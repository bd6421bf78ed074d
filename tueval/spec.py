"""The run spec: every field that defines an unlearning run (its hash names the run folder)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .config.checks import check_names
from .config.presets import defaults
from .config.resolve import run_fields

#: RunSpec fields added after runs were cached: omitted from the hashed spec (and spec.json) while equal to their
#: default, so every run that does not use them keeps its id
HASH_OPTIONAL = ("lmeval_tasks", "max_new_tokens", "eval_every", "special_tokens", "eval_steps",
                 "stop_step")
#: RunSpec fields that never enter the hash: ``preset`` names where the values came from, and the values alone
#: define the computation (a preset and the same settings written out share one cached run; editing a preset's
#: documentation renames nothing). The run record keeps the name next to the hashed spec.
NOT_HASHED = ("preset",)


class _Default:
    """The marker of a field not given: ``__post_init__`` replaces it by the resolved default."""

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines an unlearning run (its hash names the run folder).

    A field not given takes the default of the spec's objective, else the global default (both in
    ``tueval/configs/defaults.yaml``; e.g. lr 1.5e-4 for GA, 1e-3 for NPO), resolved once at construction: the
    spec always holds concrete values, and those alone enter the hash, so a spec written out in full and one left
    to its defaults name the same run. Every value is checked at construction (``tueval.config.checks``: types,
    ranges, allowed names); an int given for a float field is stored as a float. ``dataclasses.replace`` keeps the
    other fields' concrete values (replacing ``objective`` does not re-resolve ``lr``).

    ``scorer='uniform', mode='none'`` is the sequence-level base. ``control`` replaces the method's weights by a
    control built from them (random_k, permuted, magnitude_matched, magnitude_matched_grad, bottom_k).
    ``lmeval_tasks`` (task names; a list or a comma-separated string becomes a tuple) adds an lm-eval
    multiple-choice evaluation of the unlearned model on the workdir's exported tasks. ``special_tokens``: whether
    EOS, end-of-turn and chat markup may be selected, scored and unlearned (``exclude``/``include``; ``auto``: the
    workdir's setting, which excludes them on a workdir from a config and includes them on the embedded default).
    ``preset`` names a method preset (``tueval.presets``; ``tueval presets`` lists them): its fields resolve under
    the fields given and over the objective's defaults; it is recorded but not hashed (``NOT_HASHED``).
    ``max_new_tokens`` caps the greedy generations that ROUGE scores (200, as TOFU and open-unlearning).
    ``eval_every`` writes the run's trajectory (``trajectory.parquet``: the checkpoint evaluation after every N
    steps, or every epoch with ``'epoch'``, and the full evaluation on the final row); 0 = none. ``eval_steps`` adds
    checkpoints after the listed steps (with ``eval_every`` 0: only those; ``tueval.analysis.refine``). ``stop_step``
    ends the run after that many steps (0 = never): the learning-rate schedule is still the full run's, so its
    checkpoints are the full run's, and it writes its trajectory without the final evaluation (a refinement run
    that has re-checked the run's next checkpoint needs no more)."""

    objective: str = DEFAULT
    scorer: str = DEFAULT
    mode: str = DEFAULT
    ratio: float = DEFAULT
    control: str | None = DEFAULT
    seed: int = DEFAULT
    lr: float = DEFAULT
    epochs: int = DEFAULT
    batch_size: int = DEFAULT
    weight_decay: float = DEFAULT
    clip: float = DEFAULT
    normaliser: str = DEFAULT
    forget_split: str | None = DEFAULT
    objective_params: dict = DEFAULT
    scorer_params: dict = DEFAULT
    generate: bool = DEFAULT
    save_model: bool = DEFAULT
    snapshot_steps: tuple = DEFAULT
    ckpt_every: int = DEFAULT
    lmeval_tasks: tuple = DEFAULT
    special_tokens: str = DEFAULT
    preset: str | None = DEFAULT
    max_new_tokens: int = DEFAULT
    eval_every: int | str = DEFAULT
    eval_steps: tuple = DEFAULT
    stop_step: int = DEFAULT

    def __post_init__(self):
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not DEFAULT}
        for k, v in run_fields(given).items():
            object.__setattr__(self, k, v)

    def to_dict(self) -> dict:
        return asdict(self)

    def hash_dict(self) -> dict:
        """``to_dict()`` without ``NOT_HASHED`` and without the ``HASH_OPTIONAL`` fields that hold their default
        (the dict the hash sees)."""
        d = self.to_dict()
        for k in NOT_HASHED:
            d.pop(k)
        for k in HASH_OPTIONAL:
            if d[k] == defaults().run[k]:
                d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """A spec from a mapping of fields (missing ones resolve to their defaults; unknown ones raise)."""
        bad = sorted(set(d) - set(cls.__dataclass_fields__))
        if bad:
            run_fields(d)  # raises the error that lists the valid fields
        return cls(**d)

    def label(self) -> str:
        """A short human label: objective/scorer-mode-ratio[+control]."""
        if self.scorer == "uniform" and self.mode == "none" and self.control is None:
            return f"{self.objective}/sequence"
        s = f"{self.objective}/{self.scorer}-{self.mode}"
        if self.mode == "hard":
            s += f"{self.ratio:g}"
        return s + (f"+{self.control}" if self.control else "")

    @property
    def has_trajectory(self) -> bool:
        """Whether the run writes a trajectory (``eval_every`` or ``eval_steps``)."""
        return bool(self.eval_every or self.eval_steps)


def resolve_spec(objective: str | None = None, /, **given: Any) -> RunSpec:
    """The concrete RunSpec of ``objective`` with the ``given`` fields, its names checked through the
    registries (the entry point of the CLI, sweep files and analyses: the same words give the same spec)."""
    spec = RunSpec(**({} if objective is None else {"objective": objective}), **given)
    check_names(spec)
    return spec


def non_default_fields(spec: RunSpec) -> dict[str, Any]:
    """The fields of ``spec`` that differ from the defaults of its objective, or of its preset (what a command
    must state; the objective and the preset always)."""
    base = (run_fields({"preset": spec.preset, "objective": spec.objective}) if spec.preset
            else defaults().for_objective(spec.objective))
    return {k: v for k, v in spec.to_dict().items()
            if k in ("objective", "preset") and v is not None or base.get(k) != v}
