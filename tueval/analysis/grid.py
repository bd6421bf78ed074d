"""The unlearning runs a trade-off analysis compares: each method with its control arms and the sequence-level
base over the same seeds (plus optional ratio / learning-rate sweeps), labelled cells built on
``tueval.sweep.expand_grid``."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from .. import defaults
from ..presets import base_fields, expand_method
from ..spec import RunSpec
from ..sweep import expand_grid

BASE = "uniform"  # the sequence-level base, treated as one more control
METHOD_ARM = "method"
GRID_ONLY_KEYS = ("controls", "objectives")  # keys of a method entry that choose arms, not run settings


@dataclass(frozen=True)
class Cell:
    """One run of the grid, labelled for the analysis."""

    objective: str
    method: str
    arm: str
    seed: int
    spec: RunSpec
    role: str = "confirmatory"  # or "sweep" (Pareto only)
    setting: str = ""


def _run_settings(method: dict) -> dict:
    return {k: v for k, v in method.items() if k not in GRID_ONLY_KEYS}


def method_name(method: dict) -> str:
    """The method label without objective, e.g. ``tokenunlearn-hard0.3``."""
    return expand_grid({"objectives": ["ga"], "methods": [_run_settings(method)]})[0].label().split("/", 1)[1]


def arm_specs(objective: str, method: dict, arm: str, seeds: Sequence[int], fixed: dict, **over) -> list[RunSpec]:
    """The RunSpecs (one per seed) of one arm: ``method`` itself (METHOD_ARM), the method under a weighting
    control (the control's name), or the sequence-level base (BASE; for a preset method, the preset's objective
    and its settings with uniform weights); ``over`` overrides run settings."""
    if arm == BASE:  # a preset's base keeps the preset's objective settings (e.g. ATWU's GradDiff alpha 6, gamma 4)
        base = base_fields(method) if method.get("preset") else {"scorer": "uniform", "mode": "none"}
        m, control = {**base, "objective": objective, **over}, None
    else:
        m, control = {**_run_settings(method), "objective": objective, **over}, (None if arm == METHOD_ARM else arm)
    return expand_grid({"fixed": dict(fixed), "objectives": [objective], "seeds": list(seeds), "controls": [control],
                        "methods": [m]})


def arm_cells(objective: str, name: str, method: dict, arms: Iterable[str], seeds: Sequence[int], fixed: dict,
              role: str = "confirmatory", setting: str = "", **over) -> list[Cell]:
    """The cells of ``arms`` (arm-major, then seeds) of one method labelled ``name``."""
    return [Cell(objective, name, arm, s.seed, s, role, setting)
            for arm in arms for s in arm_specs(objective, method, arm, seeds, fixed, **over)]


def objective_settings(objective: str, fixed: dict | None = None) -> dict:
    """The shared run settings of ``objective``'s arms: the defaults, the objective's own, then ``fixed`` (the
    user's settings win, as they do on the command line)."""
    return {**defaults.RUN, **defaults.OBJECTIVE_FIXED.get(objective, {}), **(fixed or {})}


#: controls whose dose is the method's by construction (each step rescaled to the method's), never run at
#: another learning rate of their own
NOT_REDOSED = ("step_matched",)


def grid_cells(objectives: Sequence[str], methods: Sequence[dict], controls: Sequence[str], seeds: Sequence[int],
               fixed: dict | None = None, ratios: Sequence[float] = (), lrs: Sequence[float] = (),
               base_lr_factors: Sequence[float] = (), control_lr_factors: Sequence[float] = ()) -> list[Cell]:
    """Every run the analysis needs: the confirmatory arms at ``objective_settings``, plus (if ``ratios``/``lrs``)
    a sweep of hard ratios (method and random_k) and learning rates (method and uniform) for the Pareto plot, and
    (``base_lr_factors``) the uniform base alone at its own learning rate times each factor, so that the base's
    frontier reaches methods that forget more than it does at its own rate; ``control_lr_factors`` the same for
    each of the method's other controls (they forget less than the method at its rate; not ``NOT_REDOSED``). A
    method entry may name its own ``controls`` (the base is kept when ``controls`` holds it) and the
    ``objectives`` it runs on; a ``preset`` entry carries the preset's fields and runs on the preset's objective
    (``tueval.presets.expand_method``)."""
    methods = [expand_method(m) for m in methods]
    cells = []
    for obj in objectives:
        fx = objective_settings(obj, fixed)
        for m in methods:
            if "objectives" in m and obj not in m["objectives"]:
                continue
            arms = list(m.get("controls", controls))
            if "controls" in m and BASE in controls and BASE not in arms:
                arms.append(BASE)
            name = f"{obj}/{method_name(m)}"
            cells += arm_cells(obj, name, m, [METHOD_ARM, *arms], seeds, fx)
            if m.get("mode") == "hard":
                for r in ratios:
                    if not math.isclose(r, m.get("ratio", 0.3)):
                        cells += arm_cells(obj, name, m, (METHOD_ARM, "random_k"), seeds, fx, "sweep",
                                           f"ratio={r:g}", ratio=r)
            for lr in lrs:
                if not math.isclose(lr, fx.get("lr", 1e-3)):
                    cells += arm_cells(obj, name, m, (METHOD_ARM, BASE), seeds, fx, "sweep", f"lr={lr:g}", lr=lr)
            for arm in arms:
                factors = base_lr_factors if arm == BASE else control_lr_factors
                if not factors or arm in NOT_REDOSED:
                    continue
                own_lr = arm_specs(obj, m, arm, seeds[:1], fx)[0].lr
                for f in factors:
                    if not math.isclose(f, 1.0):
                        lr = float(own_lr * f)
                        cells += arm_cells(obj, name, m, (arm,), seeds, fx, "sweep", f"lr={lr:g}", lr=lr)
    return cells


def selection_cells(scorers: Sequence[str], ratios: Sequence[float], seeds: Sequence[int], arms: dict[str, str | None],
                    objective: str = "ga", fixed: dict | None = None, scorer_params: dict | None = None
                    ) -> list[Cell]:
    """Hard selections of q of each answer's tokens per scorer, one arm per entry of ``arms`` (arm name ->
    weighting control, None = the scorer's own top-q), over seeds; the method label is the top-q run's."""
    fixed = objective_settings(objective, fixed)
    cells = []
    for sc in scorers:
        params = {"scorer_params": dict(scorer_params[sc])} if scorer_params and sc in scorer_params else {}
        for q in ratios:
            m = {"scorer": sc, "mode": "hard", "ratio": float(q), **params}
            for arm, control in arms.items():
                for s in arm_specs(objective, m, control or METHOD_ARM, seeds, fixed):
                    label = replace(s, control=None).label()
                    cells.append(Cell(objective, label, arm, s.seed, s, setting=f"q={q:g}"))
    return cells


def spec_key(spec: RunSpec) -> str:
    """A hashable identity of a spec (RunSpec holds dicts, so it is not hashable itself)."""
    return json.dumps(spec.to_dict(), sort_keys=True, default=str)


def unique_specs(cells: Iterable[Cell]) -> list[RunSpec]:
    """The distinct specs of ``cells`` in first-seen order (the uniform base is shared by all methods)."""
    return list({spec_key(c.spec): c.spec for c in cells}.values())
