"""lm-eval multiple-choice tasks: WMDP-shaped rows from Examples, and task folders (YAML + local JSON lines)."""
from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...data.format import PROMPT_TEMPLATE
from ...data.schema import Example
from ...errors import DataError, SpecError, TuevalError
from ...io import write_text

FORGET_TASK = "tueval_forget_mc"
RETAIN_TASK = "tueval_retain_mc"
UTILITY_TASK = "tueval_utility_mc"
DEFAULT_TASKS = (FORGET_TASK, RETAIN_TASK, UTILITY_TASK)
UTILITY_SPLITS = ("real_authors", "world_facts")
DOC_TO_TEXT = PROMPT_TEMPLATE.replace("{question}", "{{question}}")
"""``"Question: {{question}}\\nAnswer:"``: the prompt format as a Jinja template."""
LETTERS_TEXT = ("{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\n"
                "D. {{choices[3]}}\nAnswer:")
"""The official WMDP/MMLU prompt (choices listed, the model picks a letter)."""
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


# ----------------------------------------------------------------------------------------------- rows
def mc_rows(examples: Sequence[Example], n_choices: int = 4, seed: int = 0) -> list[dict]:
    """WMDP-style rows ``{id, question, choices, answer}``: the gold answer + same-kind distractors in the answer's
    own wording (``tueval.data.perturb.answer_distractors``), shuffled per row by seed."""
    from ...data.perturb import answer_distractors

    if n_choices < 2:
        raise SpecError(f"n_choices must be at least 2, got {n_choices}")
    rows = []
    for i, ex in enumerate(examples):
        options = [ex.answer, *answer_distractors(ex)[: n_choices - 1]]
        if len(options) < n_choices:
            raise DataError(None, i, "perturbed_answers",
                            f"example '{ex.id}' has {len(options) - 1} perturbed answers; a {n_choices}-choice "
                            f"row needs {n_choices - 1} distractors")
        if len(set(options)) < n_choices:
            raise DataError(None, i, "perturbed_answers",
                            f"example '{ex.id}': a perturbed answer repeats the answer or another perturbed "
                            "answer, so the multiple-choice row would be ambiguous")
        # one RNG per row, seeded by (seed, id): a row's order does not depend on the other rows
        order = np.random.default_rng([seed, zlib.crc32(str(ex.id).encode())]).permutation(n_choices)
        rows.append({"id": str(ex.id), "question": ex.question, "choices": [options[j] for j in order],
                     "answer": int(np.flatnonzero(order == 0)[0])})
    return rows


def _split(source: Any, name: str) -> list[Example] | None:
    """Examples of split ``name`` from a Benchmark or a mapping; None if it has no such split."""
    try:
        out = source[name] if isinstance(source, Mapping) else source.split(name)
    except (KeyError, ValueError, TuevalError):
        return None
    return list(out) if out is not None else None


def standard_task_examples(source: Any, forget_split: str = "forget10", retain_split: str = "retain90",
                           seed: int = 0) -> dict[str, list[Example]]:
    """The examples of the three standard tasks (a task with no source split is left out)."""
    forget = _split(source, forget_split)
    if not forget:
        raise SpecError(f"benchmark has no examples in forget split '{forget_split}'")
    out = {FORGET_TASK: forget}
    retain = _split(source, retain_split)
    if retain:
        k = min(len(forget), len(retain))
        keep = np.sort(np.random.default_rng(seed).choice(len(retain), size=k, replace=False))
        out[RETAIN_TASK] = [retain[i] for i in keep]
    utility = [e for s in UTILITY_SPLITS for e in (_split(source, s) or [])]
    if utility:
        out[UTILITY_TASK] = utility
    return out


# ---------------------------------------------------------------------------------------------- export
def task_config(task_name: str, data_file: str | Path, style: str = "cloze") -> dict:
    """The lm-eval YAML config (as a dict) of a multiple-choice task over a local JSON-lines file."""
    if style not in ("cloze", "letters"):
        raise SpecError(f"unknown task style '{style}'; valid: cloze, letters")
    return {
        "task": task_name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": DOC_TO_TEXT if style == "cloze" else LETTERS_TEXT,
        "doc_to_choice": "choices" if style == "cloze" else ["A", "B", "C", "D"],
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1},
    }


def _write_if_changed(path: Path, text: str) -> None:
    """Atomic write, skipped when the file already holds ``text`` (keeps mtimes and lm-eval caches valid)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    write_text(path, text)


def write_task(out_dir: str | Path, task_name: str, rows: Sequence[dict], style: str = "cloze") -> Path:
    """Write ``<task>.jsonl`` and ``<task>.yaml`` under ``out_dir``; returns the YAML path."""
    import json

    import yaml

    if not _TASK_NAME.match(task_name):
        raise SpecError(f"invalid task name '{task_name}': use letters, digits, '_', '-' and '.'")
    if not rows:
        raise SpecError(f"task '{task_name}' has no rows")
    if style == "letters" and any(len(r["choices"]) != 4 for r in rows):
        raise SpecError(f"task '{task_name}': the 'letters' style needs exactly 4 choices per row")
    out_dir = Path(out_dir).resolve()
    data = out_dir / f"{task_name}.jsonl"
    _write_if_changed(data, "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    yml = out_dir / f"{task_name}.yaml"
    _write_if_changed(yml, yaml.safe_dump(task_config(task_name, data, style), sort_keys=False, allow_unicode=True))
    return yml


def export_tasks(out_dir: str | Path, source: Any, forget_split: str = "forget10", retain_split: str = "retain90",
                 n_choices: int = 4, seed: int = 0) -> dict[str, Path]:
    """Write the forget/retain/utility MC tasks of a Benchmark (or ``{split: examples}``) to ``out_dir``."""
    written = {}
    for name, exs in standard_task_examples(source, forget_split, retain_split, seed).items():
        written[name] = write_task(out_dir, name, mc_rows(exs, n_choices=n_choices, seed=seed))
    return written


def wmdp_task_from_rows(path: str | Path, task_name: str, out_dir: str | Path, style: str = "cloze") -> Path:
    """An lm-eval task from a local WMDP-format file (JSON/JSONL/Parquet: question, choices, answer)."""
    from ...data.wmdp import load_wmdp

    rows = [{"id": str(r.id), "question": r.question, "choices": list(r.choices), "answer": int(r.answer)}
            for r in load_wmdp(path)]
    return write_task(out_dir, task_name, rows, style=style)
