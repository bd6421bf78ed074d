"""The run store's lock kinds: the OS file lock (default) and a lease file for shared file systems whose
``flock`` is not cluster-wide (docs/scale_out.md has the table). ``TUEVAL_LOCK=lease`` chooses the lease.

A lease is ``<lock>.lease``, created with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+), holding
who holds it (machine, process, a random token); its holder touches it every ``heartbeat`` seconds. A waiter
takes it over when its holder is a dead process on the waiter's own machine (at once), or when the lease has not
been touched for ``stale`` seconds of the waiter's own clock (so clocks need not agree across machines). Breaking
a stale lease goes through a short ``.break`` file, so two waiters never both break the same lease.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

KINDS = ("os", "lease")
ENV_KIND, ENV_STALE = "TUEVAL_LOCK", "TUEVAL_LOCK_STALE_S"
HEARTBEAT_S, STALE_S, POLL_S = 5.0, 60.0, 0.2


def run_lock(path: str | os.PathLike):
    """The lock at ``path`` of the kind ``TUEVAL_LOCK`` names (``os`` by default): ``acquire(timeout)`` raising
    ``filelock.Timeout``, and ``release()``."""
    kind = os.environ.get(ENV_KIND, "os") or "os"
    if kind not in KINDS:
        from .errors import SpecError

        raise SpecError(f"{ENV_KIND}={kind!r}: must be one of {', '.join(KINDS)}")
    if kind == "os":
        return FileLock(str(path))
    return LeaseLock(path, stale=float(os.environ.get(ENV_STALE, STALE_S)))


def _machine() -> dict:
    """What identifies this process's machine and process namespace (a pid means something only within them)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        boot, pidns = "", 0
    return {"host": socket.gethostname(), "boot": boot, "pidns": pidns}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class LeaseLock:
    """A lease file at ``<path>.lease`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, heartbeat: float = HEARTBEAT_S, stale: float = STALE_S,
                 poll: float = POLL_S):
        self.lock_file = str(path)
        self.path = Path(f"{path}.lease")
        self.heartbeat, self.stale, self.poll = heartbeat, max(stale, 2 * heartbeat), poll
        self.token: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._seen: tuple | None = None  # (what the lease looked like, since when on this clock)

    @property
    def is_locked(self) -> bool:
        return self.token is not None

    # ---- holding ------------------------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> None:
        """Take the lease, waiting up to ``timeout`` seconds (None: for ever); ``filelock.Timeout`` after that."""
        start = time.monotonic()
        while not self._create():
            judged = self._stale()
            if judged is not None:
                self._break(judged)
                continue
            if timeout is not None and time.monotonic() - start >= timeout:
                raise Timeout(self.lock_file)
            time.sleep(self.poll)
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease {self.path.name}", daemon=True)
        self._beat.start()

    def release(self) -> None:
        """Give the lease back (only if it is still this holder's)."""
        if self.token is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if (self._read() or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.token = None

    def _create(self) -> bool:
        token = secrets.token_hex(16)
        record = {**_machine(), "pid": os.getpid(), "token": token, "heartbeat_s": self.heartbeat}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        self.token, self._seen = token, None
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            if (self._read() or {}).get("token") == self.token:
                try:
                    os.utime(self.path)  # None: the file server's time on NFS
                except OSError:
                    pass

    # ---- waiting ------------------------------------------------------------------------------------------
    def _read(self, path: Path | None = None) -> dict | None:
        try:
            return json.loads((path or self.path).read_text())
        except (OSError, ValueError):
            return None

    def _look(self) -> tuple | None:
        """What the lease there is now: (token, mtime, inode), or None when there is none."""
        rec = self._read()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return ((rec or {}).get("token"), st.st_mtime_ns, st.st_ino)

    def _stale(self) -> tuple | None:
        """The lease there now if it may be taken over (its holder died on this machine, or it has not changed
        for ``stale`` seconds of this clock), else None."""
        rec, look = self._read(), self._look()
        if look is None:
            return None  # released meanwhile: try to create it again
        if rec is not None and rec.get("boot") and all(rec.get(k) == v for k, v in _machine().items()) and \
                not _alive(int(rec.get("pid", -1))) and look[0] == rec.get("token"):
            return look
        now = time.monotonic()
        if self._seen is None or self._seen[0] != look:
            self._seen = (look, now)
            return None
        return look if now - self._seen[1] >= self.stale else None

    def _break(self, judged: tuple) -> None:
        """Remove the lease judged stale, unless another waiter is breaking it or it changed meanwhile."""
        guard = Path(f"{self.path}.break")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:  # a breaker holds the guard for milliseconds: one older than `stale` was left by a crash
                if time.time() - guard.stat().st_mtime > self.stale:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            time.sleep(self.poll)
            return
        os.close(fd)
        try:
            if self._look() == judged:
                self.path.unlink(missing_ok=True)
        finally:
            guard.unlink(missing_ok=True)
            self._seen = None
