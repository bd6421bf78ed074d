"""The presets shipped in ``tueval/configs/``: the defaults file and the analysis profiles' grids."""
from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from .schema import Defaults, parse_defaults
from .yamlfile import parse_yaml

#: analysis profiles with a grid preset in ``tueval/configs/profiles/`` (``quick`` is the controls analysis' own)
PROFILE_GRIDS = ("default", "grid", "full")


def config_dir() -> Path:
    """The folder of the shipped presets (``tueval/configs``)."""
    return Path(str(files("tueval") / "configs"))


@lru_cache(maxsize=None)
def defaults() -> Defaults:
    """The shipped defaults (``tueval/configs/defaults.yaml``), checked once."""
    path = config_dir() / "defaults.yaml"
    data, lines = parse_yaml(path.read_text(encoding="utf-8"), f"defaults file {path}")
    return parse_defaults(data, f"defaults file {path}", lines)


@lru_cache(maxsize=None)
def profile_grid(name: str):
    """The grid preset of analysis profile ``name`` (``tueval/configs/profiles/NAME.yaml``) as a GridConfig."""
    from .grid import load_config

    if name not in PROFILE_GRIDS:
        from ..errors import SpecError

        raise SpecError(f"no grid preset for profile '{name}'; presets: {', '.join(PROFILE_GRIDS)}")
    return load_config(config_dir() / "profiles" / f"{name}.yaml", names=False)
