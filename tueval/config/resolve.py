"""Resolution of a run's settings: the values given win, then the preset's, then the objective's defaults, then the
global defaults (``tueval.spec.resolve_spec`` builds the RunSpec from them)."""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import SpecError
from .checks import FieldError, check_run_fields
from .presets import defaults


def run_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every RunSpec field of a run, concrete: ``given`` (each checked by its rule) over the fields of the preset
    it names (``tueval.presets.apply_preset``) over the defaults of the objective (given, else the preset's, else
    the default objective) over the global run defaults."""
    from ..presets import apply_preset

    try:
        checked = apply_preset(check_run_fields(given))
    except FieldError:
        raise
    except SpecError as e:  # the preset it names is not shipped: that field's error, as any other rule's
        raise FieldError("preset", str(e)) from None
    d = defaults()
    return {**d.for_objective(checked.get("objective", d.run["objective"])), **checked}
