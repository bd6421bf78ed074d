"""The analyses registry: one module per reviewer question in ``analyses/``, each with ``run(...)``."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from .registry import Registry
from .workdir import Workdir

ANALYSES: Registry = Registry("analysis", "tueval.analyses")
BUILTIN = ("controls", "retrain", "intervention", "alignment", "snr", "sanity")


@dataclass
class AnalysisConfig:
    """Settings shared by analyses: workdir, output folder, seeds, whether missing runs are computed, the
    scorers under test, the significance level, the profile (``quick`` for tests/CI, ``default``, ``full``), and
    whether the expensive per-example tables are read from the workdir's analysis cache."""

    workdir: Workdir
    reports: Path = Path("reports")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    compute: bool = True
    scorers: tuple[str, ...] = ()
    alpha: float = 0.05
    profile: str = "default"
    workers: int | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)
    cache: bool = True  # reuse the expensive tables cached in WORKDIR/analyses/ (see analysis_cache.py)


def get_analysis(name: str):
    """The ``run`` function of analysis ``name`` (built-ins live in ``analyses/<name>.py``)."""
    if name in BUILTIN and name not in ANALYSES:
        importlib.import_module(f"analyses.{name}")
    return ANALYSES.get(name)


def register_analysis(name: str):
    """Decorator: register an analysis ``run(cfg: AnalysisConfig) -> dict`` under ``name``."""
    return ANALYSES.register(name)
