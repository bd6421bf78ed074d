"""Stable hashes of specs (sorted JSON, sha256), used to name cached models and runs."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .io import _json_default


def canonical_json(obj: Any) -> str:
    """Sorted, compact JSON of ``obj`` (dataclasses become dicts)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def spec_hash(obj: Any, length: int = 12) -> str:
    """A short sha256 of ``canonical_json(obj)``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def source_digest(obj: Any) -> str:
    """sha256 of the source that defines ``obj``: its whole module file when there is one (so an edit to a helper
    in the same file counts), else ``inspect.getsource(obj)``; ``unavailable`` when Python cannot find either."""
    import inspect
    import sys

    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    for target in (module, obj):
        if target is None:
            continue
        try:
            path = inspect.getsourcefile(target)
            if path:
                with open(path, "rb") as f:
                    return hashlib.sha256(f.read()).hexdigest()
        except (TypeError, OSError):
            pass
        try:
            return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()
        except (TypeError, OSError):
            continue
    return "unavailable"
