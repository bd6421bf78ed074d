"""Resolution of a run's settings: the values given win, then the preset's, then the objective's defaults, then the
global defaults (``tueval.spec.resolve_spec`` builds the RunSpec from them)."""
from __future__ import annotations

from typing import Any, Mapping

from .checks import check_run_fields
from .presets import defaults


def run_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every RunSpec field of a run, concrete: ``given`` (each checked by its rule) over the fields of the preset
    it names (``tueval.presets.apply_preset``) over the defaults of the objective (given, else the preset's, else
    the default objective) over the global run defaults."""
    from ..presets import apply_preset, known_preset

    checked = check_run_fields(given)
    known_preset("preset", checked.get("preset"))
    checked = apply_preset(checked)
    d = defaults()
    return {**d.for_objective(checked.get("objective", d.run["objective"])), **checked}
