"""Provenance of a result: git hash, library versions, time, host facts."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LIBRARIES = ("tueval", "torch", "transformers", "tokenizers", "datasets", "numpy", "scipy", "statsmodels",
             "pandas", "scikit-learn", "lm_eval")


def git_hash(root: str | Path | None = None) -> str:
    """The current git commit of the tueval checkout (``unknown`` outside git), ``+dirty`` if modified."""
    root = Path(root) if root else Path(__file__).resolve().parents[1]
    try:
        h = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if h.returncode != 0:
            return "unknown"
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=5)
        return h.stdout.strip() + ("+dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape results."""
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = "absent"
    return out


def provenance() -> dict:
    """A provenance block for a result file."""
    import torch

    return {
        "git_hash": git_hash(),
        "versions": library_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
