"""One typed configuration for runs, grids and analyses, with its presets in ``tueval/configs/``.

- ``checks``: the rule of every run-spec field and analysis setting (types, ranges, allowed names);
- ``schema``: ``Defaults`` (run defaults, per-objective overrides, analysis settings) and ``AnalysisSettings``;
- ``grid``: ``GridConfig``, the one file format of ``tueval sweep FILE`` and ``tueval analyze NAME --config FILE``;
- ``resolve``: ``resolve_spec`` (given fields, then the objective's defaults, then the global defaults);
- ``presets``: the shipped ``defaults.yaml`` and the analysis profiles' grids.
"""
from .checks import FieldError
from .presets import config_dir, defaults, profile_grid
from .resolve import non_default_fields, resolve_spec, run_fields
from .schema import AnalysisSettings, Defaults

__all__ = ["AnalysisSettings", "Defaults", "FieldError", "config_dir", "defaults", "load_config",
           "non_default_fields", "profile_grid", "resolve_spec", "run_fields", "GridConfig"]


def __getattr__(name: str):
    if name in ("GridConfig", "load_config", "parse_grid"):
        from . import grid

        return getattr(grid, name)
    raise AttributeError(name)
