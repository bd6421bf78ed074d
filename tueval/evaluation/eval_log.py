"""Read and write TOFU's ``eval_log_aggregated.json``: per evaluation set, per field, values keyed by example index.

Layout (TOFU legacy ``evaluate_util.py``)::

    {"eval_log.json":                    {field: {"0": value, "1": value, ...}, ...},   # retain set
     "eval_log_forget.json":             {...},                                       # forget split
     "eval_real_author_wo_options.json": {...},                                       # real authors
     "eval_real_world_wo_options.json":  {...}}                                       # world facts

In memory every set is a DataFrame with one row per example: column ``example_id`` (the JSON key, a string) and
one column per field (list-valued fields such as ``average_perturb_loss`` hold Python lists).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import read_text, write_text

SET_KEYS: dict[str, str] = {
    "retain": "eval_log.json",
    "forget": "eval_log_forget.json",
    "real_authors": "eval_real_author_wo_options.json",
    "world_facts": "eval_real_world_wo_options.json",
}
"""Our set names -> TOFU's top-level keys."""
KEY_SETS: dict[str, str] = {v: k for k, v in SET_KEYS.items()}

NUMERIC_FIELDS = (
    "avg_gt_loss", "gt_loss", "num_token_gt", "rouge1_recall", "rougeL_recall", "avg_paraphrased_loss",
    "paraphrased_loss", "num_token_paraphrased", "truth_ratio", "normalized_gt_loss", "prob", "acc", "fact_acc",
)
LIST_FIELDS = ("average_perturb_loss", "perturb_loss", "num_token_perturb")
REQUIRED_FIELDS = ("avg_gt_loss", "avg_paraphrased_loss", "average_perturb_loss", "rougeL_recall")
"""The fields TOFU's aggregation reads (``aggregate_eval_stat.py``); every known set must have them."""
LOSS_FIELDS = ("avg_gt_loss", "gt_loss", "avg_paraphrased_loss", "paraphrased_loss", "normalized_gt_loss",
               "average_perturb_loss", "perturb_loss")
COUNT_FIELDS = ("num_token_gt", "num_token_paraphrased", "num_token_perturb")
FRACTION_FIELDS = ("rouge1_recall", "rougeL_recall", "prob", "acc", "fact_acc")
LOSS_TOLERANCE = 1e-6
"""A negative log-likelihood is >= 0; values below -LOSS_TOLERANCE cannot come from a model."""


def set_key(name: str) -> str:
    """TOFU's top-level key for a set name (unknown names pass through)."""
    return SET_KEYS.get(name, name)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _set_table(file: str, skey: str, fields: Any, required: tuple[str, ...]) -> pd.DataFrame:
    """One set of a parsed log as a validated DataFrame."""
    if not isinstance(fields, dict):
        raise DataError(file, None, skey, f"expected an object mapping field names to per-example values, "
                                          f"got {type(fields).__name__}")
    for f in required:
        if f not in fields:
            raise DataError(file, None, f"{skey}/{f}", "required field is missing")
    if not fields:
        raise DataError(file, None, skey, "set has no fields")
    keys: list[str] | None = None
    cols: dict[str, list[Any]] = {}
    first_field = next(iter(fields))
    if isinstance(fields[first_field], dict) and not fields[first_field]:
        raise DataError(file, None, f"{skey}/{first_field}", "no examples: the set is empty")
    for fname, by_idx in fields.items():
        where = f"{skey}/{fname}"
        if not isinstance(by_idx, dict):
            raise DataError(file, None, where, f"expected an object keyed by example index, "
                                               f"got {type(by_idx).__name__}")
        if keys is None:
            keys = list(by_idx)
        else:
            missing = [k for k in keys if k not in by_idx]
            extra = [k for k in by_idx if k not in fields[first_field]]
            if missing:
                raise DataError(file, missing[0], where, f"example missing here but present in '{first_field}' "
                                                         f"({len(missing)} missing)")
            if extra:
                raise DataError(file, extra[0], where, f"example not present in '{first_field}'")
        vals = [by_idx[k] for k in keys]
        if fname in NUMERIC_FIELDS:
            vals = [_check_number(file, k, where, v) for k, v in zip(keys, vals)]
        elif fname in LIST_FIELDS:
            vals = _check_lists(file, keys, where, vals)
        cols[fname] = vals
    df = pd.DataFrame({"example_id": [str(k) for k in keys or []]})
    for fname, vals in cols.items():
        if fname in NUMERIC_FIELDS:
            arr = np.asarray(vals, dtype=float)
            integral = fname.startswith("num_token") and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
            df[fname] = arr.astype(np.int64) if integral else arr
        else:
            df[fname] = pd.Series(vals, dtype=object, index=df.index)
    return df


def _check_number(file: str, key: str, where: str, v: Any) -> float:
    """A log value as a float: null and NaN are missing values (NaN), others must be in the field's range."""
    if v is None:
        return math.nan
    if not _is_number(v):
        raise DataError(file, key, where, f"expected a number, got {type(v).__name__} {v!r:.40}")
    try:
        x = float(v)
    except OverflowError:
        raise DataError(file, key, where, f"number {str(v)[:12]}... ({len(str(v))} digits) is out of a float's "
                                          "range") from None
    if math.isnan(x):
        return x
    fname = where.rsplit("/", 1)[-1]
    if fname in LOSS_FIELDS:
        if not math.isfinite(x) or x < -LOSS_TOLERANCE:
            raise DataError(file, key, where, f"a loss (negative log-likelihood) must be finite and >= 0, got {x}")
    elif fname in COUNT_FIELDS:
        if not math.isfinite(x) or x < 0:
            raise DataError(file, key, where, f"a token count must be finite and >= 0, got {x}")
    elif fname in FRACTION_FIELDS:
        if not -1e-9 <= x <= 1 + 1e-9:
            raise DataError(file, key, where, f"expected a fraction in [0, 1], got {x}")
    elif fname == "truth_ratio" and x < 0:
        raise DataError(file, key, where, f"a truth ratio is >= 0, got {x}")
    return x


def _check_lists(file: str, keys: list[str], where: str, vals: list[Any]) -> list[list[float]]:
    out, width = [], None
    for k, v in zip(keys, vals):
        if not isinstance(v, list) or not all(_is_number(x) for x in v):
            raise DataError(file, k, where, f"expected a list of numbers, got {v!r:.60}")
        if width is None:
            width = len(v)
        elif len(v) != width:
            raise DataError(file, k, where, f"expected {width} values like the other examples, got {len(v)}")
        if width == 0:
            raise DataError(file, k, where, "empty list: at least one perturbed answer is needed")
        out.append([_check_number(file, k, where, x) for x in v])
    return out


def tables_from_log(obj: Any, file: str = "<memory>",
                    required: tuple[str, ...] = REQUIRED_FIELDS) -> dict[str, pd.DataFrame]:
    """Validate a parsed ``eval_log_aggregated.json`` object into ``{set name: DataFrame}``."""
    if not isinstance(obj, dict):
        raise DataError(file, None, None, f"expected a JSON object with TOFU set keys "
                                          f"({', '.join(SET_KEYS.values())}), got {type(obj).__name__}")
    if not obj:
        raise DataError(file, None, None, "empty eval log: no evaluation sets")
    out = {}
    for skey, fields in obj.items():
        name = KEY_SETS.get(skey, skey)
        out[name] = _set_table(file, skey, fields, required if skey in KEY_SETS else ())
    return out


def read_eval_log(path: str | os.PathLike, required: tuple[str, ...] = REQUIRED_FIELDS) -> dict[str, pd.DataFrame]:
    """Read a TOFU ``eval_log_aggregated.json`` (TOFU's or ours) into ``{set name: DataFrame}``."""
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), None, None, "is a directory; expected an eval_log_aggregated.json file")
    if not path.is_file():
        raise DataError(str(path), None, None, "file not found")
    text = read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(str(path), e.lineno, None, f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") \
            from None
    return tables_from_log(obj, str(path), required)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def log_from_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{set name: DataFrame}`` -> the nested TOFU log object (non-finite numbers become null)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, df in tables.items():
        ids = [str(x) for x in df["example_id"]] if "example_id" in df else [str(i) for i in range(len(df))]
        if len(set(ids)) != len(ids):
            raise DataError(None, None, f"{set_key(name)}/example_id", "example ids are not unique")
        out[set_key(name)] = {
            col: {i: _jsonable(v) for i, v in zip(ids, df[col].tolist())}
            for col in df.columns if col != "example_id"
        }
    return out


def write_eval_log(path: str | os.PathLike, tables: Mapping[str, pd.DataFrame]) -> Path:
    """Write ``{set name: DataFrame}`` atomically as a TOFU ``eval_log_aggregated.json`` (strict JSON)."""
    text = json.dumps(log_from_tables(tables), indent=2, allow_nan=False)
    return write_text(path, text + "\n")
