"""Running lm-eval offline on a saved model folder (safetensors only) or an in-memory model."""
from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...data.tofu import quiet_datasets
from ...errors import SpecError, TuevalError
from .tasks import DEFAULT_TASKS, FORGET_TASK

OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def lm_eval_cli_command(model_dir: str | Path, task_dir: str | Path | None, tasks: Sequence[str] | str = (FORGET_TASK,),
                        batch_size: int = 32, device: str = "cpu", limit: int | float | None = None,
                        output_path: str | Path | None = None, executable: str = "lm_eval") -> str:
    """The ``lm_eval`` shell command that runs exported ``tasks`` on a saved model offline, as run_lmeval does."""
    tasks = _task_list(tasks)
    env = " ".join(f"{k}={v}" for k, v in OFFLINE_ENV.items())
    args = [executable, "--model", "hf", "--model_args",
            f"pretrained={Path(model_dir).resolve()},dtype=float32,add_bos_token=True,use_safetensors=True",
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


def check_lmeval_model_dir(path: str | Path) -> Path:
    """The model folder lm-eval may load: a local folder with safetensors weights (lm-eval's loader would also
    unpickle ``pytorch_model.bin``, which can run code); else ModelLoadError."""
    from ...models.load import check_safe_model_dir

    return check_safe_model_dir(path)


def _hflm(model_or_dir, tokenizer, batch_size: int, device: str):
    """An lm-eval HFLM over a saved folder or an in-memory model, scoring with one BOS as training does."""
    from lm_eval.models.huggingface import HFLM

    if isinstance(model_or_dir, (str, Path)):
        p = check_lmeval_model_dir(model_or_dir)
        return HFLM(pretrained=str(p.resolve()), dtype="float32", add_bos_token=True, batch_size=batch_size,
                    device=device, trust_remote_code=False, use_safetensors=True)
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


_BAR_MODULES = ("lm_eval.evaluator", "lm_eval.api.model", "lm_eval.api.task", "lm_eval.api.metrics",
                "lm_eval.models.huggingface")


@contextlib.contextmanager
def _quiet_lm_eval(quiet: bool, progress: bool = False):
    """For the block: lm-eval's, datasets' and transformers' log level at ERROR (``quiet``), lm-eval's and
    datasets' progress bars off (unless ``progress``); lm-eval's git look-up never writes to the terminal."""
    import sys

    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets", "transformers")] if quiet else []
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    import importlib

    for name in _BAR_MODULES:  # imported now, so that their tqdm is patched before they run
        importlib.import_module(name)
    patched = [(sys.modules["lm_eval.evaluator"], "get_git_commit_hash", _git_commit_hash)]
    if not progress:
        import tqdm

        silent = _silent_tqdm(tqdm.tqdm)
        # the modules that imported the class, and the package itself (for lm-eval's function-level imports)
        patched += [(m, "tqdm", silent) for name, m in list(sys.modules.items())
                    if name.startswith("lm_eval") and getattr(m, "tqdm", None) is tqdm.tqdm] + [(tqdm, "tqdm", silent)]
    saved = [(m, a, getattr(m, a)) for m, a, _ in patched]
    for m, a, v in patched:
        setattr(m, a, v)
    try:
        with quiet_datasets() if not progress else contextlib.nullcontext():
            yield
    finally:
        for m, a, v in reversed(saved):
            setattr(m, a, v)
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _silent_tqdm(base):
    """A tqdm class whose bars are always disabled."""
    class Silent(base):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _git_commit_hash() -> str | None:
    """lm-eval's provenance look-up (``git describe``) with git's complaints kept off the terminal."""
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def simple_evaluate_offline(model_or_dir, tokenizer=None, tasks: Sequence[str] | str = DEFAULT_TASKS,
                            include_path: str | Path | None = None, batch_size: int = 32,
                            limit: int | float | None = None, device: str = "cpu", log_samples: bool = False,
                            quiet: bool = True, progress: bool = False) -> dict:
    """lm-eval's raw ``simple_evaluate`` result, offline; dataset or task problems become SpecError."""
    import lm_eval

    if isinstance(model_or_dir, (str, Path)):
        check_lmeval_model_dir(model_or_dir)  # before anything else: a refused folder costs nothing
    names = _task_list(tasks)
    tm = _resolve_task_manager(names, include_path)
    was_training = getattr(model_or_dir, "training", None)
    if was_training:
        model_or_dir.eval()
    try:
        with offline(), _quiet_lm_eval(quiet, progress), _cached_env_info():
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
               device: str = "cpu", quiet: bool = True, progress: bool = False) -> dict[str, dict]:
    """Run lm-eval offline on a model folder or an in-memory model; ``{task: {acc, acc_stderr, acc_norm, ...}}``."""
    return flatten_results(simple_evaluate_offline(model_or_dir, tokenizer, tasks, include_path, batch_size, limit,
                                                   device, log_samples=False, quiet=quiet, progress=progress))
