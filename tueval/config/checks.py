"""The rules every run-spec field and analysis setting must meet, checked before any work starts.

Each rule takes the field name and a value and returns the value in its stored form (an int given for a float
field becomes a float, a list of steps a tuple) or raises ``FieldError`` naming the field. ``check_names`` builds
the objective, the scorer and the weighting of a spec through their registries, so unknown names and settings fail
with the registries' own messages (which list the valid names) before a run folder exists.
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Callable, Mapping

from ..errors import SpecError

#: a forget split is a name such as ``forget10`` (the engine derives ``retain90`` from it), never a path
FORGET_SPLIT = re.compile(r"forget(\d+)")
#: seeds are non-negative and fit the unsigned 32-bit range every RNG in the engine accepts
MAX_SEED = 2**32 - 1
NONE_CONTROLS = ("none", "None", "")


class FieldError(SpecError):
    """A setting that breaks its rule; names the field and, once known, where it was given (file, line)."""

    def __init__(self, field: str, problem: str, where: str = ""):
        self.field, self.problem, self.where = field, problem, where
        super().__init__(f"{where}: field '{field}': {problem}" if where else f"field '{field}': {problem}")

    def at(self, where: str) -> "FieldError":
        """The same error, located (``where`` names the file, line and entry)."""
        return FieldError(self.field, self.problem, where)


# --------------------------------------------------------------------------------------------------- value rules
def number(field: str, v: Any) -> float:
    """``v`` as a float; booleans and strings are refused."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise FieldError(field, f"must be a number, got {v!r}")
    return float(v)


def positive(field: str, v: Any) -> float:
    """A finite float > 0."""
    x = number(field, v)
    if not (math.isfinite(x) and x > 0):
        raise FieldError(field, f"must be > 0 and finite, got {v!r}")
    return x


def non_negative(field: str, v: Any) -> float:
    """A finite float >= 0."""
    x = number(field, v)
    if not (math.isfinite(x) and x >= 0):
        raise FieldError(field, f"must be >= 0 and finite, got {v!r}")
    return x


def unit_ratio(field: str, v: Any) -> float:
    """A float in (0, 1]."""
    x = number(field, v)
    if not (0.0 < x <= 1.0):
        raise FieldError(field, f"must lie in (0, 1], got {v!r}")
    return x


def open_unit(field: str, v: Any) -> float:
    """A float in (0, 1) (a significance level)."""
    x = number(field, v)
    if not (0.0 < x < 1.0):
        raise FieldError(field, f"must lie in (0, 1), got {v!r}")
    return x


def integer(field: str, v: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not 1.5, not '3') within [low, high]."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise FieldError(field, f"must be an integer, got {v!r}")
    v = int(v)
    if low is not None and v < low:
        raise FieldError(field, f"must be >= {low}, got {v}")
    if high is not None and v > high:
        raise FieldError(field, f"must be <= {high}, got {v}")
    return v


def at_least_one(field: str, v: Any) -> int:
    """An integer >= 1."""
    return integer(field, v, low=1)


def count(field: str, v: Any) -> int:
    """An integer >= 0."""
    return integer(field, v, low=0)


def seed(field: str, v: Any) -> int:
    """An integer seed in [0, 2**32 - 1]."""
    return integer(field, v, low=0, high=MAX_SEED)


def boolean(field: str, v: Any) -> bool:
    """``True`` or ``False`` (not 0/1, not 'yes')."""
    if not isinstance(v, bool):
        raise FieldError(field, f"must be true or false, got {v!r}")
    return v


def name(field: str, v: Any) -> str:
    """A non-empty string (a registry name or ``module:function``)."""
    if not isinstance(v, str) or not v.strip():
        raise FieldError(field, f"must be a non-empty name, got {v!r}")
    return v


def text(field: str, v: Any) -> str:
    """A non-empty string (a path or label)."""
    return name(field, v)


def choice(options: tuple) -> Callable[[str, Any], Any]:
    """A rule accepting only ``options``."""
    def rule(field: str, v: Any) -> Any:
        if v not in options:
            raise FieldError(field, f"must be one of {', '.join(map(str, options))}; got {v!r}")
        return v
    return rule


def mode(field: str, v: Any) -> str:
    from ..weighting import MODES

    return choice(MODES)(field, v)


def normaliser(field: str, v: Any) -> str:
    from ..weighting import NORMALISERS

    return choice(NORMALISERS)(field, v)


def control(field: str, v: Any) -> str | None:
    """None (the method itself; 'none' and '' mean the same) or a control name."""
    from ..weighting import CONTROLS

    if v in NONE_CONTROLS:
        return None
    if v not in CONTROLS:
        raise FieldError(field, f"must be null or one of {', '.join(c for c in CONTROLS if c)}; got {v!r}")
    return v


def forget_split(field: str, v: Any) -> str | None:
    """None (the workdir's split) or a split name ``forgetNN`` with 0 < NN < 100."""
    if v is None:
        return None
    m = FORGET_SPLIT.fullmatch(v) if isinstance(v, str) else None
    if m is None or not 0 < int(m.group(1)) < 100:
        raise FieldError(field, f"must be a split name like forget10 (forget01 .. forget99), got {v!r}")
    return v


def params(field: str, v: Any) -> dict:
    """A mapping of setting names to values (the objective or scorer checks the values)."""
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise FieldError(field, f"must be a mapping of setting names to values, got {v!r}")
    return dict(v)


def positive_list(field: str, v: Any) -> tuple:
    """A list of finite numbers > 0 (one number is a list of one), as a tuple of floats."""
    vals = v if isinstance(v, (list, tuple)) else [v]
    return tuple(positive(field, x) for x in vals)


def steps(field: str, v: Any) -> tuple:
    """A list of positive integer step numbers, as a tuple."""
    if not isinstance(v, (list, tuple)):
        raise FieldError(field, f"must be a list of step numbers, got {v!r}")
    return tuple(integer(field, s, low=1) for s in v)


def tasks(field: str, v: Any) -> tuple:
    """lm-eval task names: a list or a comma-separated string (None or '' = none), as a tuple."""
    from ..evaluation.lmeval import _TASK_NAME

    if v is None:
        return ()
    if not isinstance(v, (str, list, tuple)) or not all(isinstance(s, str) for s in ([v] if isinstance(v, str)
                                                                                      else v)):
        raise FieldError(field, f"must be task names (a list or a comma-separated string), got {v!r}")
    items = [v] if isinstance(v, str) else list(v)
    out = tuple(t.strip() for s in items for t in s.split(",") if t.strip())
    bad = [t for t in out if not _TASK_NAME.match(t)]
    if bad:
        raise FieldError(field, f"invalid lm-eval task name(s) {', '.join(map(repr, bad))}")
    return out


def every(field: str, v: Any) -> int | str:
    """A checkpoint interval: 0 (none), a step count >= 1, or ``'epoch'``."""
    if v == "epoch":
        return "epoch"
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise FieldError(field, f"must be 0 (none), a step count >= 1 or 'epoch', got {v!r}")
    return int(v)


def preset(field: str, v: Any) -> str | None:
    """None or a method preset's name; whether it names a shipped preset (``tueval.presets``) is checked where
    presets are applied (``tueval.config.resolve.run_fields``, ``tueval.config.grid``), above this module."""
    if v is None:
        return None
    name(field, v)
    return v


def optional(rule: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """``rule``, or None."""
    return lambda field, v: None if v is None else rule(field, v)


#: the rule of every RunSpec field (tueval/spec.py); the defaults of each are in tueval/configs/defaults.yaml
RUN_RULES: dict[str, Callable[[str, Any], Any]] = {
    "objective": name, "scorer": name, "mode": mode, "ratio": unit_ratio, "control": control, "seed": seed,
    "lr": positive, "epochs": at_least_one, "batch_size": at_least_one, "weight_decay": non_negative,
    "clip": positive, "normaliser": normaliser, "forget_split": forget_split, "objective_params": params,
    "scorer_params": params, "generate": boolean, "save_model": boolean, "snapshot_steps": steps,
    "ckpt_every": at_least_one, "lmeval_tasks": tasks, "special_tokens": choice(("auto", "exclude", "include")),
    "preset": preset, "max_new_tokens": at_least_one, "eval_every": every, "eval_steps": steps,
    "stop_step": count,
}


def check_run_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` run-spec fields in their stored form; unknown fields or values that break a rule raise."""
    bad = sorted(set(given) - set(RUN_RULES))
    if bad:
        raise SpecError(f"unknown run-spec field(s) {', '.join(bad)}; valid: {', '.join(sorted(RUN_RULES))}")
    return {k: RUN_RULES[k](k, v) for k, v in given.items()}


# --------------------------------------------------------------------------------------------------- names
def check_names(spec) -> None:
    """Build ``spec``'s objective, scorer and weighting through their registries (unknown names or settings
    raise SpecError listing the valid ones), as the engine will, without touching a workdir."""
    from ..objectives import make_objective
    from ..scoring import make_scorer
    from ..weighting import WeightingSpec

    key = (spec.objective, spec.scorer, spec.mode, spec.ratio, spec.control, spec.normaliser,
           repr(sorted(spec.objective_params.items())), repr(sorted(spec.scorer_params.items())))
    if key in _CHECKED:
        return
    w = WeightingSpec(mode=spec.mode, ratio=spec.ratio, control=spec.control, normaliser=spec.normaliser)
    _build(f"scorer '{spec.scorer}'", make_scorer, spec.scorer, dict(spec.scorer_params))
    obj_params = dict(spec.objective_params)
    obj_params.setdefault("normaliser", w.loss_normaliser)
    _build(f"objective '{spec.objective}'", make_objective, spec.objective, obj_params)
    _CHECKED.add(key)


_CHECKED: set = set()


def _build(what: str, make, name_: str, kw: dict) -> None:
    try:
        make(name_, kw)
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 - a constructor refusing its settings is a spec error, not a crash
        raise SpecError(f"{what}: cannot be built with settings {kw}: {type(e).__name__}: {e}") from e
