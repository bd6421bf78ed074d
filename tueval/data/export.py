"""Export a prepared workdir's benchmark and models in the formats a user brings: TOFU-format files named by split
and Hugging Face model folders (what ``tueval prepare --config`` reads back)."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..io import atomic_dir, write_jsonl
from .benchmark import RETAIN_EVAL_N, Benchmark

MODEL_FILES = ("*.safetensors", "config.json", "generation_config.json", "tokenizer*.json", "special_tokens_map.json",
               "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja")


def export_tofu(bench: Benchmark, out: str | Path, forget_split: str = "forget10",
                retain_eval_n: int = RETAIN_EVAL_N) -> Path:
    """Write the synthetic benchmark as TOFU's files: ``forgetNN``, ``retainNN``, ``retain_perturbed`` (the first
    ``retain_eval_n`` retain rows, TOFU's retain evaluation subset), ``holdoutNN``, ``real_authors_perturbed`` and
    ``world_facts_perturbed`` (JSON lines, with tueval's span fields)."""
    nn = forget_split.replace("forget", "")
    retain_split = f"retain{100 - int(nn):02d}"
    files = {forget_split: bench.split(forget_split), retain_split: bench.split(retain_split),
             "retain_perturbed": bench.retain_eval(retain_eval_n, retain_split),
             f"holdout{nn}": bench.split(f"holdout{nn}"), "real_authors_perturbed": bench.split("real_authors"),
             "world_facts_perturbed": bench.split("world_facts")}
    with atomic_dir(out) as tmp:
        for name, rows in files.items():
            write_jsonl(tmp / f"{name}.jsonl", [e.to_dict() for e in rows])
    return Path(out)


def export_model(src: str | Path, out: str | Path) -> Path:
    """Copy a model folder's weights, config and tokenizer files (nothing of tueval's own) to ``out``."""
    src = Path(src)
    with atomic_dir(out) as tmp:
        for pattern in MODEL_FILES:
            for f in src.glob(pattern):
                shutil.copy2(f, tmp / f.name)
    return Path(out)


def export_workdir(wd, out: str | Path) -> dict[str, Path]:
    """A prepared embedded workdir as a user's setup: ``OUT/data`` (TOFU files), ``OUT/models/{target,retain}``."""
    out = Path(out)
    paths = {"data": export_tofu(wd.benchmark, out / "data", wd.forget_split)}
    for which in ("target", "retain"):
        paths[which] = export_model(wd.path(which), out / "models" / which)
    return paths
