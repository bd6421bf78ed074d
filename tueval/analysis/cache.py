"""Cache of an analysis's expensive tables in the workdir, keyed by everything they depend on.

A second ``tueval demo`` (or ``tueval analyze``) reads the cached per-example tables and only redoes the
statistics, the figures and the report. ``WORKDIR/analyses/<name>/<hash>/`` holds one Parquet file per table and
``key.json``; it is written atomically, so a crash leaves no half-written entry. The key holds the analysis name,
its own settings and version, and the identity of the prepared workdir (benchmark, tokenizer, both models)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from ..hashing import canonical_json, spec_hash
from ..io import atomic_dir


def cache_key(workdir, name: str, key: Mapping[str, Any]) -> dict[str, Any]:
    """The full key of an analysis cache entry: the analysis, its settings and the workdir identity."""
    ident = {k: workdir.manifest["paths"][k] for k in ("benchmark", "tokenizer", "target", "retain", "ground_truth")}
    return {"analysis": name, "settings": dict(key), "workdir": ident}


def cache_dir(workdir, name: str, key: Mapping[str, Any]) -> Path:
    """The folder of the cache entry for ``key``."""
    return Path(workdir.root) / "analyses" / name / spec_hash(cache_key(workdir, name, key), 16)


def cached_tables(workdir, name: str, key: Mapping[str, Any], compute: Callable[[], Mapping[str, pd.DataFrame]],
                  use_cache: bool = True) -> dict[str, pd.DataFrame]:
    """``compute()``'s named tables, read from the workdir's analysis cache when ``key`` was computed before."""
    d = cache_dir(workdir, name, key)
    if use_cache and (d / "key.json").exists():
        names = json.loads((d / "key.json").read_text())["tables"]
        return {t: pd.read_parquet(d / f"{t}.parquet") for t in names}
    tables = {k: v.reset_index(drop=True) for k, v in compute().items()}
    with atomic_dir(d) as tmp:
        for t, df in tables.items():
            df.to_parquet(tmp / f"{t}.parquet", index=False)
        (tmp / "key.json").write_text(json.dumps({"key": json.loads(canonical_json(cache_key(workdir, name, key))),
                                                  "tables": list(tables)}, indent=2))
    return tables
