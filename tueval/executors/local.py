"""``local``: runs over a pool of spawned processes on this machine, one torch thread each."""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from tqdm.auto import tqdm

from .base import RETRIES, Executor, Failure, compute, one_line


def default_workers() -> int:
    """min(cores, 2): the worker count when none is given."""
    return max(1, min(os.cpu_count() or 1, 2))


class LocalExecutor(Executor):
    """A process pool of ``workers`` (default min(cores, 2)); with one worker the runs go in this process. A run
    whose worker process dies is started again in a fresh pool (up to ``retries`` times) and resumes from its
    last checkpoint."""

    name = "local"

    def __init__(self, workers: int | None = None, retries: int = RETRIES):
        self.workers = workers or default_workers()
        self.retries = retries

    def describe(self) -> str:
        return f"local, {self.workers} worker{'s' if self.workers != 1 else ''}"

    def run(self, specs: Sequence, wd, progress: bool = True) -> list[Failure]:
        """Compute ``specs`` (see ``Executor.run``)."""
        root = str(wd.root.resolve())
        bar = tqdm(total=len(specs), desc=f"unlearning runs ({self.describe()})", disable=not progress)
        failures: list[Failure] = []

        self.counts = {"computed": 0, "cached": 0, "failed": 0}

        def done(i: int, out: dict, attempts: int) -> None:
            self._count(out)
            if not out["ok"]:
                failures.append(Failure(specs[i], out["error"], attempts))
            bar.update(1)

        try:
            if self.workers == 1:
                for i, s in enumerate(specs):
                    done(i, compute(s.to_dict(), root), 1)
            else:
                self._pool(specs, root, done)
        finally:
            bar.close()
        return failures

    def _pool(self, specs: Sequence, root: str, done) -> None:
        attempts = [0] * len(specs)
        pending = list(range(len(specs)))
        while pending:
            died: list[int] = []
            queue = list(pending)
            with ProcessPoolExecutor(min(self.workers, len(queue)), mp_context=mp.get_context("spawn")) as ex:
                running: dict = {}
                while queue or running:
                    # at most `workers` in flight: a dying worker breaks the pool for the runs in flight only
                    while queue and len(running) < self.workers:
                        i = queue.pop(0)
                        attempts[i] += 1
                        running[ex.submit(compute, specs[i].to_dict(), root)] = i
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for f in finished:
                        i = running.pop(f)
                        try:
                            done(i, f.result(), attempts[i])
                        except BrokenProcessPool:
                            died.append(i)
                        except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be sent back
                            done(i, {"ok": False, "error": one_line(e)}, attempts[i])
                    if died:  # the pool is broken: what is still queued waits for the fresh pool
                        died += queue + list(running.values())
                        break
            pending = []
            for i in dict.fromkeys(died):
                if attempts[i] > self.retries:
                    done(i, {"ok": False, "error": f"the worker process died {attempts[i]} times (killed, or out of "
                                                   "memory?)"}, attempts[i])
                else:
                    pending.append(i)
