"""The lm-eval bridge: offline multiple-choice tasks from the benchmark or WMDP-format rows, run with lm-eval.

Three tasks are exported for a benchmark (``export_tasks``), each a YAML plus a local JSON-lines file
(absolute paths, nothing from the hub): ``tueval_forget_mc`` (the forget people's facts),
``tueval_retain_mc`` (as many retain rows as forget rows, a fixed seeded subset) and ``tueval_utility_mc``
(real_authors + world_facts). A row is WMDP-shaped, ``{id, question, choices, answer}``: the gold answer and
three same-kind distractors (the example's perturbed answers), shuffled with a seeded RNG. lm-eval scores each
choice as the continuation ``" " + choice`` of the context ``"Question: {question}\\nAnswer:"`` (our training
format) and reports ``acc`` (argmax of summed log-likelihood) and ``acc_norm`` (per byte).

BOS: our tokenizer adds ``<s>`` itself and training encodes the prompt with ``add_special_tokens=True``.
lm-eval 0.4.13's HFLM encodes with the tokenizer's default unless ``add_bos_token`` is set, in which case it
passes ``add_special_tokens=add_bos_token``; we pass ``add_bos_token=True`` so lm-eval encodes exactly as
training does (one ``<s>``; tests/test_lmeval.py checks the per-choice log-likelihoods to 1e-4).

The same evaluation with the lm-eval command line, offline, on a saved model and an exported task folder
(``lm_eval_cli_command`` returns it)::

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 lm_eval --model hf \\
        --model_args pretrained=MODEL_DIR,dtype=float32,add_bos_token=True \\
        --tasks tueval_forget_mc --include_path TASK_DIR --device cpu --batch_size 32

Python::

    export_tasks("work/lmeval/tasks", Workdir("work").benchmark)
    run_lmeval("work/models/target", tasks=["tueval_forget_mc"], include_path="work/lmeval/tasks")
    run_lmeval(model, tokenizer, tasks=["tueval_forget_mc"], include_path=...)   # in memory, no save
    evaluate_workdir_mc("work", "target")                                       # export + run + store
"""
from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import re
import shlex
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.format import PROMPT_TEMPLATE
from ..data.schema import Example
from ..errors import DataError, SpecError, TuevalError
from ..io import write_json, write_text

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
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


# ----------------------------------------------------------------------------------------------- rows
def mc_rows(examples: Sequence[Example], n_choices: int = 4, seed: int = 0) -> list[dict]:
    """WMDP-style rows ``{id, question, choices, answer}``: the gold answer + same-kind distractors in the answer's
    own wording (``tueval.data.perturb.answer_distractors``), shuffled per row by seed."""
    from ..data.perturb import answer_distractors

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
    from ..data.wmdp import load_wmdp

    rows = [{"id": str(r.id), "question": r.question, "choices": list(r.choices), "answer": int(r.answer)}
            for r in load_wmdp(path)]
    return write_task(out_dir, task_name, rows, style=style)


def lm_eval_cli_command(model_dir: str | Path, task_dir: str | Path | None, tasks: Sequence[str] | str = (FORGET_TASK,),
                        batch_size: int = 32, device: str = "cpu", limit: int | float | None = None,
                        output_path: str | Path | None = None, executable: str = "lm_eval") -> str:
    """The ``lm_eval`` shell command that runs exported ``tasks`` on a saved model offline, as run_lmeval does."""
    tasks = _task_list(tasks)
    env = " ".join(f"{k}={v}" for k, v in OFFLINE_ENV.items())
    args = [executable, "--model", "hf", "--model_args",
            f"pretrained={Path(model_dir).resolve()},dtype=float32,add_bos_token=True",
            "--tasks", ",".join(tasks)]
    if task_dir is not None:
        args += ["--include_path", str(Path(task_dir).resolve())]
    args += ["--device", device, "--batch_size", str(batch_size)]
    if limit is not None:
        args += ["--limit", str(limit)]
    if output_path is not None:
        args += ["--output_path", str(Path(output_path).resolve())]
    return env + " " + " ".join(shlex.quote(a) for a in args)


# --------------------------------------------------------------------------------------------- running
@contextlib.contextmanager
def offline():
    """Force the HF hub, datasets and transformers offline for the block (env vars and loaded constants)."""
    saved_env = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    patched = []
    for mod_name, attrs in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                            ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        try:
            mod = __import__(mod_name, fromlist=["_"])
        except ImportError:
            continue
        for a in attrs:
            if hasattr(mod, a):
                patched.append((mod, a, getattr(mod, a)))
                setattr(mod, a, True)
    try:
        yield
    finally:
        for mod, a, v in reversed(patched):
            setattr(mod, a, v)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_TM_CACHE: dict[tuple, Any] = {}


def _include_key(include_path: Sequence[Path]) -> tuple:
    """Which YAMLs the include folders hold, with mtimes (a changed folder rebuilds its TaskManager)."""
    files = []
    for p in include_path:
        p = Path(p)
        ys = [p] if p.is_file() else sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml"))
        files += [(str(y), y.stat().st_mtime_ns) for y in ys if y.exists()]
    return tuple(files)


def task_manager(include_path: str | Path | Sequence[str | Path] | None = None, include_defaults: bool = True):
    """An lm-eval TaskManager, cached per process (indexing the built-in tasks takes seconds)."""
    from lm_eval.tasks import TaskManager

    paths = [] if include_path is None else [Path(include_path)] if isinstance(include_path, (str, Path)) else \
        [Path(p) for p in include_path]
    for p in paths:
        if not p.exists():
            raise SpecError(f"lm-eval include_path {p}: does not exist (export tasks with `tueval lmeval --export`)")
    key = (tuple(str(p.resolve()) for p in paths), include_defaults, _include_key(paths))
    if key not in _TM_CACHE:
        _TM_CACHE[key] = TaskManager(include_path=[str(p) for p in paths] or None, include_defaults=include_defaults)
    return _TM_CACHE[key]


def _task_list(tasks: Sequence[str] | str) -> list[str]:
    """Task names from a list or a comma-separated string."""
    items = [tasks] if isinstance(tasks, str) else list(tasks)
    out = [t.strip() for s in items for t in str(s).split(",") if t.strip()]
    if not out:
        raise SpecError("no lm-eval tasks given")
    return out


def _resolve_task_manager(tasks: list[str], include_path):
    """The cheapest TaskManager that knows every task: include_path alone, else include_path + built-ins."""
    if include_path is not None:
        tm = task_manager(include_path, include_defaults=False)
        if all(t in tm.all_tasks for t in tasks):
            return tm
    tm = task_manager(include_path, include_defaults=True)
    unknown = [t for t in tasks if t not in tm.all_tasks]
    if unknown:
        hints = {t: difflib.get_close_matches(t, tm.all_tasks, n=3) for t in unknown}
        msg = "; ".join(f"'{t}'" + (f" (did you mean {', '.join(h)}?)" if h else "") for t, h in hints.items())
        where = f" or in {include_path}" if include_path is not None else ""
        raise SpecError(f"unknown lm-eval task {msg}: not an installed lm-eval task{where}; export tueval's tasks "
                        "with `tueval lmeval --export DIR` and pass --include-path DIR")
    return tm


def _datasets_of(tm, name: str, depth: int = 0) -> list[str]:
    """The HF dataset ids a task or group reads (from the task index; best effort)."""
    entry = getattr(tm, "_index", {}).get(name)
    if entry is None or depth > 4:
        return []
    cfg = entry.cfg or {}
    if cfg.get("dataset_path"):
        return [str(cfg["dataset_path"])]
    subs = cfg.get("task") if "group" in cfg else None
    subs = subs if isinstance(subs, list) else []
    tagged = [k for k, e in tm._index.items() if name in (e.tags or ())] if not subs else []
    out = []
    for s in subs + tagged:
        out += _datasets_of(tm, s if isinstance(s, str) else s.get("task", ""), depth + 1)
    return sorted(set(out))


_DATASET_ERRORS = ("ConnectionError", "DatasetNotFoundError", "OfflineModeIsEnabled", "FileNotFoundError",
                   "LocalEntryNotFoundError", "EmptyDatasetError", "DataFilesNotFoundError")


def _missing_dataset_error(err: BaseException, tm, tasks: list[str]) -> SpecError | None:
    """A SpecError naming the task and its unavailable dataset, if ``err`` is a dataset-loading failure."""
    chain, e = [], err
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if not any(type(c).__name__ in _DATASET_ERRORS for c in chain):
        return None
    text = " ".join(str(c) for c in chain)
    m = re.search(r"'([^'\s]+/[^'\s]+)'", text)
    needs = {t: _datasets_of(tm, t) for t in tasks}
    ds = m.group(1) if m else None
    culprits = [t for t, d in needs.items() if ds in d] if ds else []
    if not culprits:
        culprits = [t for t, d in needs.items() if d and d != ["json"]] or tasks
    task = culprits[0]
    ds = ds or ", ".join(needs.get(task) or ["?"])
    if ds.startswith(("/", ".")) or Path(ds).suffix in (".json", ".jsonl", ".parquet", ".csv"):
        return SpecError(f"lm-eval task '{task}' reads the local file '{ds}', which cannot be read (moved or "
                         "deleted?); export the task again (`tueval lmeval --export DIR`)")
    return SpecError(
        f"lm-eval task '{task}' needs dataset '{ds}', which is not available offline; put it in the HF datasets "
        f"cache (HF_DATASETS_CACHE) or export a local task with `tueval lmeval --from-wmdp FILE --task-name NAME "
        "--export DIR`")


def _hflm(model_or_dir, tokenizer, batch_size: int, device: str):
    """An lm-eval HFLM over a saved folder or an in-memory model, scoring with one BOS as training does."""
    from lm_eval.models.huggingface import HFLM

    if isinstance(model_or_dir, (str, Path)):
        from ..models.load import check_model_dir

        p = Path(model_or_dir)
        check_model_dir(p)
        return HFLM(pretrained=str(p.resolve()), dtype="float32", add_bos_token=True, batch_size=batch_size,
                    device=device, trust_remote_code=False)
    if tokenizer is None:
        raise SpecError("run_lmeval: an in-memory model needs its tokenizer (tokenizer=...)")
    return HFLM(pretrained=model_or_dir, tokenizer=tokenizer, add_bos_token=True, batch_size=batch_size)


_ENV_INFO: list[str] = []


@contextlib.contextmanager
def _cached_env_info():
    """Memoise torch's ``get_pretty_env_info`` (lm-eval calls it per run; it spawns pip and takes seconds)."""
    try:
        import torch.utils.collect_env as ce
    except ImportError:
        yield
        return
    original = ce.get_pretty_env_info

    def cached() -> str:
        if not _ENV_INFO:
            _ENV_INFO.append(original())
        return _ENV_INFO[0]

    ce.get_pretty_env_info = cached
    try:
        yield
    finally:
        ce.get_pretty_env_info = original


@contextlib.contextmanager
def _quiet_lm_eval(quiet: bool):
    """Lower lm-eval's and datasets' log level to ERROR for the block."""
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets", "transformers")] if quiet else []
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def simple_evaluate_offline(model_or_dir, tokenizer=None, tasks: Sequence[str] | str = DEFAULT_TASKS,
                            include_path: str | Path | None = None, batch_size: int = 32,
                            limit: int | float | None = None, device: str = "cpu", log_samples: bool = False,
                            quiet: bool = True) -> dict:
    """lm-eval's raw ``simple_evaluate`` result, offline; dataset or task problems become SpecError."""
    import lm_eval

    names = _task_list(tasks)
    tm = _resolve_task_manager(names, include_path)
    was_training = getattr(model_or_dir, "training", None)
    if was_training:
        model_or_dir.eval()
    try:
        with offline(), _quiet_lm_eval(quiet), _cached_env_info():
            lm = _hflm(model_or_dir, tokenizer, batch_size, device)
            try:
                # seeds None: leave the caller's RNG streams alone (an unlearning run may evaluate mid-run)
                res = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=tm, limit=limit,
                                              log_samples=log_samples, bootstrap_iters=1000, random_seed=None,
                                              numpy_random_seed=None, torch_random_seed=None)
            except TuevalError:
                raise
            except Exception as e:  # noqa: BLE001
                err = _missing_dataset_error(e, tm, names)
                if err is not None:
                    raise err from e
                raise
    finally:
        if was_training:
            model_or_dir.train()
    if res is None:
        raise TuevalError("lm-eval returned no results")
    return res


def flatten_results(res: dict) -> dict[str, dict]:
    """``{task: {acc, acc_stderr, acc_norm, acc_norm_stderr, ..., n}}`` from a simple_evaluate result."""
    out: dict[str, dict] = {}
    n_samples = res.get("n-samples", {})
    for section in ("results", "groups"):
        for task, metrics in (res.get(section) or {}).items():
            row = out.setdefault(task, {})
            for k, v in metrics.items():
                if k in ("alias", "name", "sample_len"):
                    continue
                key = k.split(",")[0]
                row[key] = float(v) if isinstance(v, (int, float)) else None
            if task in n_samples:
                row["n"] = int(n_samples[task].get("effective", n_samples[task].get("original", 0)))
    return out


def run_lmeval(model_or_dir, tokenizer=None, tasks: Sequence[str] | str = DEFAULT_TASKS,
               include_path: str | Path | None = None, batch_size: int = 32, limit: int | float | None = None,
               device: str = "cpu", quiet: bool = True) -> dict[str, dict]:
    """Run lm-eval offline on a model folder or an in-memory model; ``{task: {acc, acc_stderr, acc_norm, ...}}``."""
    return flatten_results(simple_evaluate_offline(model_or_dir, tokenizer, tasks, include_path, batch_size, limit,
                                                   device, log_samples=False, quiet=quiet))


# -------------------------------------------------------------------------------------------- workdir
def workdir_task_dir(workdir) -> Path:
    """Where a workdir's exported tasks live: ``W/lmeval/tasks``."""
    return Path(workdir.root) / "lmeval" / "tasks"


def export_workdir_tasks(workdir, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Export the three MC tasks of a prepared workdir's benchmark (default folder ``W/lmeval/tasks``)."""
    from ..workdir import Workdir

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    return export_tasks(out_dir or workdir_task_dir(wd), wd.benchmark, wd.forget_split, wd.retain_split)


def results_path(workdir, which: str | Path) -> Path:
    """Where ``evaluate_workdir_mc`` stores a model's accuracies: ``W/lmeval/<model-name>/results.json``."""
    return Path(workdir.root if hasattr(workdir, "root") else workdir) / "lmeval" / model_name(which) / "results.json"


def model_name(which: str | Path) -> str:
    """The results folder name of a model: ``target``/``retain`` or the folder's name."""
    s = str(which)
    return s if s in ("target", "retain") else (Path(s).resolve().name or "model")


def evaluate_workdir_mc(workdir, which: str = "target", tasks: Sequence[str] | str = DEFAULT_TASKS,
                        include_path: str | Path | None = None, limit: int | float | None = None,
                        batch_size: int = 32, device: str = "cpu", save: bool = True, reuse: bool = False
                        ) -> dict[str, dict]:
    """Export a workdir's MC tasks and run lm-eval on ``target``/``retain``/a folder; stores W/lmeval/NAME/.
    ``reuse``: return the stored results when they are of the same model folder, tasks and limit."""
    import lm_eval

    from ..workdir import Workdir

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    names = _task_list(tasks)
    if include_path is None and any(t in DEFAULT_TASKS for t in names):
        export_workdir_tasks(wd)
        include_path = workdir_task_dir(wd)
    model_dir = wd.path(which) if str(which) in ("target", "retain") else Path(which)
    stored = results_path(wd, which)
    if reuse and stored.exists():
        old = json.loads(stored.read_text())
        if (old.get("model") == str(Path(model_dir).resolve()) and old.get("tasks") == names
                and old.get("limit") == limit):
            return old["results"]
    results = run_lmeval(model_dir, tasks=names, include_path=include_path, batch_size=batch_size, limit=limit,
                         device=device)
    if save:
        write_json(results_path(wd, which), {"model": str(Path(model_dir).resolve()), "tasks": names, "limit": limit,
                         "include_path": str(Path(include_path).resolve()) if include_path else None,
                         "lm_eval_version": lm_eval.__version__, "results": results,
                         "command": lm_eval_cli_command(model_dir, include_path, names, batch_size, device,
                                                        limit)})
    return results


def format_results(results: dict[str, dict]) -> str:
    """A plain-text table: task, n, acc ± stderr, acc_norm ± stderr."""
    def cell(row, k):
        v, s = row.get(k), row.get(f"{k}_stderr")
        return "-" if v is None else f"{v:.3f}" + (f" ± {s:.3f}" if s is not None else "")

    w = max([4] + [len(t) for t in results])
    lines = [f"{'task':<{w}}  {'n':>5}  {'acc':>15}  {'acc_norm':>15}"]
    for t, row in results.items():
        lines.append(f"{t:<{w}}  {row.get('n', ''):>5}  {cell(row, 'acc'):>15}  {cell(row, 'acc_norm'):>15}")
    return "\n".join(lines)
