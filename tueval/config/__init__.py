"""One typed configuration for runs, grids and analyses, with its presets in ``tueval/configs/``.

- ``checks``: the rule of every run-spec field and analysis setting (types, ranges, allowed names);
- ``schema``: ``Defaults`` (run defaults, per-objective overrides, analysis settings) and ``AnalysisSettings``;
- ``grid``: ``GridConfig``, the one file format of ``tueval sweep FILE`` and ``tueval analyze NAME --config FILE``,
  and the analysis profiles' grids (``profile_grid``; import them from ``tueval.config.grid``, which sits above
  ``tueval.spec``);
- ``resolve``: ``run_fields`` (given fields, then the preset's, then the objective's defaults, then the global
  defaults); ``tueval.spec.resolve_spec`` builds a RunSpec from them, ``tueval.spec.non_default_fields`` says what
  a command must state;
- ``presets``: the shipped ``defaults.yaml``.
"""
from .checks import FieldError
from .presets import config_dir, defaults
from .resolve import run_fields
from .schema import AnalysisSettings, Defaults

__all__ = ["AnalysisSettings", "Defaults", "FieldError", "config_dir", "defaults", "run_fields"]
