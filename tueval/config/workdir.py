"""``WorkdirConfig``: the file of ``tueval prepare --config FILE``, a workdir from a user's benchmark and models.

A YAML mapping; only ``benchmark`` and ``models`` are required::

    benchmark:
      source: tofu            # tofu | muse | wmdp | synthetic (or module:Class)
      path: data/tofu         # the folder of the source's files (relative to this file)
      forget: forget10
      retain: retain90
      # holdout, utility, annotations, retain_eval_n and the source's own keys (e.g. wmdp: tasks)
    models:
      target: models/full     # a local HF folder (safetensors) or a .gguf file
      retain: models/retain90
      # or base: MODEL with finetune: {...}: train both from a base model (tueval finetune)
    prompt: {template: "Question: {question}\\nAnswer:", chat: false, system: null, answer_prefix: " "}
    special_tokens: exclude   # exclude | include: EOS/end-of-turn/chat markup in selection and scoring
    device: auto              # auto | cpu | cuda | mps (auto: cuda, else mps, else cpu)
    dtype: float32            # float32 | bfloat16
    eval: {batch_size: null, max_new_tokens: 200}      # null: a default for the device; 200: TOFU's
    ground_truth: {threshold: 1.0}                     # nats of the counterfactual ground truth
    memory: {gradient_checkpointing: false}

Every key is checked when the file is read: an unknown or missing key, or a value that breaks its rule, is one
line naming the file, the line and the key. Paths are relative to the config file's folder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpecError
from . import checks
from .checks import FieldError
from .yamlfile import read_yaml, where

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16")
POLICIES = ("exclude", "include")
#: evaluation batch size by device when the config gives none (the tiny CPU models evaluate as they always have)
EVAL_BATCH = {"cpu": 256, "cuda": 32, "mps": 16}  # cpu: the embedded default's, so that both give the same rows


@dataclass(frozen=True)
class FinetuneSettings:
    """The finetuning recipe (TOFU's: AdamW, lr 1e-5, weight decay 0.01, 1 warm-up epoch, 5 epochs)."""

    epochs: int = 5
    lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 4
    seed: int = 0
    max_length: int | None = 256
    gradient_checkpointing: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelSettings:
    """The target and retain models (paths), or a base model to finetune both from."""

    target: Path | None = None
    retain: Path | None = None
    base: Path | None = None
    finetune: FinetuneSettings | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class PromptSettings:
    """The prompt format (``tueval.data.format.PromptFormat`` without the special-token policy)."""

    template: str = "Question: {question}\nAnswer:"
    answer_prefix: str = " "
    chat: bool = False
    system: str | None = None


@dataclass(frozen=True)
class WorkdirConfig:
    """A checked workdir config: the benchmark source's settings, the models, prompt, device and evaluation."""

    benchmark: Any  # tueval.data.sources.SourceSettings
    models: ModelSettings
    prompt: PromptSettings | None = None
    special_tokens: str = "exclude"
    device: str = "auto"
    dtype: str = "float32"
    eval_batch_size: int | None = None
    max_new_tokens: int = 200
    cf_threshold: float = 1.0
    gradient_checkpointing: bool = False
    file: str = "config"
    data: dict = field(default_factory=dict)

    def prompt_format(self, source_default=None):
        """The ``PromptFormat`` of this config (the source's default where the config gives no prompt)."""
        from ..data.format import PromptFormat

        if self.prompt is None:
            base = source_default or PromptFormat()
        else:
            base = PromptFormat(template=self.prompt.template, answer_prefix=self.prompt.answer_prefix,
                                chat=self.prompt.chat, system=self.prompt.system)
        return base.with_policy(self.special_tokens)


# --------------------------------------------------------------------------------------------------- rules
def _path_rule(base: Path):
    def rule(field_: str, v: Any) -> Path:
        s = checks.text(field_, v)
        p = Path(s).expanduser()
        return p if p.is_absolute() else (base / p)
    return rule


def _template(field_: str, v: Any) -> str:
    s = checks.text(field_, v)
    if "{question}" not in s:
        raise FieldError(field_, f"must contain the placeholder {{question}}, got {v!r}")
    try:
        s.format(question="q")
    except (KeyError, IndexError, ValueError) as e:
        raise FieldError(field_, f"is not a format string with only {{question}} ({e})") from None
    return s


def _string(field_: str, v: Any) -> str:
    if not isinstance(v, str):
        raise FieldError(field_, f"must be a string, got {v!r}")
    return v


FINETUNE_RULES = {"epochs": checks.at_least_one, "lr": checks.positive, "weight_decay": checks.non_negative,
                  "warmup_epochs": lambda f, v: checks.integer(f, v, low=0), "batch_size": checks.at_least_one,
                  "grad_accum": checks.at_least_one, "seed": checks.seed,
                  "max_length": checks.optional(checks.at_least_one), "gradient_checkpointing": checks.boolean}
PROMPT_RULES = {"template": _template, "answer_prefix": _string, "chat": checks.boolean,
                "system": checks.optional(_string)}
EVAL_RULES = {"batch_size": checks.optional(checks.at_least_one), "max_new_tokens": checks.at_least_one}
TOP_KEYS = ("benchmark", "models", "prompt", "special_tokens", "device", "dtype", "eval", "ground_truth", "memory")
REQUIRED = ("benchmark", "models")
BENCHMARK_KEYS = ("source", "path", "forget", "retain", "holdout", "utility", "annotations", "retain_eval_n")


class _Reader:
    """Checks the sections of one config file, every error located at its line."""

    def __init__(self, label: str, lines: dict):
        self.label, self.lines = label, lines

    def at(self, path: tuple, fld: bool = False) -> str:
        return where(self.label, self.lines, path, field=fld)

    def mapping(self, data: Any, path: tuple, keys, required=()) -> dict:
        if not isinstance(data, Mapping):
            got = type(data).__name__ if data is not None else "nothing"
            raise SpecError(f"{self.at(path)}: expected a mapping, got {got}")
        bad = sorted(set(map(str, data)) - set(keys))
        if bad:
            raise SpecError(f"{self.at((*path, bad[0]))}: unknown key '{bad[0]}'; valid: {', '.join(keys)}")
        miss = [k for k in required if k not in data or data[k] is None]
        if miss:
            inside = ".".join(map(str, path))
            raise SpecError(f"{self.at(path)}: missing key '{(inside + '.') if inside else ''}{miss[0]}'")
        return dict(data)

    def section(self, data: Any, path: tuple, rules: Mapping, required=()) -> dict:
        d = self.mapping(data if data is not None else {}, path, list(rules), required)
        out = {}
        for k, v in d.items():
            try:
                out[k] = rules[k](k, v)
            except FieldError as e:
                raise e.at(self.at((*path, k), fld=True)) from None
        return out


def parse_workdir_config(data: Any, label: str, lines: dict, base_dir: Path) -> WorkdirConfig:
    """A ``WorkdirConfig`` from the plain data of a config file (paths relative to ``base_dir``)."""
    from ..data.sources import SourceSettings, get_source

    r = _Reader(label, lines)
    top = r.mapping(data, (), TOP_KEYS, REQUIRED)
    path_rule = _path_rule(base_dir)

    # benchmark: the generic keys, then the source's own
    b = r.mapping(top["benchmark"], ("benchmark",), _bench_keys(top["benchmark"]), ("source",))
    try:
        src = get_source(checks.name("source", b["source"]))
    except SpecError as e:
        raise SpecError(f"{r.at(('benchmark', 'source'))}: {e}") from None
    generic = {"source": checks.name, "path": path_rule, "forget": checks.optional(checks.name),
               "retain": checks.optional(checks.name), "holdout": checks.optional(checks.name),
               "utility": checks.optional(_utility), "annotations": checks.optional(path_rule),
               "retain_eval_n": checks.optional(checks.at_least_one)}
    rules = {**generic, **{k: rule for k, (rule, _) in src.options.items()}}
    b = r.section(b, ("benchmark",), rules, ("path",) if src.requires_path else ())
    opts = {k: b.pop(k, default) for k, (_, default) in src.options.items()}
    settings = SourceSettings(label=label, options=opts, **b)

    # models
    m = r.mapping(top["models"], ("models",), ("target", "retain", "base", "finetune", "trust_remote_code"))
    has_pair, has_base = "target" in m or "retain" in m, "base" in m
    if not has_pair and not has_base:
        raise SpecError(f"{r.at(('models',))}: missing key 'models.target' (and models.retain; or models.base to "
                        "finetune both)")
    if has_pair and has_base:
        raise SpecError(f"{r.at(('models', 'base'))}: give either models.target and models.retain, or models.base "
                        "(finetuned into both), not both")
    if has_pair:
        for k in ("target", "retain"):
            if m.get(k) is None:
                raise SpecError(f"{r.at(('models',))}: missing key 'models.{k}'")
        if "finetune" in m:
            raise SpecError(f"{r.at(('models', 'finetune'))}: finetune needs models.base, not target and retain")
    ft = None
    if has_base:
        ft = FinetuneSettings(**r.section(m.get("finetune"), ("models", "finetune"), FINETUNE_RULES))
    mrules = {"target": path_rule, "retain": path_rule, "base": path_rule, "finetune": lambda f, v: v,
              "trust_remote_code": checks.boolean}
    mv = r.section(m, ("models",), mrules)
    mv["finetune"] = ft
    models = ModelSettings(**mv)

    prompt = PromptSettings(**r.section(top["prompt"], ("prompt",), PROMPT_RULES)) if "prompt" in top else None
    singles = r.section({k: top[k] for k in ("special_tokens", "device", "dtype") if k in top}, (),
                        {"special_tokens": checks.choice(POLICIES), "device": checks.choice(DEVICES),
                         "dtype": checks.choice(DTYPES)})
    ev = r.section(top.get("eval"), ("eval",), EVAL_RULES)
    gt = r.section(top.get("ground_truth"), ("ground_truth",), {"threshold": checks.positive})
    mem = r.section(top.get("memory"), ("memory",), {"gradient_checkpointing": checks.boolean})
    return WorkdirConfig(benchmark=settings, models=models, prompt=prompt, file=label, data=_plain(data),
                         eval_batch_size=ev.get("batch_size"), max_new_tokens=ev.get("max_new_tokens", 200),
                         cf_threshold=gt.get("threshold", 1.0),
                         gradient_checkpointing=mem.get("gradient_checkpointing", False), **singles)


def _bench_keys(b: Any) -> list[str]:
    """The keys a benchmark section may hold: the generic ones and its source's own."""
    from ..data.sources import get_source

    keys = list(BENCHMARK_KEYS)
    if isinstance(b, Mapping) and isinstance(b.get("source"), str):
        try:
            keys += list(get_source(b["source"]).options)
        except SpecError:
            pass  # the source key itself is reported next
    return keys


def _utility(field_: str, v: Any) -> tuple[str, ...]:
    from .schema import name_list

    return name_list(field_, v)


def _plain(data: Any) -> Any:
    """The config's data as JSON-ready plain values (recorded in the workdir's manifest)."""
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def load_workdir_config(path: str | Path) -> WorkdirConfig:
    """Read and check a workdir config file."""
    data, lines, label = read_yaml(path, "config file")
    return parse_workdir_config(data, label, lines, Path(path).resolve().parent)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else mps, else cpu; an explicit device that is not available raises."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device 'cuda' is not available on this machine (torch.cuda.is_available() is False); "
                        "use device: auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SpecError("device 'mps' is not available on this machine; use device: auto or cpu")
    return device


def eval_batch_size(cfg_value: int | None, device: str) -> int:
    """The evaluation batch size: the config's, else the default of the device."""
    return int(cfg_value) if cfg_value is not None else EVAL_BATCH.get(device.split(":")[0], 32)
