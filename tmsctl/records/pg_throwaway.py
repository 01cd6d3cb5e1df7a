"""A throwaway PostgreSQL server from the machine's own server binaries, for tests and benchmarks.

``ThrowawayServer.start()`` runs ``initdb`` and ``pg_ctl start -w`` in a fresh folder under the
system temporary directory, listening on loopback only, on a free port. PostgreSQL refuses to run
as root, so as root the server runs as an unprivileged user (``nobody`` unless named) that owns the
folder; otherwise as the calling user. ``stop()`` stops it and ``start()`` starts it again on the
same folder and port (the tests that take the server away mid-session use this); ``close()``
stops it and removes the folder. ``fsync`` stays on: a benchmark of commit latency on a server
that does not flush would measure nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def find_server_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version first), or None."""
    candidates: list[str] = []
    explicit = os.environ.get("TMSCTL_PG_BINDIR", "").strip()
    if explicit:
        candidates.append(explicit)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if all(os.access(os.path.join(folder, name), os.X_OK) for name in SERVER_BINARIES):
            return Path(folder)
    return None


def _version_key(folder: str) -> tuple[int, ...]:
    version = Path(folder).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThrowawayServer:
    """One PostgreSQL server on 127.0.0.1 with trust authentication, for this process's tests."""

    def __init__(self, bindir: Path | None = None, *, run_as: str = "nobody") -> None:
        found = bindir or find_server_binaries()
        if found is None:
            raise FileNotFoundError(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under /usr/lib/postgresql/*/bin "
                "or on PATH; install the 'postgresql' package or set TMSCTL_PG_BINDIR"
            )
        self.bindir = found
        self._as_root = os.geteuid() == 0
        self.user = run_as if self._as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.folder = Path(tempfile.mkdtemp(prefix="tmsctl-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.running = False
        if self._as_root:
            os.chown(self.folder, pwd.getpwnam(self.user).pw_uid, pwd.getpwnam(self.user).pw_gid)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True, text=True, timeout=120, cwd=self.folder,
            user=self.user if self._as_root else None, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> ThrowawayServer:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "--auth=trust", "--encoding=UTF8", "--locale=C",
                      "--username=postgres")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='{self.folder}' "
                   "-c fsync=on -c synchronous_commit=on -c max_connections=100")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.folder / "log"),
                  "-o", options)
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every connection and shuts down cleanly; ``immediate`` is a crash of the server."""
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-D", str(self.data), "-m", mode)
            self.running = False

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database made by ``create_database``, ending any connection still open to it."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> ThrowawayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
