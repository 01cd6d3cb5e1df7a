"""Per-session owner locks (``<db>.owners/<session>.lock``), freed by the kernel when the owner dies."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

# -- owner locks ----------------------------------------------------------------------------------


class _OwnerLock:
    """An exclusive, non-blocking lock on ``<db>.owners/<session>.lock``, freed by the kernel at exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, directory: Path, session_id: str) -> _OwnerLock | None:
        if not directory.exists():
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        path = directory / f"{session_id}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            if not _lock_fd(fd):
                os.close(fd)
                return None
            # The previous owner may have removed the file between our open and our lock: then we
            # hold a lock on a file nobody else will ever open. Retry on the current file.
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    @staticmethod
    def holder_pid(directory: Path, session_id: str) -> str:
        try:
            return (directory / f"{session_id}.lock").read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self, *, remove: bool) -> None:
        if self._fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still locked, so no one else can be using it
        os.close(self._fd)  # closing frees the lock
        self._fd = None


def _lock_fd(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True  # pragma: no cover
