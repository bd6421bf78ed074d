"""File IO: atomic writes (a file is either absent or complete, never half-written) and strict text reads.

Writes that the file system refuses (read-only, full, no permission) raise ``WriteError`` naming the target and
the reason; reads of text that is not UTF-8 or not JSON raise ``DataError`` naming the file and the line."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .errors import DataError, WriteError

WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG,
                          errno.EIO})
"""OS errors that mean "this target cannot be written" (reported as WriteError)."""
LOW_SPACE_BYTES = 1 << 20


# ------------------------------------------------------------------------------------------ write failures
def os_reason(err: OSError) -> str:
    """The operating system's reason for ``err`` in lower case ("read-only file system")."""
    s = err.strerror or (os.strerror(err.errno) if err.errno else str(err))
    return s[:1].lower() + s[1:]


def describe_os_error(err: OSError) -> str:
    """One line for an OSError: ``PATH: reason`` when the error names a path, else its message."""
    if err.filename and err.strerror:
        return f"{err.filename}: {os_reason(err)}"
    return str(err)


def disk_reason(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot take a write (read-only, full, no permission), or None if it looks writable."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS).lower()
    if st.f_bavail * st.f_frsize < LOW_SPACE_BYTES:
        return os.strerror(errno.ENOSPC).lower()
    if not os.access(folder, os.W_OK):
        return os.strerror(errno.EACCES).lower()
    return None


def as_write_error(path: str | os.PathLike, err: BaseException) -> WriteError | None:
    """``err`` as a WriteError naming ``path`` if it is a refused write, else None.

    Libraries that write through their own C code (``torch.save``, Arrow) raise RuntimeError or an OSError
    without errno on a full disk; those are attributed to the file system only when it is read-only, full or
    not writable."""
    if isinstance(err, WriteError):
        return err
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        return WriteError(path, os_reason(err))
    if isinstance(err, OSError) or (isinstance(err, RuntimeError) and "writ" in str(err).lower()):
        reason = disk_reason(Path(path).parent)
        return WriteError(path, reason) if reason else None
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn a refused write inside the block into a WriteError naming ``path``."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        err = as_write_error(path, e)
        if err is None:
            raise
        raise err from e


def ensure_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; a refused write raises WriteError."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with writing(path):
            yield tmp_path
            if tmp_path.exists():
                os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
            os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    m = os.umask(0)
    os.umask(m)
    return m


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to ``path``; rename it onto ``path`` only if the block succeeds.

    A refused write anywhere inside raises WriteError naming ``path`` (not the temp folder)."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.parent / f"{tmp.name}.old"
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
            if path.exists():
                os.replace(path, old)  # set the old folder aside: it stays whole until the new one is in place
            os.replace(tmp, path)
        except (OSError, RuntimeError, WriteError) as e:
            err = as_write_error(path, e)
            if err is None:
                raise
            raise WriteError(path, err.reason) from e
    finally:
        if old.exists() and not path.exists():
            os.replace(old, path)
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write JSON atomically with sorted keys (byte-stable for equal objects)."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Write JSON lines atomically with sorted keys."""
    return write_text(path, "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as Parquet atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


# -------------------------------------------------------------------------------------------- strict reads
def read_text(path: str | os.PathLike) -> str:
    """A file's text (a UTF-8 byte-order mark is dropped); bytes that are not UTF-8 raise DataError naming the
    file and the line."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(str(path), None, None, f"line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at "
                                               f"offset {e.start})") from None


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's value; non-UTF-8 bytes or invalid JSON raise DataError naming the file and the line."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(str(path), None, None, f"line {e.lineno}: invalid JSON: {e.msg} (column {e.colno})") \
            from None


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
