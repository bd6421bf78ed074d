"""The executor interface, its registry, the function every worker runs, and the failure report."""
from __future__ import annotations

import contextlib
import contextvars
import traceback
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..errors import TuevalError
from ..registry import Registry

EXECUTORS: Registry = Registry("engine", "tueval.executors")
#: how often a run whose worker died is started again (each start resumes from the run's last checkpoint)
RETRIES = 3


@dataclass(frozen=True)
class Failure:
    """A run that did not finish: its spec, the error (one line) and how many times it was started."""

    spec: Any
    error: str
    attempts: int = 1


class RunsFailedError(TuevalError):
    """Some runs of a grid failed; the message is a table of their specs and errors (the others finished)."""

    def __init__(self, failures: Sequence[Failure], total: int):
        self.failures = list(failures)
        super().__init__(f"{len(self.failures)} of {total} runs failed (the others are in the run store):\n"
                         f"{failure_table(self.failures)}")


def failure_table(failures: Sequence[Failure]) -> str:
    """The failed specs as a text table: label, seed, lr, attempts, error."""
    import pandas as pd

    rows = [{"run": f.spec.label(), "seed": f.spec.seed, "lr": f"{f.spec.lr:g}", "attempts": f.attempts,
             "error": f.error if len(f.error) <= 160 else f.error[:157] + "..."} for f in failures]
    return pd.DataFrame(rows).to_string(index=False)


class Executor:
    """Computes run specs into a workdir's run store. Subclasses set ``name`` and implement ``run``; after a
    ``run``, ``counts`` says how many runs it computed, found finished by another process meanwhile (it waited
    for that run's lock), and how many failed."""

    name: str = ""
    counts: dict

    def _count(self, out: dict) -> None:
        counts = self.__dict__.setdefault("counts", {"computed": 0, "cached": 0, "failed": 0})
        counts["failed" if not out["ok"] else "cached" if out.get("cached") else "computed"] += 1

    def run(self, specs: Sequence, wd, progress: bool = True) -> list[Failure]:
        """Compute every spec (the caller passes the unfinished ones); return the ones that failed."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line naming the executor and its settings (for progress bars and logs)."""
        return self.name


def one_line(e: BaseException) -> str:
    """``Type: message`` on one line."""
    return " ".join(f"{type(e).__name__}: {e}".split())


def compute(spec_dict: dict, root: str, threads: int = 1) -> dict:
    """Run one spec in this process (the body of every worker): ``{"ok": True, "run_id": ...}``, or ``{"ok":
    False, "error": ...}`` for an exception of the run (not retried: it would fail again). A worker that dies
    (killed, out of memory) returns nothing; its executor starts the run again."""
    import torch

    from ..spec import RunSpec
    from ..unlearn import unlearn
    from ..workdir import Workdir

    torch.set_num_threads(max(1, int(threads)))
    try:
        res = unlearn(RunSpec.from_dict(spec_dict), Workdir(root), progress=False)
    except Exception as e:  # noqa: BLE001 - reported in the failure table, the other runs go on
        tb = traceback.extract_tb(e.__traceback__)
        where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb and not isinstance(
            e, TuevalError) else ""
        return {"ok": False, "error": one_line(e) + where}
    return {"ok": True, "run_id": res.run_id, "cached": res.cached}


def make_executor(engine: str = "local", **settings: Any) -> Executor:
    """The executor ``engine`` (a registered name) built with ``settings`` (``workers``, ``address``,
    ``resources``; each executor ignores the ones it does not use)."""
    factory = EXECUTORS.get(engine)
    return factory(**settings)


_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("tueval_executor", default=None)


def current_executor() -> Executor | None:
    """The executor set by the innermost ``using`` (None outside one)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(executor: Executor | None) -> Iterator[Executor | None]:
    """Make ``executor`` the one that ``run_grid``/``require_runs`` use when they are given none."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)
