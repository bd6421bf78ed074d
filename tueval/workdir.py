"""The prepared workdir: benchmark, tokenizer, target and retain models, ground truths, evaluations."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from .errors import DataError, TuevalError

DEFAULT_WORKDIR = Path("work")


@dataclass(frozen=True)
class Profile:
    """Everything ``prepare`` needs: benchmark size, tokenizer, model recipe, training, ground-truth threshold."""

    name: str = "default"
    benchmark: dict = field(default_factory=dict)  # BenchmarkConfig fields
    vocab_size: int = 1024
    model: dict = field(default_factory=dict)  # TinyModelConfig fields
    train: dict = field(default_factory=dict)  # TrainConfig fields
    forget_split: str = "forget10"
    cf_threshold: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    # 1-epoch warm-up, cosine decay over 10 epochs, stop at 96% fact-token accuracy checked every epoch from epoch 8:
    # about epoch 9 (a constant rate needed 18 epochs for the same accuracy; benchmarks/README.md)
    "default": Profile(name="default", train={"stop_fact_acc": 0.96, "schedule": "cosine", "warmup_epochs": 1,
                                              "decay_epochs": 10, "min_epochs": 8, "eval_every": 1, "eval_from": 8}),
    # the test profile, on the same schedule: stop at 97% checked every epoch from epoch 10 (about epoch 11)
    "small": Profile(name="small", benchmark={"profile": "small"},
                     train={"batch_size": 16, "max_epochs": 80, "stop_fact_acc": 0.97, "schedule": "cosine",
                            "warmup_epochs": 1, "decay_epochs": 12, "min_epochs": 10, "eval_every": 1,
                            "eval_from": 10}),
}


def get_profile(name: str) -> Profile:
    """A named profile (``default``: 200 people; ``small``: the test profile)."""
    if name not in PROFILES:
        raise TuevalError(f"unknown profile '{name}'; valid: {', '.join(PROFILES)}")
    return PROFILES[name]


class Workdir:
    """Read access to a prepared workdir (see ``tueval prepare``)."""

    def __init__(self, root: str | Path = DEFAULT_WORKDIR):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "prepare.json"

    @cached_property
    def manifest(self) -> dict:
        """The parsed ``prepare.json``; a missing or damaged one raises TuevalError saying to run prepare."""
        from .io import read_json

        if not self.manifest_path.exists():
            raise TuevalError(f"{self.root} is not a prepared workdir (no prepare.json): run "
                              f"`tueval prepare --workdir {self.root}` first")
        try:
            m = read_json(self.manifest_path)
        except DataError as e:
            raise TuevalError(f"{self.manifest_path} is damaged ({e.message}): {self._redo}") from None
        if not (isinstance(m, dict) and isinstance(m.get("paths"), dict)):
            raise TuevalError(f"{self.manifest_path} is damaged (not a prepare manifest): {self._redo}")
        return m

    @property
    def _redo(self) -> str:
        return f"re-run `tueval prepare --workdir {self.root}` (with the profile it was prepared with)"

    def path(self, key: str) -> Path:
        """The path of a prepared artefact named in the manifest (benchmark, tokenizer, target, retain,
        ground_truth); raises TuevalError if the manifest does not name it or it is gone."""
        rel = self.manifest["paths"].get(key)
        if not isinstance(rel, str):
            raise TuevalError(f"{self.manifest_path} names no '{key}': {self._redo}")
        p = self.root / rel
        if not p.exists():
            raise TuevalError(f"{p} is missing (the {key} of this workdir): {self._redo}")
        return p

    # ---- the benchmark source (a workdir prepared from a config names one; the embedded default is synthetic)
    @property
    def _source_entry(self) -> dict:
        s = self.manifest.get("source")
        return s if isinstance(s, dict) else {}

    @property
    def is_config(self) -> bool:
        """Was this workdir prepared from a config (a user's benchmark and models)?"""
        return bool(self._source_entry)

    @cached_property
    def source(self):
        """The benchmark source (``tueval.data.sources``) of this workdir."""
        from .data.sources import get_source

        return get_source(self._source_entry.get("name", "synthetic"))

    @property
    def evaluator(self):
        """The source's metric function (None: TOFU's metrics, ``tueval.evaluate``)."""
        return self.source.evaluator()

    @property
    def forget_split(self) -> str:
        return self._source_entry.get("forget") or self.manifest["profile"]["forget_split"]

    @property
    def retain_split(self) -> str:
        return self._source_entry.get("retain") or self.retain_split_for(self.forget_split)

    def retain_split_for(self, forget_split: str) -> str:
        """The retain split that complements ``forget_split`` (``forgetNN`` -> ``retain{100-NN}``)."""
        if forget_split == self.forget_split and self._source_entry.get("retain"):
            return self._source_entry["retain"]
        return "retain" + f"{100 - int(forget_split.replace('forget', '')):02d}"

    @property
    def holdout_split(self) -> str | None:
        """The never-trained split the MIA compares the forget split with (None: the source has none)."""
        if self.is_config:
            return self._source_entry.get("holdout")
        return "holdout" + self.forget_split.replace("forget", "")

    @property
    def ground_truths(self) -> tuple[str, ...]:
        """The ground truths of the forget split: ``spans`` where the data is annotated, ``counterfactual``."""
        return tuple(self._source_entry.get("ground_truths") or ("spans", "counterfactual"))

    # ---- runtime: device, dtype, evaluation batch size, prompt format
    @property
    def runtime(self) -> dict:
        r = self.manifest.get("runtime")
        return r if isinstance(r, dict) else {}

    @property
    def device(self) -> str:
        return self.runtime.get("device", "cpu")

    @property
    def dtype(self) -> str:
        return self.runtime.get("dtype", "float32")

    @property
    def eval_batch_size(self) -> int:
        return int(self.runtime.get("eval_batch_size", 256))

    @property
    def max_new_tokens(self) -> int:
        """Greedy generation length of the workdir's own evaluations (target, retain): the config's, else TOFU's
        200; an unlearning run uses its spec's ``max_new_tokens``."""
        from .evaluation.generation import DEFAULT_MAX_NEW_TOKENS

        return int(self.runtime.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))

    @cached_property
    def prompt_format(self):
        """The workdir's ``PromptFormat`` (prompt template or chat template, special-token policy)."""
        from .data.format import DEFAULT_FORMAT, PromptFormat

        p = self.manifest.get("prompt")
        return PromptFormat.from_dict(p) if isinstance(p, dict) else DEFAULT_FORMAT

    def load_model(self, which: str, device: str | None = None):
        """``(model, tokenizer)`` for ``target`` or ``retain`` (or a model folder path), on the workdir's device
        and dtype unless ``device`` is given: a fresh copy of the model (yours to train) and the process's shared
        tokenizer (read-only), carrying the workdir's prompt format. Models are loaded once per process and file
        state (``model_cache``), so every run of a worker process, whatever the executor, reuses them."""
        p = self.path(which) if which in ("target", "retain") else Path(which)
        from .data.format import set_format

        model, tok = model_cache.load(p, device or self.device, self.dtype)
        if self.runtime.get("gradient_checkpointing") and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable()
        return model, set_format(tok, self.prompt_format) if self.is_config else tok

    @cached_property
    def benchmark(self):
        """The workdir's benchmark (loaded once per process and folder state)."""
        from .data.sources import load_benchmark

        p = self.path("benchmark")
        return _memo(("benchmark", _file_state(p)), lambda: load_benchmark(p))

    def collated(self, split: str, tokenizer, special_tokens: str = "auto"):
        """The examples of ``split`` collated on their answers (``tueval.data.collate.collate``), built once per
        process, benchmark state, tokenizer and special-token policy: treat the Batch as read-only."""
        from .data.collate import collate
        from .evaluation.encoding import memo_for

        key = ("collate", _file_state(self.path("benchmark")), split, special_tokens)
        memo = memo_for(tokenizer)
        if key not in memo:
            memo[key] = collate(self.benchmark.split(split), tokenizer, special_tokens=special_tokens)
        return memo[key]

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        from .data.format import set_format

        p = self.path("tokenizer")
        if not self.is_config:
            return _memo(("tokenizer", _file_state(p)), lambda: PreTrainedTokenizerFast.from_pretrained(p))

        def load():
            tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            return set_format(tok, self.prompt_format)

        return _memo(("tokenizer", _file_state(p), repr(self.prompt_format)), load)

    def ground_truth_table(self):
        """Per-token table of both ground truths on the forget split (see data/counterfactual.py)."""
        import pandas as pd

        return pd.read_parquet(self.path("ground_truth"))

    def eval_dir(self, name: str) -> Path:
        return self.root / "eval" / name


# ---------------------------------------------------------------------------------------------------------------
def _file_state(path: Path) -> tuple:
    """What identifies the contents of a file or folder cheaply: its resolved path and each file's size and
    modification time (a re-prepared or overwritten artefact gets a new state)."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    return (str(path), tuple((f.name, st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()]))


_MEMO: dict = {}
MEMO_SIZE = 8


def _memo(key, make):
    """``make()`` once per process and key (read-only objects shared by every run of the process; the
    ``MEMO_SIZE`` most recently used are kept)."""
    value = _MEMO.pop(key) if key in _MEMO else make()
    _MEMO[key] = value
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    return value


class ModelCache:
    """Models loaded once per process: ``load`` returns a deep copy of the cached model (so a run may train it)
    and the shared tokenizer. At most ``size`` models are kept (least recently used dropped);
    ``TUEVAL_MODEL_CACHE=0`` turns the cache off."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: dict = {}

    def load(self, path: Path, device: str = "cpu", dtype: str = "float32"):
        """``(a fresh copy of the model, the shared tokenizer)`` of the model at ``path`` on ``device``/``dtype``."""
        import copy
        import os

        from .models.load import load_model

        if os.environ.get("TUEVAL_MODEL_CACHE", "1") == "0":
            return load_model(path, device=device, dtype=dtype)
        key = (_file_state(path), str(device), str(dtype))
        hit = self._items.pop(key, None)
        if hit is None:
            hit = load_model(path, device=device, dtype=dtype)
        self._items[key] = hit  # most recently used last
        while len(self._items) > self.size:
            self._items.pop(next(iter(self._items)))
        model, tok = hit
        return copy.deepcopy(model), tok

    def clear(self) -> None:
        self._items.clear()


model_cache = ModelCache()
