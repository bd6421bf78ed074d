"""``tueval prepare --config FILE``: a workdir from a user's benchmark files and models (no training), or from a
base model finetuned into both (``tueval finetune``).

Everything is checked before anything is written: the config (every key), the benchmark files (every row), the
model folders (safetensors weights, a tokenizer) and that target and retain share one tokenizer. Then the workdir
gets the benchmark in tueval's folder format (named by a hash of the settings, the input files' contents and the
prompt format), GGUF models dequantised once into safetensors folders, the counterfactual ground truth and
``prepare.json``, whose ``source``, ``prompt`` and ``runtime`` entries every command reads.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError, SpecError
from .hashing import spec_hash
from .io import ensure_dir, write_json, write_text
from .provenance import provenance
from .workdir import Workdir

BENCHMARK_FORMAT = 1
"""Bumped when the prepared folder of a file source changes for the same inputs."""


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[tueval prepare] {msg}", flush=True)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Checked:
    """What the checks before any write found: the benchmark, the model paths, the tokenizer notes."""

    cfg: object
    bench: object
    fmt: object
    device: str
    inputs: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # which -> (kind, Path): kind 'folder' | 'gguf' | 'finetune'
    notes: list = field(default_factory=list)


def read_benchmark(cfg) -> tuple[object, dict]:
    """The config's benchmark (annotations applied) and the digests of the files it was read from."""
    from .data.annotations import apply_annotations, load_annotations
    from .data.sources import get_source

    s = cfg.benchmark
    src = get_source(s.source)
    bench = src.read(s)
    if s.annotations is not None:
        ann = load_annotations(s.annotations)
        if bench.derived:
            raise SpecError(f"{s.key('annotations')}: the synthetic benchmark carries its own spans")
        apply_annotations(bench.examples_by_split, ann, s.annotations)
    inputs = {str(p.resolve()): file_digest(p) for p in src.inputs(s)}
    return bench, inputs


def _model_path(cfg, which: str) -> tuple[str, Path]:
    """Check one model path of the config: a ``.gguf`` file or a folder with safetensors weights."""
    from .models.load import check_safe_model_dir

    p = Path(getattr(cfg.models, which))
    where = f"{cfg.file}, models.{which}"
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelLoadError(f"{where}: GGUF file {p} does not exist")
        return "gguf", p
    try:
        check_safe_model_dir(p)
    except ModelLoadError as e:
        raise ModelLoadError(f"{where}: {e}") from None
    return "folder", p


def check_inputs(cfg) -> Checked:
    """Every check of a config before the workdir is touched."""
    from .config.workdir import resolve_device
    from .data.sources import get_source
    from .models.load import check_same_tokenizer, load_tokenizer

    device = resolve_device(cfg.device)
    bench, inputs = read_benchmark(cfg)
    fmt = cfg.prompt_format(get_source(cfg.benchmark.source).prompt)
    ck = Checked(cfg=cfg, bench=bench, fmt=fmt, device=device, inputs=inputs)
    if cfg.models.base is not None:
        base = Path(cfg.models.base)
        if base.suffix != ".gguf":
            _model_path_base(cfg, base)
        elif not base.is_file():
            raise ModelLoadError(f"{cfg.file}, models.base: GGUF file {base} does not exist")
        tok, notes = load_tokenizer(base)
        ck.models = {"base": ("gguf" if base.suffix == ".gguf" else "folder", base)}
        ck.notes += notes
        _check_format(cfg, fmt, tok)
        return ck
    toks = {}
    for which in ("target", "retain"):
        ck.models[which] = _model_path(cfg, which)
        try:
            toks[which], notes = load_tokenizer(ck.models[which][1], cfg.models.trust_remote_code)
        except ModelLoadError as e:
            raise ModelLoadError(f"{cfg.file}, models.{which}: {e}") from None
        ck.notes += notes
    try:
        check_same_tokenizer(toks["target"], toks["retain"], ck.models["target"][1], ck.models["retain"][1])
    except ModelLoadError as e:
        raise ModelLoadError(f"{cfg.file}, models.retain: {e}") from None
    _check_format(cfg, fmt, toks["target"])
    return ck


def _model_path_base(cfg, base: Path) -> None:
    from .models.load import check_safe_model_dir

    try:
        check_safe_model_dir(base)
    except ModelLoadError as e:
        raise ModelLoadError(f"{cfg.file}, models.base: {e}") from None


def _check_format(cfg, fmt, tok) -> None:
    """A chat prompt needs a tokenizer with a chat template."""
    if fmt.chat and not getattr(tok, "chat_template", None):
        raise SpecError(f"{cfg.file}, prompt.chat: the tokenizer has no chat template; set chat: false and give "
                        "prompt.template")


# ----------------------------------------------------------------------------------------------- the steps
def _benchmark_step(root: Path, ck: Checked) -> str:
    from .data.benchmark import benchmark_files, write_benchmark

    ident = {"settings": {**ck.cfg.benchmark.to_dict(), "path": None, "annotations": None}, "inputs":
             sorted(ck.inputs.values()), "prompt": ck.fmt.to_dict(), "format": BENCHMARK_FORMAT}
    if ck.bench.derived:
        from .data.synthetic_config import GENERATOR_VERSION

        ident["generator"] = GENERATOR_VERSION
    d = root / "benchmark" / spec_hash(ident)
    if not all((d / f).is_file() for f in benchmark_files(ck.bench)):
        write_benchmark(ck.bench, d)
    return str(d.relative_to(root))


def _models_step(root: Path, ck: Checked, bench_rel: str, progress: bool, quiet: bool) -> tuple[dict, dict]:
    """The target and retain model folders (given, converted from GGUF, or finetuned) and their records."""
    from .models.load import gguf_to_folder, is_complete_model_dir, weights_fingerprint

    cfg, paths, train = ck.cfg, {}, {}
    if "base" in ck.models:
        from .models.finetune import finetune_pair

        kind, base = ck.models["base"]
        if kind == "gguf":
            conv = root / "models" / f"base-{spec_hash({'gguf': file_digest(base), 'dtype': cfg.dtype})}"
            if not is_complete_model_dir(conv):
                _log(f"dequantising {base.name} -> {conv}", quiet)
                gguf_to_folder(base, conv, cfg.dtype)
            base = conv
        spec = {"base": weights_fingerprint(base), "base_path": str(Path(base).resolve()),
                "finetune": cfg.models.finetune.to_dict(), "benchmark": bench_rel,
                "forget": ck.bench.role("forget") or _forget_split(ck), "prompt": ck.fmt.to_dict(),
                "dtype": cfg.dtype}
        out = {w: root / "models" / f"{w}-{spec_hash({**spec, 'which': w})}" for w in ("target", "retain")}
        _log(f"finetuning {Path(base).name} into target and retain models -> {root / 'models'}", quiet)
        res = finetune_pair(base, ck.bench, cfg.models.finetune, out, _forget_split(ck), device=ck.device,
                            dtype=cfg.dtype, prompt=ck.fmt, progress=progress)
        for w in ("target", "retain"):
            paths[w] = str(out[w].relative_to(root))
            train[w] = {**_train_record(res[w]), "source": "finetuned"}
        return paths, train
    for which in ("target", "retain"):
        kind, p = ck.models[which]
        if kind == "gguf":
            d = root / "models" / f"{which}-{spec_hash({'gguf': file_digest(p), 'dtype': cfg.dtype})}"
            if not is_complete_model_dir(d):
                _log(f"dequantising {p.name} -> {d}", quiet)
                gguf_to_folder(p, d, cfg.dtype)
            paths[which] = str(d.relative_to(root))
        else:
            paths[which] = str(p.resolve())
        train[which] = {"epochs": None, "fact_acc": None, "acc": None, "seconds": None, "tokens_per_second": None,
                        "source": "given", "path": str(p.resolve()), "weights": weights_fingerprint(p)}
    return paths, train


def _forget_split(ck: Checked) -> str:
    """The forget split of the workdir: the source's forget role, or the synthetic default's forget10."""
    return ck.bench.role("forget") or (ck.cfg.benchmark.forget or "forget10")


def _train_record(r: dict) -> dict:
    return {k: r.get(k) for k in ("epochs", "fact_acc", "acc", "seconds", "tokens_per_second", "steps", "loss")}


def _ground_truth_step(root: Path, ck: Checked, paths: dict) -> str:
    """The counterfactual ground truth on the forget split (both models on the device only for this step)."""
    from .data.counterfactual import overlap_summary, token_table
    from .io import write_parquet

    forget = _forget_split(ck)
    ident = {"target": paths["target"], "retain": paths["retain"], "benchmark": paths["benchmark"], "split": forget,
             "threshold": ck.cfg.cf_threshold, "dtype": ck.cfg.dtype}
    gt_path = root / "ground_truth" / f"{forget}-{spec_hash(ident)}.parquet"
    if not (gt_path.is_file() and gt_path.with_suffix(".json").is_file()):
        from .config.workdir import eval_batch_size
        from .data.sources import load_benchmark
        from .data.format import set_format
        from .models.load import load_model

        target, tok = load_model(root / paths["target"], device=ck.device, dtype=ck.cfg.dtype)
        retain, _ = load_model(root / paths["retain"], device=ck.device, dtype=ck.cfg.dtype)
        set_format(tok, ck.fmt)
        examples = load_benchmark(root / paths["benchmark"]).split(forget)
        df = token_table(target, retain, tok, examples, ck.cfg.cf_threshold,
                         batch_size=eval_batch_size(ck.cfg.eval_batch_size, ck.device))
        del target, retain
        write_parquet(gt_path, df)
        write_json(gt_path.with_suffix(".json"), overlap_summary(df))
    return str(gt_path.relative_to(root))


def prepare_from_config(config, workdir: str | Path = "work", progress: bool = True, quiet: bool = False,
                        evaluate: bool = True) -> Workdir:
    """Prepare ``workdir`` from a workdir config (a path or a ``WorkdirConfig``); returns the Workdir."""
    import torch

    from .config.workdir import WorkdirConfig, eval_batch_size, load_workdir_config

    t0 = time.perf_counter()
    cfg = config if isinstance(config, WorkdirConfig) else load_workdir_config(config)
    ck = check_inputs(cfg)
    for n in ck.notes:
        _log(f"note: {n}", quiet)
    if ck.device == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    root = ensure_dir(workdir)
    src_name = cfg.benchmark.source
    bench = ck.bench
    forget = _forget_split(ck)
    source_entry = {"name": src_name, "metrics": None, "forget": forget,
                    "retain": bench.role("retain") or f"retain{100 - int(forget.replace('forget', '')):02d}",
                    "holdout": bench.role("holdout") if not bench.derived
                    else "holdout" + forget.replace("forget", ""),
                    "ground_truths": list(_gt_sources(bench, src_name, forget))}
    from .data.sources import get_source

    source_entry["metrics"] = get_source(src_name).metrics
    runtime = {"device": ck.device, "dtype": cfg.dtype, "eval_batch_size": eval_batch_size(cfg.eval_batch_size,
                                                                                           ck.device),
               "max_new_tokens": cfg.max_new_tokens, "gradient_checkpointing": cfg.gradient_checkpointing}
    timings: dict[str, float] = {}
    t = time.perf_counter()
    paths = {"benchmark": _benchmark_step(root, ck)}
    timings["benchmark_s"] = time.perf_counter() - t
    manifest = {"profile": {"name": "config", "forget_split": forget}, "source": source_entry,
                "prompt": ck.fmt.to_dict(), "runtime": runtime, "config": cfg.data, "config_file": cfg.file,
                "notes": ck.notes, "paths": paths}
    t = time.perf_counter()
    mpaths, train = _models_step(root, ck, paths["benchmark"], progress, quiet)
    timings["models_s"] = time.perf_counter() - t
    paths.update(mpaths)
    paths["tokenizer"] = paths["target"]
    manifest["train"] = train
    t = time.perf_counter()
    paths["ground_truth"] = _ground_truth_step(root, ck, paths)
    timings["ground_truth_s"] = time.perf_counter() - t
    write_text(root / "config.yaml", _config_text(cfg))
    write_json(root / "prepare.json", {**manifest, "paths": paths, "timings": timings, "provenance": provenance()})
    wd = Workdir(root)
    if evaluate:
        from .evaluate import evaluate_pair

        t = time.perf_counter()
        evaluate_pair(wd, progress=progress, quiet=quiet)
        timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    write_json(root / "prepare.json", {**manifest, "paths": paths, "timings": timings, "provenance": provenance()})
    return Workdir(root)


def _gt_sources(bench, src_name: str, forget: str) -> tuple[str, ...]:
    from .data.sources import get_source

    if bench.derived:
        return ("spans", "counterfactual")
    return get_source(src_name).ground_truths(bench)


def _config_text(cfg) -> str:
    """The config as it was read (a record beside the manifest)."""
    import yaml

    return f"# read from {cfg.file}\n" + yaml.safe_dump(cfg.data, sort_keys=False, allow_unicode=True)
