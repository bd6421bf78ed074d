"""The analyses registry: each reviewer question is an ``Analysis`` (its descriptor and ``run``), found by name
through the entry-point group ``tueval.analyses`` (the built-ins in ``tueval_analyses/`` are declared in
pyproject.toml), ``register_analysis`` or ``module:attr``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..registry import Registry
from ..workdir import Workdir

ANALYSES: Registry = Registry("analysis", "tueval.analyses")


@dataclass
class AnalysisConfig:
    """Settings shared by analyses: workdir, output folder, seeds, whether missing runs are computed, the
    scorers under test, the significance level, the profile (``quick`` for tests/CI, ``default``, ``full``), and
    whether the expensive per-example tables are read from the workdir's analysis cache, and where missing runs
    are computed: ``engine`` (``local`` pool of ``workers`` processes, or ``ray``), the Ray cluster ``address`` and
    the ``resources`` each run reserves (docs/scale_out.md)."""

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
    cache: bool = True  # reuse the expensive tables cached in WORKDIR/analyses/ (tueval.analysis.cache)
    engine: str = "local"
    address: str | None = None
    resources: dict = field(default_factory=dict)

    def executor(self):
        """The executor that computes this analysis' missing runs (``tueval.executors``)."""
        from ..executors import make_executor

        return make_executor(self.engine, workers=self.workers, address=self.address, resources=self.resources)


@dataclass(frozen=True)
class Analysis:
    """One reviewer question: its name, report title, the question in one line, ``run(cfg) -> dict``, its place in
    the demo, the report folder under the reports root, the profiles it offers (name -> settings), its
    confirmatory metrics (catalogue names) and the settings the demo overrides for it. Calling it runs it."""

    name: str
    title: str
    question: str
    run: Callable[[AnalysisConfig], dict]
    demo_order: int = 100
    report_folder: str = ""
    profiles: dict = field(default_factory=dict)
    primary: tuple[str, ...] = ()
    demo_overrides: dict = field(default_factory=dict)

    def __call__(self, cfg: AnalysisConfig) -> dict:
        """Run the analysis; its missing runs are computed on ``cfg``'s engine."""
        from ..executors import using

        with using(cfg.executor()):
            return self.run(cfg)

    @property
    def folder(self) -> str:
        """The report folder (the name unless set)."""
        return self.report_folder or self.name

    def profile(self, name: str):
        """The settings of profile ``name`` (``default`` for a profile the analysis does not define)."""
        return self.profiles.get(name, self.profiles.get("default"))


def register_analysis(analysis: Analysis) -> Analysis:
    """Register ``analysis`` under its name (for analyses that are not installed as entry points)."""
    return ANALYSES.register(analysis.name, analysis)


def get_analysis(name: str) -> Analysis:
    """The analysis registered as ``name`` (an entry point, a registered one, or ``module:attr``)."""
    obj = ANALYSES.get(name)
    if isinstance(obj, Analysis):
        return obj
    if callable(obj):  # a bare run function given as module:attr
        return Analysis(name=name, title=name, question="", run=obj)
    raise TypeError(f"analysis '{name}' is {type(obj).__name__}, not an Analysis")


def all_analyses() -> list[Analysis]:
    """Every installed or registered analysis, in demo order."""
    return sorted((get_analysis(n) for n in ANALYSES.names()), key=lambda a: (a.demo_order, a.name))
