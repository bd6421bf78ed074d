"""Benchmark sources: each turns files (or a generator) into Examples and declares its evaluation sets and metrics.

Built in: ``synthetic`` (the embedded generator), ``tofu``, ``muse`` and ``wmdp``. A new format is one file: a
``BenchmarkSource`` subclass registered with ``@SOURCES.register("name")``, installed under the entry-point group
``tueval.sources``, or named ``module:Class`` in a workdir config.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ...errors import DataError, SpecError
from ...io import read_json
from ..benchmark import Benchmark
from ...registry import Registry
from .base import BenchmarkSource, SourceSettings, chunk_words, find_split_file, raw_examples  # noqa: F401

SOURCES: Registry = Registry("benchmark source", entry_point_group="tueval.sources")
BUILTIN = ("synthetic", "tofu", "muse", "wmdp")


def _load_builtins() -> None:
    for name in BUILTIN:
        importlib.import_module(f"{__name__}.{name}")


def get_source(name: str) -> BenchmarkSource:
    """The source named ``name`` (a registered name, an installed plugin or ``module:Class``), as an instance."""
    _load_builtins()
    obj = SOURCES.get(name)
    if isinstance(obj, type) and issubclass(obj, BenchmarkSource):
        obj = obj()
    if not isinstance(obj, BenchmarkSource):
        raise SpecError(f"benchmark source '{name}' is {type(obj).__name__}, not a BenchmarkSource")
    return obj


def source_names() -> list[str]:
    """Every available source name."""
    _load_builtins()
    return SOURCES.names()


def load_benchmark(path: str | os.PathLike) -> Benchmark:
    """Load a folder written by ``write_benchmark``, through the source that wrote it (``config.json``'s
    ``source``; none: the synthetic benchmark), validating every split."""
    d = Path(path)
    cfg_file = d / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{d} is not a benchmark folder (no config.json)")
    raw = read_json(cfg_file)
    if not isinstance(raw, dict):
        raise DataError(str(cfg_file), None, None, "expected a JSON object of benchmark settings")
    source = raw.get("source", "synthetic")
    if not isinstance(source, str):
        raise DataError(str(cfg_file), None, "source", "expected the name of a benchmark source")
    return get_source(source).load_prepared(d, raw)
