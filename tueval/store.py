"""The run store: one folder per run, ``WORKDIR/runs/<run id>/``, and everything that reads or writes it.

Layout: ``spec.json`` (resolved spec, run id, label, provenance), ``checkpoint.safetensors`` (while training),
``snapshots/step-NNNNN.safetensors``, ``log.parquet``, ``eval/*.parquet``, ``scorer_state.safetensors``
(stateful scorers), ``model/`` (with ``save_model``), ``summary.json`` and, last, ``done.json``. A run is finished
only when ``done.json``, ``summary.json`` and ``spec.json`` are all there; anything less is unfinished and
resumes from its checkpoint or restarts. Every file is written atomically. State files are safetensors with
JSON metadata (``tueval.tensorfile``): nothing in a run folder is ever unpickled, and a pickle found where a
state file belongs is refused without being opened. One OS file lock per run (``runs/.locks/<id>.lock``,
released when its process dies; a lease file with ``TUEVAL_LOCK=lease``, ``tueval.locks``) makes one run compute
once: a second process waits, then reads the result.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .errors import TuevalError, WriteError
from .io import as_write_error, write_json, write_parquet, writing
from .tensorfile import StateFileError, load_state, save_state

SPEC, SUMMARY, DONE, LOG, EVAL = "spec.json", "summary.json", "done.json", "log.parquet", "eval"
CHECKPOINT, SCORER_STATE, SNAPSHOTS = "checkpoint.safetensors", "scorer_state.safetensors", "snapshots"
#: pickle files a run folder may hold in place of a state file: refused, never opened (a pickle can run code)
PICKLES = {CHECKPOINT: "checkpoint.pt", SCORER_STATE: "scorer_state.pt"}


class RunStoreError(TuevalError):
    """A run folder that cannot be read or written: names the file, the reason and what to do."""


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run and its files."""

    path: Path

    @classmethod
    def of(cls, root: str | os.PathLike, run_id: str) -> "RunFolder":
        """The folder of ``run_id`` in the workdir ``root``."""
        return cls(Path(root) / "runs" / run_id)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def lock_path(self) -> Path:
        return self.path.parent / ".locks" / f"{self.run_id}.lock"

    # ---- reading ------------------------------------------------------------------------------------------
    def is_finished(self) -> bool:
        """Whether the run completed: ``done.json`` (written last), ``summary.json`` and ``spec.json`` exist."""
        return all((self.path / f).is_file() for f in (DONE, SUMMARY, SPEC))

    def read_json(self, name: str) -> dict:
        """A JSON file of the run (RunStoreError naming it when missing or unreadable)."""
        p = self.path / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunStoreError(f"cannot read {p}: {_one_line(e)}; delete the run folder {self.path} to "
                                "recompute the run") from e

    def summary(self) -> dict:
        return self.read_json(SUMMARY)

    def spec_record(self) -> dict:
        """``spec.json``: the resolved spec the run id hashes, plus run id, label and provenance."""
        return self.read_json(SPEC)

    # ---- locking ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, progress: bool = True) -> Iterator[None]:
        """Hold this run's lock; waits (saying so when ``progress``) while another process holds it."""
        from filelock import Timeout

        from .locks import run_lock

        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock = run_lock(self.lock_path)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if progress:
                    print(f"run {self.run_id}: another process is computing it; waiting for it to finish",
                          file=sys.stderr, flush=True)
                lock.acquire()
        except OSError as e:
            raise (as_write_error(self.lock_path, e) or WriteError(self.lock_path, e.strerror or str(e))) from e
        try:
            yield
        finally:
            lock.release()

    # ---- writing ------------------------------------------------------------------------------------------
    def start(self, record: dict) -> None:
        """Open the folder for computing (the caller holds the lock): drop a stale ``done.json`` and temp files
        of killed writes, and write ``spec.json``."""
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / DONE).unlink(missing_ok=True)
            for tmp in self.path.rglob(".*.tmp"):
                if tmp.is_file():
                    tmp.unlink()
        write_json(self.path / SPEC, record)

    def write_tables(self, tables: dict[str, pd.DataFrame]) -> None:
        """``eval/<name>.parquet`` for each table."""
        for name, t in tables.items():
            write_parquet(self.path / EVAL / f"{name}.parquet", t.reset_index(drop=True))

    def write_log(self, rows: list[dict]) -> None:
        """``log.parquet``: one row per step."""
        write_parquet(self.path / LOG, pd.DataFrame(rows))

    def finish(self, summary: dict, steps: int) -> None:
        """Write ``summary.json``, then ``done.json`` (the run is finished from here on); drop the checkpoint."""
        write_json(self.path / SUMMARY, summary)
        write_json(self.path / DONE, {"run_id": self.run_id, "steps": steps})
        (self.path / CHECKPOINT).unlink(missing_ok=True)

    # ---- state files --------------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        """The training state (model, optimiser, RNG states, step, log rows, scorer state)."""
        save_state(self.path / CHECKPOINT, state)

    def load_checkpoint(self) -> dict | None:
        """The saved training state, or None when the run has none; a checkpoint that does not load is refused
        (never silently restarted), and so is a pickle checkpoint (never opened)."""
        refuse_pickle(self.path / PICKLES[CHECKPOINT], self.path)
        p = self.path / CHECKPOINT
        if not p.exists():
            return None
        return _load_or_refuse(p, self.path, "checkpoint")

    def snapshot_path(self, step: int) -> Path:
        return self.path / SNAPSHOTS / f"step-{step:05d}.safetensors"

    def save_snapshot(self, step: int, model) -> None:
        """The model's weights after ``step`` steps."""
        save_state(self.snapshot_path(step), model.state_dict())

    def load_snapshot(self, step: int) -> dict | None:
        """The weights saved after ``step`` steps (None when there is no snapshot; a ``.pt`` pickle is refused)."""
        p = self.snapshot_path(step)
        refuse_pickle(p.with_suffix(".pt"), self.path)
        return _load_or_refuse(p, self.path, "snapshot") if p.exists() else None

    def save_scorer_state(self, state: dict) -> None:
        """The learned state of a stateful scorer at the end of the run."""
        save_state(self.path / SCORER_STATE, state)


def refuse_pickle(path: Path, run_dir: Path) -> None:
    """RunStoreError when a pickle is at ``path`` (it is never opened)."""
    if path.exists():
        raise RunStoreError(f"refusing to load {path}: a pickle file (tueval never unpickles files from run "
                            f"folders); delete the run folder {run_dir} to recompute the run")


def _load_or_refuse(path: Path, run_dir: Path, what: str) -> dict:
    try:
        state = load_state(path)
    except StateFileError as e:
        raise RunStoreError(f"refusing the {what} {path}: {str(e).split(': ', 1)[-1]}; delete the run folder "
                            f"{run_dir} to recompute the run") from e
    if not isinstance(state, dict):
        raise RunStoreError(f"refusing the {what} {path}: it does not hold a dict; delete the run folder "
                            f"{run_dir} to recompute the run")
    return state


def load_scorer_state(path: str | os.PathLike) -> dict:
    """The learned scorer state of a finished run: ``path`` is its run folder or its state file. A
    ``scorer_state.pt`` pickle is refused without being opened."""
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    file = path / SCORER_STATE if path.is_dir() else path
    if file.suffix == ".pt" or not file.exists():
        refuse_pickle(file if file.suffix == ".pt" else run_dir / PICKLES[SCORER_STATE], run_dir)
    if not file.exists():
        raise RunStoreError(f"run {run_dir.name} has no {SCORER_STATE} in {run_dir} (its scorer is not stateful, "
                            "or the run is not finished)")
    return _load_or_refuse(file, run_dir, "scorer state")
