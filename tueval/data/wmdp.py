"""Loading of WMDP-format multiple-choice rows (question, choices, answer index) from JSON, JSON lines or Parquet."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from .tofu import _is_int, check_unique_ids, data_files, load_validated


@dataclass
class MCRow:
    """One multiple-choice question: ``choices[answer]`` is the correct one."""

    id: str
    question: str
    choices: list[str]
    answer: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _answer_index(file: str, row: int, value: Any, n_choices: int) -> int:
    if value is None:
        raise DataError(file, row, "answer", "missing required field (expected an index or a letter A..D)")
    if isinstance(value, str):
        letter = value.strip().upper()
        if len(letter) != 1 or not ("A" <= letter <= "Z"):
            raise DataError(file, row, "answer", f"expected an integer index or a letter, got '{value}'")
        idx = ord(letter) - ord("A")
    elif _is_int(value):
        idx = value
    else:
        raise DataError(file, row, "answer", f"expected an integer index or a letter, got {type(value).__name__}")
    if not 0 <= idx < n_choices:
        raise DataError(file, row, "answer", f"answer {value!r} out of range for {n_choices} choices")
    return idx


def validate_mc_row(rec: dict, file: str, row: int, default_id: str) -> MCRow:
    """Validate one WMDP-format record (raises DataError naming file, row and field)."""
    q = rec.get("question")
    if q is None:
        raise DataError(file, row, "question", "missing required field (expected a non-empty string)")
    if not isinstance(q, str):
        raise DataError(file, row, "question", f"expected a string, got {type(q).__name__}")
    if not q.strip():
        raise DataError(file, row, "question", "must not be empty")
    ch = rec.get("choices")
    if ch is None:
        raise DataError(file, row, "choices", "missing required field (expected a list of >= 2 strings)")
    if not isinstance(ch, list) or not all(isinstance(c, str) for c in ch):
        raise DataError(file, row, "choices", "expected a list of strings")
    if len(ch) < 2:
        raise DataError(file, row, "choices", f"expected at least 2 choices, got {len(ch)}")
    ans = _answer_index(file, row, rec.get("answer"), len(ch))
    rid = rec.get("id")
    if rid is None:
        rid = default_id
    elif not (isinstance(rid, str) or _is_int(rid)) or str(rid) == "":
        raise DataError(file, row, "id", "expected a non-empty string or an integer")
    return MCRow(id=str(rid), question=q, choices=list(ch), answer=ans)


def load_wmdp(path: str | Path, split_name: str | None = None) -> list[MCRow]:
    """Load and validate WMDP-format rows from a file or a folder (every data file in sorted order; ids unique)."""
    out: list[MCRow] = []
    first: dict[str, str] = {}
    for f in data_files(path, split_name):
        rows = load_validated(f, lambda r, i, f=f: validate_mc_row(r, str(f), i, f"{f.stem}_{i}"))
        seen: dict[str, int] = {}
        for i, r in enumerate(rows, start=1):
            if r.id in seen:
                raise DataError(str(f), i, "id", f"duplicate id '{r.id}' (first used in row {seen[r.id]})")
            seen[r.id] = i
        check_unique_ids(f, [r.id for r in rows], first)
        out.extend(rows)
    return out
