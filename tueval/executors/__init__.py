"""Where the runs of a grid are computed: a local process pool (``local``, the default) or a Ray cluster
(``ray``, ``pip install tueval[ray]``), behind one interface (``Executor.run``) and one registry.

``tueval.sweep.run_grid`` and ``require_runs`` take an engine name or an Executor; without one they use the
executor of the analysis being run (``using``; ``Analysis`` sets it from ``AnalysisConfig.engine``), else the
local pool. Every executor computes each run with ``tueval.unlearn.unlearn`` into the same run store: finished
runs are skipped, a run being computed elsewhere is waited for (the run's lock), a killed run resumes from its
last checkpoint, and failures come back as ``Failure`` rows (``RunsFailedError`` lists them at the end).
"""
from __future__ import annotations

from typing import Any

from ..config.checks import FieldError, name
from .base import (EXECUTORS, Executor, Failure, RunsFailedError, compute, current_executor, failure_table,
                   make_executor, using)


def _local(**settings: Any) -> Executor:
    from .local import LocalExecutor

    return LocalExecutor(workers=settings.get("workers"))


def _ray(**settings: Any) -> Executor:
    from .ray import RayExecutor

    return RayExecutor(address=settings.get("address"), resources=settings.get("resources"),
                       workers=settings.get("workers"))


EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)


def engine_name(field: str, v: Any) -> str:
    """The rule of an ``engine`` setting or flag: the name of a registered executor (``local``, ``ray``, or a
    plugin's)."""
    n = name(field, v)
    if n not in EXECUTORS.names():
        raise FieldError(field, f"must be one of {', '.join(EXECUTORS.names())}; got {v!r}")
    return n


__all__ = ["EXECUTORS", "Executor", "Failure", "RunsFailedError", "compute", "current_executor", "engine_name",
           "failure_table", "make_executor", "using"]
