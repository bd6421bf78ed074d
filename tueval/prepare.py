"""``tueval prepare``: benchmark, tokenizer, target and retain models and ground truths, each cached by hash.

Each step reuses its folder when every file it holds is present (a folder missing a file is built again), and
``prepare.json`` is written only when what it records changes."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .hashing import canonical_json, spec_hash
from .io import atomic_dir, ensure_dir, write_json
from .provenance import provenance
from .workdir import Profile, Workdir, get_profile

MODEL_KINDS = ("target", "retain")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
VOLATILE_KEYS = ("timings", "provenance")
"""Manifest entries that describe the last build, not the workdir: a change there alone does not rewrite it."""


@dataclass
class _State:
    """What the steps have built so far: hashes, artefact paths (relative to the root) and step timings."""

    root: Path
    profile: Profile
    quiet: bool = False
    hashes: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    benchmark_config: object = None
    bench: object = None
    tok: object = None

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.root))


def _benchmark_config(profile: Profile):
    from dataclasses import replace

    from .data.synthetic_config import SMALL, BenchmarkConfig

    kw = dict(profile.benchmark)
    base = SMALL if kw.pop("profile", None) == "small" else BenchmarkConfig()
    return replace(base, **kw)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[tueval prepare] {msg}", flush=True)


def _complete(folder: Path, names) -> bool:
    """Does ``folder`` hold every file in ``names``?"""
    return all((folder / n).is_file() for n in names)


# ----------------------------------------------------------------------------------------------------- steps
def _benchmark_step(st: _State) -> None:
    """1. the synthetic benchmark (generated unless its folder is complete)."""
    from .data.benchmark import benchmark_files, write_benchmark
    from .data.sources import load_benchmark
    from .data.synthetic import generate_benchmark
    from .data.synthetic_config import GENERATOR_VERSION

    t = time.perf_counter()
    bcfg = _benchmark_config(st.profile)
    b_hash = spec_hash({"config": bcfg, "generator": GENERATOR_VERSION})
    b_dir = st.root / "benchmark" / b_hash
    if not _complete(b_dir, benchmark_files()):
        _log(f"generating the benchmark -> {b_dir}", st.quiet)
        write_benchmark(generate_benchmark(bcfg), b_dir)
    st.benchmark_config, st.bench = bcfg, load_benchmark(b_dir)
    st.hashes["benchmark"], st.paths["benchmark"] = b_hash, st.rel(b_dir)
    st.timings["benchmark_s"] = time.perf_counter() - t


def _tokenizer_step(st: _State) -> None:
    """2. the tokenizer, trained on every text of the benchmark (both models share it)."""
    from transformers import PreTrainedTokenizerFast

    from .data.format import continuation_text, prompt_text
    from .models.tokenizer import train_tokenizer

    t = time.perf_counter()
    tok_hash = spec_hash({"benchmark": st.hashes["benchmark"], "vocab": st.profile.vocab_size})
    tok_dir = st.root / "tokenizer" / tok_hash
    if not _complete(tok_dir, TOKENIZER_FILES):
        texts = [prompt_text(ex.question) + continuation_text(a) for ex in st.bench.split("all")
                 for a in [ex.answer, ex.paraphrased_answer, *ex.perturbed_answers] if a]
        tok = train_tokenizer(texts, vocab_size=st.profile.vocab_size)
        with atomic_dir(tok_dir) as tmp:
            tok.save_pretrained(tmp)
    st.tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    st.hashes["tokenizer"], st.paths["tokenizer"] = tok_hash, st.rel(tok_dir)
    st.timings["tokenizer_s"] = time.perf_counter() - t


def _train_one(job: tuple) -> str:
    """Train and save one model (runs in a worker process with one thread)."""
    from transformers import PreTrainedTokenizerFast

    from .data.sources import load_benchmark
    from .models.load import save_model
    from .models.tiny import TinyModelConfig, build_model
    from .models.train import TrainConfig, train_model

    b_dir, tok_dir, m_dir, which, forget_split, mcfg, tcfg, spec, progress, pos = job
    torch.set_num_threads(1)
    bench = load_benchmark(b_dir)
    tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    examples = bench.train_examples(which, forget_split)
    tcfg = TrainConfig(**{**tcfg, "betas": tuple(tcfg["betas"])})
    model = build_model(tok, TinyModelConfig(**mcfg), seed=tcfg.seed)
    res = train_model(model, tok, examples, tcfg, progress=progress, desc=f"train {which}", position=pos)
    save_model(model, tok, m_dir, meta={"spec": spec, "train": res.to_dict(), "provenance": provenance(),
                                        "n_train_examples": len(examples)})
    return (f"{which}: {len(examples)} QA pairs, {res.epochs} epochs, fact-token acc {res.fact_acc:.3f}, "
            f"{res.tokens_per_second:,.0f} tokens/s, {res.seconds:.0f} s")


def _models_step(st: _State, progress: bool) -> dict[str, dict]:
    """3. target and retain models, trained in parallel processes with one thread each (deterministic on any
    machine); returns each model's training record."""
    from .models.load import is_complete_model_dir
    from .models.tiny import TinyModelConfig
    from .models.train import TrainConfig

    prof = st.profile
    mcfg, tcfg = TinyModelConfig(**prof.model), TrainConfig(**prof.train)
    jobs = []
    for pos, which in enumerate(MODEL_KINDS):
        spec = {"benchmark": st.hashes["benchmark"], "tokenizer": st.hashes["tokenizer"], "model": mcfg.to_dict(),
                "train": tcfg.to_dict(), "which": which,
                "forget_split": prof.forget_split if which == "retain" else None, "threads": 1}
        m_dir = st.root / "models" / f"{which}-{spec_hash(spec)}"
        st.paths[which] = st.rel(m_dir)
        if not is_complete_model_dir(m_dir):
            _log(f"training the {which} model -> {m_dir}", st.quiet)
            jobs.append((str(st.root / st.paths["benchmark"]), str(st.root / st.paths["tokenizer"]), str(m_dir),
                         which, prof.forget_split, mcfg.to_dict(), tcfg.to_dict(), spec, progress, pos))
    t = time.perf_counter()
    if jobs:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        workers = min(len(jobs), max(1, os.cpu_count() or 1))
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            for res in ex.map(_train_one, jobs):
                _log(res, st.quiet)
    st.timings["models_s"] = time.perf_counter() - t
    return {w: json.loads((st.root / st.paths[w] / "meta.json").read_text())["train"] for w in MODEL_KINDS}


def _ground_truth_step(st: _State) -> None:
    """4. the counterfactual ground truth on the forget split (token table + overlap summary)."""
    from .data.counterfactual import overlap_summary, token_table
    from .io import write_parquet
    from .models.load import load_model

    prof = st.profile
    gt_hash = spec_hash({"target": st.paths["target"], "retain": st.paths["retain"], "split": prof.forget_split,
                         "threshold": prof.cf_threshold})
    gt_path = st.root / "ground_truth" / f"{prof.forget_split}-{gt_hash}.parquet"
    t = time.perf_counter()
    if not (gt_path.is_file() and gt_path.with_suffix(".json").is_file()):
        target, _ = load_model(st.root / st.paths["target"])
        retain, _ = load_model(st.root / st.paths["retain"])
        df = token_table(target, retain, st.tok, st.bench.split(prof.forget_split), prof.cf_threshold)
        write_parquet(gt_path, df)
        write_json(gt_path.with_suffix(".json"), overlap_summary(df))
    st.paths["ground_truth"] = st.rel(gt_path)
    st.timings["ground_truth_s"] = time.perf_counter() - t


# -------------------------------------------------------------------------------------------------- manifest
def _stable(manifest: dict) -> str:
    """The manifest without its volatile entries, as canonical JSON (what decides a rewrite)."""
    return canonical_json({k: v for k, v in manifest.items() if k not in VOLATILE_KEYS})


def _recorded(root: Path) -> dict | None:
    """The manifest now on disk, or None if there is none or it cannot be read."""
    from .errors import TuevalError

    try:
        return Workdir(root).manifest
    except (TuevalError, OSError):
        return None


def prepare(workdir: str | Path = "work", profile: str | Profile = "default", progress: bool = True,
            quiet: bool = False, evaluate: bool = True) -> Workdir:
    """Build (or reuse) everything the analyses need in ``workdir`` and write ``prepare.json``."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    prof = get_profile(profile) if isinstance(profile, str) else profile
    root = ensure_dir(workdir)
    t_start = time.perf_counter()
    st = _State(root=root, profile=prof, quiet=quiet)
    _benchmark_step(st)
    _tokenizer_step(st)
    train_info = _models_step(st, progress)
    _ground_truth_step(st)

    manifest = {"profile": prof.to_dict(), "benchmark_config": st.benchmark_config.__dict__, "paths": st.paths,
                "train": train_info, "timings": st.timings, "provenance": provenance()}
    old = _recorded(root)
    changed = old is None or _stable(old) != _stable(manifest)
    if changed:
        write_json(root / "prepare.json", manifest)
    if evaluate:
        from .evaluate import evaluate_pair

        t = time.perf_counter()
        evaluate_pair(Workdir(root), progress=progress, quiet=quiet)
        st.timings["evaluate_s"] = time.perf_counter() - t
    if changed:
        st.timings["total_s"] = time.perf_counter() - t_start
        write_json(root / "prepare.json", manifest)
    return Workdir(root)
