"""The shipped configuration folder ``tueval/configs/`` and its defaults file (the profiles' grids:
``tueval.config.grid.profile_grid``)."""
from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from .schema import Defaults, parse_defaults
from .yamlfile import parse_yaml

def config_dir() -> Path:
    """The folder of the shipped presets (``tueval/configs``)."""
    return Path(str(files("tueval") / "configs"))


@lru_cache(maxsize=None)
def defaults() -> Defaults:
    """The shipped defaults (``tueval/configs/defaults.yaml``), checked once."""
    path = config_dir() / "defaults.yaml"
    data, lines = parse_yaml(path.read_text(encoding="utf-8"), f"defaults file {path}")
    return parse_defaults(data, f"defaults file {path}", lines)
