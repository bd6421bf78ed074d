"""``tueval prepare``: benchmark, tokenizer, target and retain models and ground truths, each cached by hash."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import torch

from .hashing import spec_hash
from .io import atomic_dir, write_json
from .provenance import provenance
from .workdir import Profile, Workdir, get_profile


def _benchmark_config(profile: Profile):
    from .data import synthetic

    kw = dict(profile.benchmark)
    base = synthetic.SMALL if kw.pop("profile", None) == "small" else synthetic.BenchmarkConfig()
    from dataclasses import replace

    return replace(base, **kw)


def _train_one(job: tuple) -> str:
    """Train and save one model (runs in a worker process with one thread)."""
    from transformers import PreTrainedTokenizerFast

    from .data.benchmark import load_benchmark
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


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[tueval prepare] {msg}", flush=True)


def prepare(workdir: str | Path = "work", profile: str | Profile = "default", progress: bool = True,
            quiet: bool = False, evaluate: bool = True) -> Workdir:
    """Build (or reuse) everything the analyses need in ``workdir`` and write ``prepare.json``."""
    from .data.benchmark import load_benchmark
    from .data.benchmark import write_benchmark
    from .data.synthetic import generate_benchmark
    from .models.tiny import TinyModelConfig
    from .models.tokenizer import train_tokenizer
    from .models.train import TrainConfig

    torch.set_num_threads(min(2, torch.get_num_threads()))
    prof = get_profile(profile) if isinstance(profile, str) else profile
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. benchmark
    bcfg = _benchmark_config(prof)
    from .data.synthetic import GENERATOR_VERSION

    b_hash = spec_hash({"config": bcfg, "generator": GENERATOR_VERSION})
    b_dir = root / "benchmark" / b_hash
    t = time.perf_counter()
    if not (b_dir / "config.json").exists():
        _log(f"generating the benchmark -> {b_dir}", quiet)
        write_benchmark(generate_benchmark(bcfg), b_dir)
    bench = load_benchmark(b_dir)
    timings["benchmark_s"] = time.perf_counter() - t

    # 2. tokenizer (trained on every text of the benchmark: both models share it)
    tok_hash = spec_hash({"benchmark": b_hash, "vocab": prof.vocab_size})
    tok_dir = root / "tokenizer" / tok_hash
    t = time.perf_counter()
    if not (tok_dir / "tokenizer.json").exists():
        from .data.format import continuation_text, prompt_text

        texts = []
        for ex in bench.split("all"):
            for a in [ex.answer, ex.paraphrased_answer, *ex.perturbed_answers]:
                if a:
                    texts.append(prompt_text(ex.question) + continuation_text(a))
        tok = train_tokenizer(texts, vocab_size=prof.vocab_size)
        with atomic_dir(tok_dir) as tmp:
            tok.save_pretrained(tmp)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    timings["tokenizer_s"] = time.perf_counter() - t

    # 3. models: target and retain train in parallel processes, one thread each (deterministic on any machine)
    mcfg = TinyModelConfig(**prof.model)
    tcfg = TrainConfig(**prof.train)
    paths = {"benchmark": str(b_dir.relative_to(root)), "tokenizer": str(tok_dir.relative_to(root))}
    jobs = []
    for pos, which in enumerate(("target", "retain")):
        spec = {"benchmark": b_hash, "tokenizer": tok_hash, "model": mcfg.to_dict(), "train": tcfg.to_dict(),
                "which": which, "forget_split": prof.forget_split if which == "retain" else None, "threads": 1}
        m_dir = root / "models" / f"{which}-{spec_hash(spec)}"
        paths[which] = str(m_dir.relative_to(root))
        if not (m_dir / "meta.json").exists():
            _log(f"training the {which} model -> {m_dir}", quiet)
            jobs.append((str(b_dir), str(tok_dir), str(m_dir), which, prof.forget_split, mcfg.to_dict(),
                         tcfg.to_dict(), spec, progress, pos))
    t = time.perf_counter()
    if jobs:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        workers = min(len(jobs), max(1, os.cpu_count() or 1))
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            for res in ex.map(_train_one, jobs):
                _log(res, quiet)
    timings["models_s"] = time.perf_counter() - t
    train_info = {w: json.loads((root / paths[w] / "meta.json").read_text())["train"] for w in ("target", "retain")}

    # 4. counterfactual ground truth on the forget split
    from .data.counterfactual import overlap_summary, token_table
    from .models.load import load_model

    gt_hash = spec_hash({"target": paths["target"], "retain": paths["retain"], "split": prof.forget_split,
                         "threshold": prof.cf_threshold})
    gt_path = root / "ground_truth" / f"{prof.forget_split}-{gt_hash}.parquet"
    t = time.perf_counter()
    if not gt_path.exists():
        from .io import write_parquet

        target, _ = load_model(root / paths["target"])
        retain, _ = load_model(root / paths["retain"])
        df = token_table(target, retain, tok, bench.split(prof.forget_split), prof.cf_threshold)
        write_parquet(gt_path, df)
        summ = overlap_summary(df)
        write_json(gt_path.with_suffix(".json"), summ)
    paths["ground_truth"] = str(gt_path.relative_to(root))
    timings["ground_truth_s"] = time.perf_counter() - t

    manifest = {"profile": prof.to_dict(), "benchmark_config": bcfg.__dict__ if hasattr(bcfg, "__dict__") else {},
                "paths": paths, "train": train_info, "timings": timings, "provenance": provenance()}
    write_json(root / "prepare.json", manifest)
    wd = Workdir(root)
    if evaluate:
        from .evaluate import evaluate_pair

        t = time.perf_counter()
        evaluate_pair(wd, progress=progress, quiet=quiet)
        timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start
    manifest["timings"] = timings
    write_json(root / "prepare.json", manifest)
    return Workdir(root)
