"""Runs that cannot differ share one computation.

A ``random_k`` or ``random_k_fixed`` control of a hard selection keeps ceil(r n) tokens of each answer, with
weight 1, at positions drawn from the run's own random stream: whatever the scores are, the count and the value
are the same. With a static scorer (scored once, on the frozen reference) that draws no randomness, nothing else
of the scorer reaches the training, so two such runs that differ only in their scorer train and evaluate to the
same numbers (the oracle's and TokenUnlearn's ``random_k`` controls, say). The second is filled from the first
(its own ``spec.json``; ``same_training_as`` in its record and summary) instead of training again.

``training_key`` is the hash of the resolved spec without the scorer, for the runs where that is so, else None;
``runs/.trained/<key>.json`` names the finished run that computed it."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

from .errors import DataError
from .hashing import spec_hash
from .io import atomic_path, read_json, write_json
from .store import CHECKPOINT, DONE, SPEC, SUMMARY, RunFolder

SCORE_FREE_CONTROLS = ("random_k", "random_k_fixed")
"""Controls whose weights under a hard selection take nothing from the scores but their count ceil(r n)."""
ENABLED = True
"""Whether runs share a computation (False: every run trains)."""


def training_key(resolved: dict, scorer) -> str | None:
    """The hash of what the run ``resolved`` computes, without its scorer, when the scorer cannot reach the
    training (see module doc); None otherwise."""
    w = resolved["weighting"]
    if not ENABLED or w.get("control") not in SCORE_FREE_CONTROLS or w.get("mode") != "hard":
        return None
    if not scorer.static or scorer.stateful or getattr(scorer, "draws_randomness", True) \
            or "code" in resolved["scorer"]:  # a plugin scorer: its code is not ours to vouch for
        return None
    spec = {k: v for k, v in resolved["spec"].items() if k not in ("scorer", "scorer_params")}
    rest = {k: v for k, v in resolved.items() if k not in ("scorer", "spec") and not k.startswith("_")}
    return spec_hash({**rest, "spec": spec, "shared_training": 1}, 16)


def _trained(root: Path) -> Path:
    return Path(root) / "runs" / ".trained"


def _index(root: Path, key: str) -> Path:
    return _trained(root) / f"{key}.json"


@contextlib.contextmanager
def training_lock(root: Path, key: str | None, progress: bool = True) -> Iterator[None]:
    """Hold the lock of ``key`` (nothing when None): runs of one key compute one at a time, so the second finds
    the first's result. Always taken after the run's own lock."""
    if key is None:
        yield
        return
    with RunFolder(_trained(root) / key).lock(progress=progress):
        yield


def source(root: Path, key: str | None) -> RunFolder | None:
    """The finished run that computed ``key``, if any."""
    if key is None or not _index(root, key).is_file():
        return None
    try:
        rid = read_json(_index(root, key))["run_id"]
    except (OSError, DataError, KeyError, TypeError):
        return None  # an unreadable index entry only costs a computation
    src = RunFolder.of(root, rid)
    return src if src.is_finished() else None


def register(root: Path, key: str | None, run_id: str) -> None:
    """Record that the finished run ``run_id`` computed ``key``."""
    if key is not None:
        write_json(_index(root, key), {"run_id": run_id})


def fill_from(folder: RunFolder, src: RunFolder, record: dict, label: str) -> dict:
    """Fill the unfinished ``folder`` with the results of ``src`` (every file but its spec, summary, done marker
    and checkpoint), its own ``record`` as ``spec.json``; finish it and return its summary."""
    folder.start({**record, "same_training_as": src.run_id})
    for p in sorted(src.path.rglob("*")):
        rel = p.relative_to(src.path)
        if p.is_file() and rel.name not in (SPEC, SUMMARY, DONE, CHECKPOINT) and not rel.name.startswith("."):
            with atomic_path(folder.path / rel) as tmp:
                shutil.copyfile(p, tmp)
    summary = {**src.summary(), "label": label, "same_training_as": src.run_id}
    folder.finish(summary, int(src.read_json(DONE)["steps"]))
    return summary
