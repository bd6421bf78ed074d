"""Loading of TOFU-format QA files (JSON, JSON lines, Parquet) into validated Examples, and of IDK refusals."""
from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ..errors import DataError
from ..io import read_text
from .schema import Example, Span

SUFFIXES = (".json", ".jsonl", ".parquet")
REQUIRED = ("question", "answer")
SPAN_KEYS = ("start", "end", "label")
T = TypeVar("T")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def data_files(path: str | Path, split_name: str | None = None) -> list[Path]:
    """The data files at ``path``: the file itself, or a folder's ``*.json|jsonl|parquet`` (``{split_name}.*``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file or folder: {p}")
    if p.is_file():
        if p.suffix.lower() not in SUFFIXES:
            raise DataError(str(p), None, None, f"unsupported file type '{p.suffix}'; expected one of {SUFFIXES}")
        return [p]
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES
                   and (split_name is None or f.stem == split_name))
    if not files:
        what = f"'{split_name}.*' " if split_name else ""
        raise DataError(str(p), None, None, f"no {what}data file ({', '.join(SUFFIXES)}) in this folder")
    return files


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence datasets' progress bars and error logging for the duration of one load."""
    import datasets

    bars = datasets.utils.logging.is_progress_bar_enabled()
    level = datasets.utils.logging.get_verbosity()
    datasets.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        datasets.utils.logging.set_verbosity(level)
        if bars:
            datasets.utils.logging.enable_progress_bar()


def _parse_json_records(file: Path, text: str | None = None) -> list[dict]:
    """Parse a JSON array or JSON-lines file with the standard library, naming the row and line at fault."""
    text = read_text(file) if text is None else text
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(str(file), None, None, f"invalid JSON array (line {e.lineno}): {e.msg}") from None
        for i, r in enumerate(rows, start=1):
            if not isinstance(r, dict):
                raise _NotAnObject(str(file), i, None, f"expected a JSON object, got {_json_kind(r)}")
        return rows
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(str(file), len(rows) + 1, None, f"invalid JSON on line {line_no}: {e.msg}") from None
        if not isinstance(r, dict):
            raise _NotAnObject(str(file), len(rows) + 1, None, f"line {line_no}: expected a JSON object, got "
                                                              f"{_json_kind(r)}")
        rows.append(r)
    return rows


class _NotAnObject(DataError):
    """A JSON row that parses but is not an object (``null``, a number, an array)."""


def _json_kind(v: Any) -> str:
    """A JSON value's kind in words (``null``, ``an array``, ``a number``, ...)."""
    if v is None:
        return "null"
    return {bool: "a boolean", list: "an array", str: "a string"}.get(type(v), "a number")


def read_records(file: str | Path) -> list[dict]:
    """The rows of one JSON / JSON-lines / Parquet file as dicts.

    JSON lines and JSON arrays are parsed with the standard library (errors name the row and line); other JSON
    layouts (columns of lists) and Parquet are read through ``datasets`` (offline, temp cache)."""
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    kind = "parquet" if file.suffix.lower() == ".parquet" else "json"
    if kind == "json":
        text = read_text(file)
        if not text.strip():
            return []
        try:
            return _parse_json_records(file, text)
        except _NotAnObject:
            raise
        except DataError:
            pass  # not JSON lines or an array: a layout only ``datasets`` reads (columns of lists)
    import datasets

    try:
        with quiet_datasets(), tempfile.TemporaryDirectory(prefix="tueval-ds-") as cache:
            ds = datasets.load_dataset(kind, data_files=str(file), split="train", cache_dir=cache)
            rows = ds.to_list()
    except Exception as e:  # noqa: BLE001 - fall back to a parser that can name the failing row
        if kind == "parquet":
            raise DataError(str(file), None, None, f"cannot read Parquet: {type(e).__name__}: {e}") from e
        rows = _parse_json_records(file)
    if not isinstance(rows, list):
        raise DataError(str(file), None, None, "expected JSON lines or a JSON array of objects")
    for i, r in enumerate(rows, start=1):
        if not isinstance(r, dict):
            raise DataError(str(file), i, None, f"expected a JSON object, got {_json_kind(r)}")
    return rows


def load_validated(file: str | Path, validate: Callable[[dict, int], T]) -> list[T]:
    """Read ``file`` and validate every row (1-based) before anything is built from it.

    Rows that ``datasets`` read have column types unified across rows (an int beside a float becomes a float), so
    when a row fails, the JSON is re-parsed with the standard library and validated again: the error then names
    the row that is really at fault, and rows that were only spoiled by the unification load as written."""
    file = Path(file)
    rows = read_records(file)
    try:
        return [validate(r, i) for i, r in enumerate(rows, start=1)]
    except DataError:
        if file.suffix.lower() == ".parquet":
            raise
        raw = _parse_json_records(file)
        return [validate(r, i) for i, r in enumerate(raw, start=1)]


def _check_text(file: str, row: int, rec: dict, name: str, required: bool, nonempty: bool = True) -> str | None:
    v = rec.get(name)
    if v is None:
        if required:
            raise DataError(file, row, name, "missing required field (expected a non-empty string)")
        return None
    if not isinstance(v, str):
        raise DataError(file, row, name, f"expected a string, got {type(v).__name__}")
    if nonempty and not v.strip():
        raise DataError(file, row, name, "must not be empty")
    return v


def _check_spans(file: str, row: int, field_name: str, value: Any, text: str) -> list[Span]:
    """Validate a list of ``{start, end, label[, shared]}`` against ``text``; return Spans."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(file, row, field_name, f"expected a list of {{start, end, label}}, got {type(value).__name__}")
    out = []
    for j, s in enumerate(value):
        if not isinstance(s, dict):
            raise DataError(file, row, field_name, f"span {j}: expected an object, got {type(s).__name__}")
        for k in SPAN_KEYS:
            if s.get(k) is None:
                raise DataError(file, row, field_name, f"span {j}: missing '{k}'")
        if not (_is_int(s["start"]) and _is_int(s["end"])):
            raise DataError(file, row, field_name, f"span {j}: start and end must be integers")
        if not isinstance(s["label"], str) or not s["label"]:
            raise DataError(file, row, field_name, f"span {j}: label must be a non-empty string")
        shared = s.get("shared")
        if shared is not None and not isinstance(shared, bool):
            raise DataError(file, row, field_name, f"span {j}: shared must be true or false")
        start, end = s["start"], s["end"]
        if start < 0 or end > len(text) or start >= end:
            raise DataError(file, row, field_name, f"span {j} [{start}, {end}) lies outside its answer "
                                                   f"(0 <= start < end <= {len(text)})")
        out.append(Span(start, end, s["label"], bool(shared)))
    order = sorted(range(len(out)), key=lambda j: (out[j].start, out[j].end))
    for a, b in zip(order, order[1:]):
        if out[b].start < out[a].end:
            raise DataError(file, row, field_name, f"span {b} [{out[b].start}, {out[b].end}) overlaps span {a} "
                                                   f"[{out[a].start}, {out[a].end}): fact spans must be disjoint")
    return out


def validate_row(rec: dict, file: str, row: int, default_id: str, default_split: str,
                 require_question: bool = True) -> Example:
    """Validate one TOFU-format record and build its Example (raises DataError naming file, row and field).
    ``require_question=False`` admits raw-text rows (an empty question: a corpus chunk)."""
    question = (_check_text(file, row, rec, "question", required=True) if require_question
                else _check_text(file, row, rec, "question", required=False, nonempty=False) or "")
    answer = _check_text(file, row, rec, "answer", required=True)
    para = _check_text(file, row, rec, "paraphrased_answer", required=False, nonempty=False) or ""
    pkey = "perturbed_answer" if rec.get("perturbed_answer") is not None else "perturbed_answers"
    perturbed = rec.get(pkey)
    if perturbed is None:
        perturbed = []
    if not isinstance(perturbed, list) or not all(isinstance(p, str) for p in perturbed):
        raise DataError(file, row, pkey, "expected a list of strings")
    if any(not p.strip() for p in perturbed):
        raise DataError(file, row, pkey, "perturbed answers must not be empty")
    ex_id = rec.get("id")
    if ex_id is None:
        ex_id = default_id
    elif not (isinstance(ex_id, str) or _is_int(ex_id)) or str(ex_id) == "":
        raise DataError(file, row, "id", "expected a non-empty string or an integer")
    subject = rec.get("subject")
    if subject is None:
        subject = ""
    elif not isinstance(subject, str):
        raise DataError(file, row, "subject", f"expected a string, got {type(subject).__name__}")
    split = rec.get("split")
    if split is None or split == "":
        split = default_split
    elif not isinstance(split, str):
        raise DataError(file, row, "split", f"expected a string, got {type(split).__name__}")
    spans = _check_spans(file, row, "spans", rec.get("spans"), answer)
    p_spans_raw = rec.get("paraphrased_spans")
    if p_spans_raw and not para:
        raise DataError(file, row, "paraphrased_spans", "spans given without a paraphrased_answer")
    p_spans = _check_spans(file, row, "paraphrased_spans", p_spans_raw, para)
    pert_raw = rec.get("perturbed_spans")
    pert_spans: list[list[Span]] = []
    if pert_raw:
        if not isinstance(pert_raw, list) or len(pert_raw) != len(perturbed):
            raise DataError(file, row, "perturbed_spans",
                            f"expected a list of {len(perturbed)} span lists, one per perturbed answer")
        pert_spans = [_check_spans(file, row, "perturbed_spans", sp, text) for sp, text in zip(pert_raw, perturbed)]
    return Example(id=str(ex_id), subject=subject, question=question, answer=answer, paraphrased_answer=para,
                   perturbed_answers=list(perturbed), spans=spans, split=split, paraphrased_spans=p_spans,
                   perturbed_spans=pert_spans)


def load_tofu_file(file: str | Path, split_name: str | None = None, require_question: bool = True
                   ) -> list[Example]:
    """Validate every row of one TOFU-format file, then build its Examples (ids unique within the file)."""
    file = Path(file)
    examples = load_validated(file, lambda r, i: validate_row(r, str(file), i, f"{file.stem}_{i}",
                                                              split_name or file.stem, require_question))
    seen: dict[str, int] = {}
    for i, ex in enumerate(examples, start=1):
        if ex.id in seen:
            raise DataError(str(file), i, "id", f"duplicate id '{ex.id}' (first used in row {seen[ex.id]})")
        seen[ex.id] = i
    return examples


def load_tofu(path: str | Path, split_name: str | None = None) -> list[Example]:
    """Load TOFU-format rows from a file or a folder (every data file in sorted order, or ``{split_name}.*``).

    Ids must be unique across the files of a folder, as within one file."""
    out: list[Example] = []
    first: dict[str, str] = {}
    for f in data_files(path, split_name):
        examples = load_tofu_file(f, split_name)
        check_unique_ids(f, [e.id for e in examples], first)
        out.extend(examples)
    return out


def check_unique_ids(file: str | Path, ids: list[str], first: dict[str, str]) -> None:
    """Raise DataError if an id of ``file`` was seen in an earlier file; record ``file`` as the first holder."""
    for i, ex_id in enumerate(ids, start=1):
        if ex_id in first:
            raise DataError(str(file), i, "id", f"duplicate id '{ex_id}' (already used in {first[ex_id]})")
    first.update(dict.fromkeys(ids, str(file)))


def load_idk(path: str | Path) -> list[str]:
    """The refusal answers of an ``idontknow.jsonl`` file: one per non-blank line (plain text or JSON strings)."""
    file = Path(path)
    if file.is_dir():
        raise DataError(str(file), None, None, "is a directory; expected an idontknow.jsonl file")
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    out: list[str] = []
    for line_no, line in enumerate(read_text(file).splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s[0] in "\"{":
            try:
                v = json.loads(s)
            except json.JSONDecodeError:
                v = s  # a plain sentence that merely starts with a quote
            if isinstance(v, dict):
                v = next((v[k] for k in ("answer", "text", "response") if isinstance(v.get(k), str)), None)
                if v is None:
                    raise DataError(str(file), line_no, "answer", "expected an 'answer' or 'text' string")
            s = v.strip() if isinstance(v, str) else s
        if not s:
            raise DataError(str(file), line_no, None, "empty refusal")
        out.append(s)
    if not out:
        raise DataError(str(file), None, None, "no refusal answers in this file")
    return out
