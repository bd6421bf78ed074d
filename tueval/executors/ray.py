"""``ray``: each run is a Ray task reserving the configured resources, on a local or an existing Ray cluster.

Every worker must see the workdir at the same path as the driver (a shared file system) and have tueval
installed; the run store's lock keeps one run from being computed twice, and a task whose worker dies is
started again by Ray (``max_retries``) and resumes from the run's last checkpoint. Needs ``pip install
'tueval[ray]'``; nothing here is imported until a ray executor runs.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from ..errors import SpecError, TuevalError
from .base import RETRIES, Executor, Failure, compute, one_line

#: environment variables handed to the workers (tueval's own settings, e.g. TUEVAL_LOCK)
ENV_PREFIX = "TUEVAL_"
#: the raylet setting of the niceness of the worker processes it starts (Ray's default: 15)
NICENESS_ENV = "RAY_worker_niceness"
_REMOTE: dict = {}


def import_ray():
    """The ``ray`` module, or a TuevalError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise TuevalError(f"engine 'ray' needs Ray ({e.msg}); install it with pip install 'tueval[ray]'") from None
    return ray


def _task(spec_dict: dict, root: str, threads: int) -> dict:
    return compute(spec_dict, root, threads)


class RayExecutor(Executor):
    """Runs as Ray tasks. ``address``: the cluster (None: ``RAY_ADDRESS`` if set, else a local cluster started
    here; an already connected Ray session is used as it is); ``resources``: what each run reserves (``cpus``
    default 1, also its torch threads; ``gpus`` default 0; ``memory`` in bytes; ``custom``: Ray custom
    resources); ``workers``: at most this many runs in flight (None: as many as the cluster schedules)."""

    name = "ray"

    def __init__(self, address: str | None = None, resources: Mapping[str, Any] | None = None,
                 workers: int | None = None, retries: int = RETRIES):
        self.address, self.workers, self.retries = address, workers, retries
        self.resources = dict(resources or {})

    def describe(self) -> str:
        r = self.resources
        return f"ray, {r.get('cpus', 1):g} cpu{', ' + format(r['gpus'], 'g') + ' gpu' if r.get('gpus') else ''}/run"

    def options(self) -> dict:
        """The Ray task options of one run."""
        r = self.resources
        opts = {"num_cpus": float(r.get("cpus", 1)), "num_gpus": float(r.get("gpus", 0)),
                "max_retries": self.retries, "retry_exceptions": False}
        if r.get("memory"):
            opts["memory"] = int(r["memory"])
        if r.get("custom"):
            opts["resources"] = dict(r["custom"])
        return opts

    def connect(self):
        """Ray, connected: the session already open, else ``ray.init(address)`` (a local cluster without one)."""
        ray = import_ray()
        if not ray.is_initialized():
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                # Ray starts its workers at nice 15; a local cluster's runs get the local pool's priority instead,
                # or they lose the cores to any other job on the machine
                os.environ.setdefault(NICENESS_ENV, "0")
            env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None)
            self._started_here = self.address is None and not os.environ.get("RAY_ADDRESS")
        return ray

    def _check_fits(self, ray) -> None:
        """Refuse per-run resources no node of the cluster has (a local cluster never grows; Ray would wait)."""
        total = ray.cluster_resources()
        opts = self.options()
        need = {"CPU": opts["num_cpus"], "GPU": opts["num_gpus"], **opts.get("resources", {})}
        short = [f"{k} {v:g} (cluster: {total.get(k, 0):g})" for k, v in need.items() if v > total.get(k, 0)]
        if short:
            msg = f"resources: one run asks for {', '.join(short)}"
            if getattr(self, "_started_here", False):
                raise SpecError(f"{msg}; the local Ray cluster cannot schedule it")
            print(f"tueval: warning: {msg}; the runs wait until the cluster has it", file=sys.stderr)

    def run(self, specs: Sequence, wd, progress: bool = True) -> list[Failure]:
        """Compute ``specs`` (see ``Executor.run``)."""
        ray = self.connect()
        self._check_fits(ray)
        if "task" not in _REMOTE:
            _REMOTE["task"] = ray.remote(_task)
        task = _REMOTE["task"].options(**self.options())
        root, threads = str(wd.root.resolve()), max(1, int(self.resources.get("cpus", 1)))
        failures: list[Failure] = []
        self.counts = {"computed": 0, "cached": 0, "failed": 0}
        queue, running = list(specs), {}
        bar = tqdm(total=len(specs), desc=f"unlearning runs ({self.describe()})", disable=not progress)
        try:
            while queue or running:
                while queue and (self.workers is None or len(running) < self.workers):
                    s = queue.pop(0)
                    running[task.remote(s.to_dict(), root, threads)] = s
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    s = running.pop(ref)
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the worker died more often than it is retried
                        out = {"ok": False, "error": one_line(getattr(e, "cause", None) or e),
                               "attempts": self.retries + 1}
                    self._count(out)
                    if not out["ok"]:
                        failures.append(Failure(s, out["error"], out.get("attempts", 1)))
                    bar.update(1)
        finally:
            bar.close()
            for ref in running:  # interrupted: stop what is still running (its runs resume later)
                ray.cancel(ref, force=True)
        return failures
