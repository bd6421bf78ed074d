"""Nested state (dicts, lists, tuples, numbers, strings, tensors) saved as one safetensors file: the tensors as
named tensors, the structure and every non-tensor value as JSON in the file's metadata. Loading parses JSON and
raw tensor bytes only, so a state file can never run code."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .errors import TuevalError
from .io import atomic_path

FORMAT = "tueval-state/1"
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"
_MARKERS = (_TENSOR, _TUPLE, _ITEMS)


class StateFileError(TuevalError):
    """A state file that cannot be written or read back (it names the file and the reason)."""


def save_state(path: str | os.PathLike, state: Any) -> Path:
    """Write ``state`` atomically to ``path`` (a ``.safetensors`` file); tensors that share memory are stored
    once and come back as one tensor."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    views: dict[tuple, str] = {}
    tree = _encode(state, "", tensors, views)
    meta = {"format": FORMAT, "tree": json.dumps(tree, separators=(",", ":"))}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    except OSError as e:
        raise StateFileError(f"cannot write {path}: {e.strerror or e}") from e
    except Exception as e:  # noqa: BLE001 - safetensors reports a full disk as its own error type
        raise StateFileError(f"cannot write {path}: {' '.join(str(e).split())}") from e
    return path


def load_state(path: str | os.PathLike) -> Any:
    """The state saved by ``save_state`` (tensors on the CPU); StateFileError naming the file when it is not
    one (a pickle, a truncated file, another format)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file (format {meta.get('format')!r})")
            tree = json.loads(meta["tree"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return _decode(tree, tensors)
    except StateFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure means the file is not a state file
        raise StateFileError(f"cannot read {path}: {' '.join(str(e).split()) or type(e).__name__}") from e


def _encode(obj: Any, where: str, tensors: dict[str, torch.Tensor], views: dict[tuple, str]) -> Any:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype,
               str(t.device)) if t.numel() else None
        if key is not None and key in views:
            return {_TENSOR: views[key]}
        name = where or "tensor"
        while name in tensors:
            name += "'"
        shared = key is not None and any(k[0] == key[0] and k[5] == key[5] for k in views)
        t = t.cpu()
        tensors[name] = t.clone() if shared else t.contiguous()
        if key is not None:
            views[key] = name
        return {_TENSOR: name}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, f"{where}/{i}", tensors, views) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{where}/{i}", tensors, views) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k in _MARKERS for k in obj):
            return {k: _encode(v, f"{where}/{k}" if where else k, tensors, views) for k, v in obj.items()}
        return {_ITEMS: [[_encode(k, f"{where}/key{i}", tensors, views), _encode(v, f"{where}/{k}", tensors, views)]
                         for i, (k, v) in enumerate(obj.items())]}
    raise StateFileError(f"cannot store a {type(obj).__name__} at '{where or '/'}' in a state file "
                         "(tensors, numbers, strings, lists, tuples and dicts only)")


def _decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [_decode(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) == 1 and _TENSOR in tree:
        return tensors[tree[_TENSOR]]
    if len(tree) == 1 and _TUPLE in tree:
        return tuple(_decode(v, tensors) for v in tree[_TUPLE])
    if len(tree) == 1 and _ITEMS in tree:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in tree[_ITEMS]}
    return {k: _decode(v, tensors) for k, v in tree.items()}


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, torch.Tensor)):
        raise ValueError(f"a dict key of type {type(key).__name__}")
    return key
