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
