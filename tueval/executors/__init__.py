"""Where the runs of a grid are computed: a local process pool (``local``, the default) or a Ray cluster
(``ray``, ``pip install tueval[ray]``), behind one interface (``Executor.run``) and one registry.

``tueval.sweep.run_grid`` and ``require_runs`` take an engine name or an Executor; without one they use the
executor of the analysis being run (``using``; ``Analysis`` sets it from ``AnalysisConfig.engine``), else the
local pool. Every executor computes each run with ``tueval.unlearn.unlearn`` into the same run store: finished
runs are skipped, a run being computed elsewhere is waited for (the run's lock), a killed run resumes from its
last checkpoint, and failures come back as ``Failure`` rows (``RunsFailedError`` lists them at the end).
"""
from .base import (EXECUTORS, Executor, Failure, RunsFailedError, compute, current_executor, failure_table,
                   make_executor, using)

__all__ = ["EXECUTORS", "Executor", "Failure", "RunsFailedError", "compute", "current_executor", "failure_table",
           "make_executor", "using"]
