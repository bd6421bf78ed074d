"""The shipped defaults and analysis-profile grids as plain values (a view of ``tueval/configs/``).

Edit the presets, not this module: ``tueval/configs/defaults.yaml`` holds the run defaults (with the measurements
behind the learning rates) and the per-objective overrides, ``tueval/configs/profiles/*.yaml`` the grids of the
analysis profiles ``default`` (the demo), ``grid`` and ``full``.
"""
from __future__ import annotations

from .config import defaults as _defaults
from .config.grid import profile_grid as _grid

_D = _defaults()

#: what every analysis run sets beyond the run defaults (the default profile's ``fixed``: trajectories, generation
#: cap); an analysis grid without its own ``fixed`` uses these, so an objective's own defaults still apply
SHARED = dict(_grid("default").fixed)
#: the global run defaults of lr, epochs and batch size (what a spec that names none of them trains with)
RUN = {k: _D.run[k] for k in ("lr", "epochs", "batch_size")}
#: the settings of a GA run of the analyses: ``RUN`` and ``SHARED``
FIXED = {**RUN, **SHARED}
#: per objective, the run defaults it sets differently (NPO and its relatives train at lr 1e-3)
OBJECTIVE_FIXED = {obj: dict(over) for obj, over in _D.objectives.items()}
#: seeds of the analyses (7: enough for Holm-adjusted p < 0.05 with the exact sign-flip test over 4 comparisons)
SEEDS = list(_D.analysis.seeds)

#: profile ``default`` (the demo grid): the paper presets with their informative controls, and their objectives
DEMO_METHODS = [m.to_dict() for m in _grid("default").methods]
CONTROLS = list(_grid("default").axes["control"])
OBJECTIVES = list(_grid("default").axes["objective"])
#: per analysis profile, the factors of the uniform base's own learning rate it also runs at (its frontier)
BASE_LR_FACTORS = {name: tuple(_grid(name).settings.get("base_lr_factors", ())) for name in ("default", "grid", "full")}
#: the same for the other controls of each method
CONTROL_LR_FACTORS = {name: tuple(_grid(name).settings.get("control_lr_factors", ()))
                      for name in ("default", "grid", "full")}
#: per analysis profile, whether the matched comparison runs one round of refinement runs
REFINE = {name: bool(_grid(name).settings.get("refine", False)) for name in ("default", "grid", "full")}
#: per analysis profile, how many bracketing rounds the matched comparison runs before refining
BRACKET_ROUNDS = {name: int(_grid(name).settings.get("bracket_rounds", 0)) for name in ("default", "grid", "full")}
#: profile ``grid``: every paper preset against its informative control, TokenUnlearn also on NPO
GRID_METHODS = [m.to_dict() for m in _grid("grid").methods]
GRID_OBJECTIVES = list(_grid("grid").axes["objective"])
#: profile ``full``: every scorer family on every objective with every control
FULL_METHODS = [m.to_dict() for m in _grid("full").methods]
FULL_CONTROLS = list(_grid("full").axes["control"])
FULL_OBJECTIVES = list(_grid("full").axes["objective"])
