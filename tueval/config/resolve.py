"""Resolution of a run's settings: the values given win, then the objective's defaults, then the global defaults."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .checks import check_names, check_run_fields
from .presets import defaults

if TYPE_CHECKING:
    from ..spec import RunSpec


def run_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every RunSpec field of a run, concrete: ``given`` (each checked by its rule) over the fields of the preset
    it names (``tueval.presets.apply_preset``) over the defaults of the objective (given, else the preset's, else
    the default objective) over the global run defaults."""
    from ..presets import apply_preset

    checked = apply_preset(check_run_fields(given))
    d = defaults()
    return {**d.for_objective(checked.get("objective", d.run["objective"])), **checked}


def resolve_spec(objective: str | None = None, /, **given: Any) -> "RunSpec":
    """The concrete RunSpec of ``objective`` with the ``given`` fields, its names checked through the
    registries (the entry point of the CLI, sweep files and analyses: the same words give the same spec)."""
    from ..spec import RunSpec

    spec = RunSpec(**({} if objective is None else {"objective": objective}), **given)
    check_names(spec)
    return spec


def non_default_fields(spec: "RunSpec") -> dict[str, Any]:
    """The fields of ``spec`` that differ from the defaults of its objective, or of its preset (what a command
    must state; the objective and the preset always)."""
    base = (run_fields({"preset": spec.preset, "objective": spec.objective}) if spec.preset
            else defaults().for_objective(spec.objective))
    return {k: v for k, v in spec.to_dict().items()
            if k in ("objective", "preset") and v is not None or base.get(k) != v}
