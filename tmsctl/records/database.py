"""The records database: opening it, its damage check, its locks, its transactions, its backends.

``Database`` holds the one connection (SQLite, or a PostgreSQL server through
``tmsctl.records.server``) behind one lock. The repositories (``tmsctl.records.subjects``,
``sessions``, ``deliveries``, …) read and write through it; ``tmsctl.records.store.Records``
puts them together.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.records.errors import DatabaseNotFound, RecordRefused, RecordsError, SessionOwnedElsewhere
from tmsctl.records.locks import _OwnerLock
from tmsctl.records.model import StorageSettings
from tmsctl.records.schema import APPLICATION_ID, MIGRATIONS, _to_db_time, apply_migrations
from tmsctl.records.server import (
    ServerConnection,
    ServerError,
    ServerIntegrityError,
    ServerOwnerLock,
    is_server_url,
    open_server_schema,
    redact_url,
    server_error,
    server_integrity_check,
    server_storage_settings,
)

BUSY_TIMEOUT_S = 5.0
# The whole-file damage check runs at open after an unclean shutdown or a change from outside
# (see Database._full_check_not_due), and at least this often.
FULL_CHECK_EVERY_DAYS = 7
CLEAN_CLOSE_SUFFIX = ".clean"
# What either backend raises (a server's errors arrive as ServerError, see tmsctl.records.server).
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, ServerError)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, ServerIntegrityError)
WAL_CHECKPOINT_PAGES = 100  # SQLite's default is 1000



# -- where the database lives ---------------------------------------------------------------------


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """``$TMSCTL_DB`` (from ``env``, default the process environment), else ``tmsctl.db`` in this
    platform's user data directory, as platformdirs names it: ``$XDG_DATA_HOME/tmsctl`` or
    ``~/.local/share/tmsctl`` on Linux (a relative ``$XDG_DATA_HOME`` is ignored, as the XDG spec
    requires), ``~/Library/Application Support/tmsctl`` on macOS, ``%LOCALAPPDATA%\\tmsctl`` on Windows."""
    import platformdirs

    env = os.environ if env is None else env
    explicit = env.get("TMSCTL_DB", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_data_dir("tmsctl", appauthor=False)) / "tmsctl.db"


# -- the database ---------------------------------------------------------------------------------


def database_error(exc: Exception, path: Path | str, doing: str) -> RecordsError:
    if isinstance(exc, ServerError):
        return server_error(exc, str(path), doing)
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return RecordsError(
            f"the records database {path} is locked by another program ({doing}: {text})",
            path=path,
            hint=f"another process held a write lock for more than {BUSY_TIMEOUT_S:g} s; close other "
            "tmsctl processes or database browsers on this file and retry",
        )
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return RecordsError(
            f"the records database {path} is damaged or not a database ({doing}: {text})",
            path=path,
            hint="stop using it, keep a copy as evidence, restore from backup or try "
            f"`sqlite3 {path} .recover`; point --db or TMSCTL_DB at another file meanwhile",
        )
    if "disk" in lowered or "full" in lowered or "readonly" in lowered or "unable to open" in lowered:
        return RecordsError(
            f"cannot write the records database {path} ({doing}: {text})",
            path=path,
            hint="check free disk space and that the file and its directory are writable by you",
        )
    return RecordsError(f"records database {path}: {doing} failed: {text}", path=path)


class Database:
    """One connection behind one lock: opened (created, checked, migrated), transactions, owner locks.

    Thread-safe; see ``tmsctl.records.store.Records`` for ``create`` and ``read_only``.
    """

    # The two commit modes (PRAGMA synchronous): every commit waits for the disk except a train's
    # outcome (``transaction(wait_for_disk=False)``). A benchmark may swap both to show the disk's share.
    _DURABLE_MODE = "FULL"
    _RELAXED_MODE = "NORMAL"
    _waits_for_disk = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self.owned: dict[str, _OwnerLock | ServerOwnerLock] = {}
        self._conn: sqlite3.Connection | None = None
        self._read_only = read_only
        location = os.fspath(path) if path is not None else (os.environ if env is None else env).get("TMSCTL_DB", "")
        if is_server_url(location.strip()):
            self._open_server(location.strip(), env=env, create=create, read_only=read_only)
            return
        self.server: ServerConnection | None = None
        self._local_path: Path = Path(path).expanduser() if path is not None else default_db_path(env)
        self.where: Path | str = self._local_path  # the SQLite file: the same Path
        created = self._create_file_if_missing() if create and not read_only else False
        self._check_permissions(created)
        # Decided before our own connection exists: it creates the -wal file the decision reads.
        self._last_full_check = self._full_check_not_due()
        self._conn = self._connect()
        try:
            self._check_identity()
            self._configure()
            if self._last_full_check is None:
                self.check_not_damaged()
            if read_only:
                self._check_current()
            else:
                self.wrap(
                    "migrating the schema", lambda: apply_migrations(self.connection, MIGRATIONS, path=str(self.where))
                )
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def _open_server(
        self, url: str, *, env: Mapping[str, str] | None, create: bool, read_only: bool
    ) -> None:
        """The records on a PostgreSQL server (see ``tmsctl.records.server``)."""
        self.where = redact_url(url)
        # The server keeps the records; this workstation keeps its audit logs in its data folder.
        local_env = {k: v for k, v in (os.environ if env is None else env).items() if k != "TMSCTL_DB"}
        self._local_path = default_db_path(local_env)
        self.server = self.wrap(
            "connecting", lambda: ServerConnection(url, read_only=read_only, on_reconnect=self._reclaim_owner_locks)
        )
        self._conn = self.server  # type: ignore[assignment]  # it speaks what the store uses of sqlite3
        try:
            open_server_schema(self.server, self.where, create=create, read_only=read_only)
        except BaseException:
            self.server.close()
            self._conn = None
            raise

    def _reclaim_owner_locks(self) -> None:
        """After a lost connection: take this process's owner locks again on the new one. A session
        whose lock another process took meanwhile is no longer run from here."""
        assert self.server is not None
        for session_id, lock in list(self.owned.items()):
            if not self.server.try_owner_lock(session_id):
                lock.held = False  # type: ignore[union-attr]
                del self.owned[session_id]

    # -- opening ---------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file; for a server, the file the local data folder would hold (its folder
        keeps this workstation's audit logs). ``location`` names the database either way."""
        return self._local_path

    @property
    def location(self) -> str:
        """The database file's path, or the server's URL without its password."""
        return str(self.where)

    @property
    def owners_dir(self) -> Path:
        return self._local_path.with_name(self._local_path.name + ".owners")  # SQLite only: its file

    def _create_file_if_missing(self) -> bool:
        """Create an empty, private file where none exists; True if this call created it."""
        directory = self._local_path.parent
        try:
            if not directory.exists():
                directory.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    directory.mkdir(mode=0o700)
                    os.chmod(directory, 0o700)  # mkdir's mode passes through the umask
            fd = os.open(self.where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:
            raise RecordsError(
                f"cannot create the records database {self.where}: {exc.strerror or exc}",
                path=self.where,
                hint="choose a writable location with --db or TMSCTL_DB",
            ) from exc
        os.fchmod(fd, 0o600)
        os.close(fd)
        return True

    def _check_permissions(self, created: bool) -> None:
        try:
            info = os.stat(self.where)
        except FileNotFoundError as exc:
            raise DatabaseNotFound(
                f"there is no records database at {self.where}",
                path=self.where,
                hint=f"check the path for a typo; to start a new, empty database there: "
                f"`tmsctl db init {self.where}`",
            ) from exc
        except OSError as exc:
            raise RecordsError(f"cannot open the records database {self.where}: {exc.strerror or exc}",
                               path=self.where) from exc
        if not stat.S_ISREG(info.st_mode):
            raise RecordsError(f"{self.where} is not a regular file", path=self.where,
                               hint="point --db or TMSCTL_DB at a database file")
        if info.st_size == 0 and not created:
            # Even a new database has its header on disk once opened (WAL mode is written there),
            # so an empty file was truncated or never finished: starting it afresh would silently
            # drop the history, thresholds, approvals and exposure that the safety checks rely on.
            raise RecordsError(
                f"the records database {self.where} is empty (0 bytes): damaged, not a new database",
                path=self.where,
                hint="restore it from backup; if it was created moments ago and never used (or another "
                f"tmsctl is creating it right now), remove it and run `tmsctl db init {self.where}`",
            )
        if os.name == "posix" and info.st_mode & 0o077:
            raise RecordsError(
                f"the records database {self.where} is accessible to other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); it holds research subjects' records",
                path=self.where,
                hint=f"make it private with `chmod 600 {self.where}`",
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._read_only:
                conn = sqlite3.connect(
                    self._read_only_uri(), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                    check_same_thread=False,
                )
            else:
                conn = sqlite3.connect(
                    self.where, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
        except DB_ERRORS as exc:
            raise database_error(exc, self.where, "opening") from exc
        return conn

    def _read_only_uri(self) -> str:
        """A ``mode=ro`` URI; ``immutable=1`` too where the folder cannot be written (read-only media).

        A WAL reader needs the ``-shm`` file: SQLite opens it if it exists or creates it if the
        folder is writable. Where neither is possible no connection can be open (one would have
        made it), so nothing is writing and the file may be read as immutable, unless committed
        changes still wait in a ``-wal`` file: immutable reading would skip them, so that is refused.
        """
        uri = f"{self._local_path.resolve().as_uri()}?mode=ro"
        if os.access(self._local_path.parent, os.W_OK) or os.path.exists(f"{self.where}-shm"):
            return uri
        wal = Path(f"{self.where}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RecordsError(
                f"the records database {self.where} has changes in {wal.name} that cannot be read "
                "here: its folder is read-only",
                path=self.where,
                hint=f"copy {self._local_path.name} together with {wal.name} to a writable folder and open the "
                "copy there",
            )
        return uri + "&immutable=1"

    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RecordsError(f"the records database {self.where} is closed", path=self.where)
        return self._conn

    def wrap(self, doing: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except DB_ERRORS as exc:
            raise database_error(exc, self.where, doing) from exc

    def _check_identity(self) -> None:
        def read() -> tuple[int, int, int]:
            app_id = self.connection.execute("PRAGMA application_id").fetchone()[0]
            version = self.connection.execute("PRAGMA user_version").fetchone()[0]
            tables = self.connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            return app_id, version, tables

        app_id, version, tables = self.wrap("reading the header", read)
        if app_id == APPLICATION_ID:
            return
        if app_id == 0 and version == 0 and tables == 0 and not self._read_only:
            return  # a new, empty file
        raise RecordsError(
            f"{self.where} is an SQLite database of another program "
            f"(application id {app_id:#x}, {tables} schema objects), not tmsctl records",
            path=self.where,
            hint="point --db or TMSCTL_DB at a tmsctl records file or at a new path",
        )

    def _clean_close_path(self) -> Path:
        return Path(f"{self._local_path}{CLEAN_CLOSE_SUFFIX}")

    def _file_identity(self) -> list[int]:
        info = os.stat(self._local_path)
        return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]

    def _full_check_not_due(self) -> str | None:
        """When the file was last checked in full, if it has not changed since a clean close and that
        check is recent; None when the full check is due.

        The stamp (``<db>.clean``) is written by the last connection to close, once SQLite has folded
        the write-ahead log into the file and deleted it — SQLite does that on the last clean close of
        a WAL database, and only then. It holds the file's device, inode, size and modification and
        change times. So the full check runs when:

        * a ``-wal`` file with content is there: a process died with the file open (a kill, a crash,
          a power cut — the only events that can leave a torn page behind, and only where the disk
          lost a write it had confirmed), or another process writes it right now (then the check is
          redundant);
        * the file is not as the last clean close left it: written by anything that did not close
          it last and cleanly, copied, restored, edited; the change time cannot be set back by
          programs, so a copy that keeps the modification time is noticed too;
        * there is no stamp (first open, read-only media, a file copied without it);
        * the last full check is older than ``FULL_CHECK_EVERY_DAYS``: for damage nothing above
          notices, a disk that rots under an unchanged file.
        """
        if self._wal_holds_frames():
            return None
        try:
            stamp = json.loads(self._clean_close_path().read_text(encoding="utf-8"))
            checked = str(stamp["last_full_check"])
            fresh = self.now() - datetime.fromisoformat(checked) < timedelta(days=FULL_CHECK_EVERY_DAYS)
            unchanged = stamp["file"] == self._file_identity()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return checked if fresh and unchanged else None

    def _wal_holds_frames(self) -> bool:
        """A ``-wal`` with content: written since SQLite last folded it in at a clean last close.

        An empty one is what a read-only connection leaves (it may not delete the log): nothing
        was written through it, so nothing can be half-written.
        """
        try:
            return os.stat(f"{self._local_path}-wal").st_size > 0
        except FileNotFoundError:
            return False

    def _stamp_clean_close(self) -> None:
        """After the last connection closed (no ``-wal`` with content left), note the file as it is
        now. A read-only opener stamps too where it can: the stamp is beside the records, not in them."""
        if self._last_full_check is None or self._wal_holds_frames():
            return
        stamp = self._clean_close_path()
        try:
            temporary = stamp.with_name(stamp.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"file": self._file_identity(), "last_full_check": self._last_full_check}, handle)
            os.replace(temporary, stamp)
        except OSError:
            pass  # no stamp: the next open checks in full, as it would anyway

    def check_not_damaged(self) -> None:
        """Refuse a damaged file: read every page (SQLite only; a server keeps its own pages).

        Runs at open when ``_full_check_not_due`` says so, and on `tmsctl records check`; every
        other open checks the header (application id), the schema version and the journal mode.
        The check reads every page, so it grows with the file: about 3 ms per MB here, ~1 s for two
        years of a busy clinic. It leaves out re-evaluating every stored row's CHECK constraints,
        which took six times as long again (7 s at that size, on every command) to find only
        bit rot that happens to push a value out of its range; every write still enforces them.
        That pragma is per connection, so the check runs on a short-lived read-only one of its
        own: the store's connection never has its constraints switched off, not even briefly.
        """

        def quick_check() -> list[str]:
            checker = sqlite3.connect(self._read_only_uri(), uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                checker.execute("PRAGMA ignore_check_constraints = ON")
                return [row[0] for row in checker.execute("PRAGMA quick_check(5)")]
            finally:
                checker.close()

        problems = self.wrap("checking the file", quick_check)
        if problems != ["ok"]:
            raise RecordsError(
                f"the records database {self.where} is damaged: " + "; ".join(problems),
                path=self.where,
                hint="stop using it, keep a copy as evidence, restore from backup or try "
                f"`sqlite3 {self.where} .recover`; point --db or TMSCTL_DB at another file meanwhile",
            )
        self._last_full_check = self.now().isoformat()

    def _check_current(self) -> None:
        """A read-only opener cannot migrate: it reads only a database at this tmsctl's schema."""
        version = self.wrap(
            "reading the schema version", lambda: self.connection.execute("PRAGMA user_version").fetchone()[0]
        )
        if version == len(MIGRATIONS):
            return
        if version > len(MIGRATIONS):
            hint = "upgrade tmsctl"
        else:
            hint = f"open it once with write access to upgrade it in place: `tmsctl db init {self.where}`"
        raise RecordsError(
            f"the records database {self.where} has schema version {version}; this tmsctl reads "
            f"version {len(MIGRATIONS)}",
            path=self.where,
            hint=hint,
        )

    def _configure(self) -> None:
        if self._read_only:  # the journal mode is the file's; a reader neither needs nor may set it
            busy_ms = int(BUSY_TIMEOUT_S * 1000)
            self.wrap("configuring", lambda: self.connection.execute(f"PRAGMA busy_timeout = {busy_ms}"))
            return

        def configure() -> str:
            self.connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = self.connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self.connection.execute("PRAGMA synchronous = FULL")
            # A small write-ahead log is checkpointed often and then rewritten in place: the fsync
            # of every commit is cheaper for blocks that exist than for a file that grows.
            self.connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            self.connection.execute("PRAGMA foreign_keys = ON")
            return str(mode)

        mode = self.wrap("configuring", configure)
        if mode.lower() != "wal":
            raise RecordsError(
                f"the records database {self.where} cannot use write-ahead logging (journal mode {mode!r})",
                path=self.where,
                hint="keep the database on a local disk (WAL does not work on network file systems)",
            )

    def take_ownership(self, session_id: str) -> bool:
        """Own the session's lock (True if newly taken: a new run segment begins)."""
        if session_id in self.owned:
            return False
        lock = self.try_lock(session_id)
        if lock is None:
            if self.server is not None:
                holder = self.server.owner_lock_holder(session_id)
            else:
                holder = f"pid {_OwnerLock.holder_pid(self.owners_dir, session_id)}"
            raise SessionOwnedElsewhere(
                f"session {session_id} is being run by another live process ({holder})", path=self.where
            )
        self.owned[session_id] = lock
        return True

    def drop_ownership(self, session_id: str) -> None:
        lock = self.owned.pop(session_id, None)
        if lock is not None:
            lock.release(remove=True)

    def try_lock(self, session_id: str) -> _OwnerLock | ServerOwnerLock | None:
        server = self.server
        if server is not None:
            return self.wrap("taking the session's owner lock",
                              lambda: ServerOwnerLock.try_acquire(server, session_id))
        try:
            return _OwnerLock.try_acquire(self.owners_dir, session_id)
        except OSError as exc:
            raise RecordsError(
                f"cannot use the session lock directory {self.owners_dir}: {exc.strerror or exc}",
                path=self.where,
                hint="the directory next to the database must be writable by you",
            ) from exc

    # -- plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, doing: str, *, wait_for_disk: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and, with synchronous=FULL, on disk) on exit.

        ``wait_for_disk=False`` commits without waiting for the disk (SQLite: synchronous=NORMAL for
        this commit): a killed process still loses nothing (the WAL holds it), and the next waiting
        commit puts it on disk too. Only a power cut in between can lose it, so it is used only where
        losing it leaves the record true: a train's outcome, whose loss leaves its intent reading as
        "uncertain: 0 to the whole train". The intent itself always waits (it must be on disk before
        the trigger)."""
        with self.lock:
            conn = self.connection
            try:
                if self.server is None and wait_for_disk != self._waits_for_disk:
                    # switched only when it changes: twice a train (intent, then its outcomes)
                    mode = self._DURABLE_MODE if wait_for_disk else self._RELAXED_MODE
                    conn.execute(f"PRAGMA synchronous = {mode}")
                    self._waits_for_disk = wait_for_disk
                conn.execute("BEGIN IMMEDIATE")
            except DB_ERRORS as exc:
                raise database_error(exc, self.where, doing) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except INTEGRITY_ERRORS as exc:
                with contextlib.suppress(*DB_ERRORS):
                    conn.execute("ROLLBACK")
                raise RecordRefused(f"{doing}: the database refused it: {exc}", path=self.where) from exc
            except DB_ERRORS as exc:
                with contextlib.suppress(*DB_ERRORS):
                    conn.execute("ROLLBACK")
                raise database_error(exc, self.where, doing) from exc
            except BaseException:
                with contextlib.suppress(*DB_ERRORS):
                    conn.execute("ROLLBACK")
                raise

    def read(
        self, doing: str, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[sqlite3.Row]:
        with self.lock:
            try:
                cursor = self.connection.execute(sql, params)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
            except DB_ERRORS as exc:
                raise database_error(exc, self.where, doing) from exc

    def now(self) -> datetime:
        return self.clock.wall().astimezone(UTC)

    def stamp(self, moment: datetime | None) -> str:
        return _to_db_time(moment if moment is not None else self.now())

    # -- lifecycle of the store ------------------------------------------------------------------

    def abandon(self) -> None:
        """Close after an open that did not finish: no clean-close stamp, no locks to free."""
        if self.server is not None:
            self.server.close()
        elif self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the database and free this process's session locks (sessions keep their status)."""
        with self.lock:
            for lock in self.owned.values():
                lock.release(remove=False)
            self.owned.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                if self.server is None:
                    self._stamp_clean_close()

    def storage_settings(self) -> StorageSettings:
        """What the connection actually uses (for `tmsctl doctor` and the tests)."""
        with self.lock:
            server = self.server
            if server is not None:
                journal, synchronous, version, app_id = self.wrap(
                    "reading the server's settings", lambda: server_storage_settings(server))
                return StorageSettings(self.path, journal, synchronous, True, version, app_id)

            def read(pragma: str) -> Any:
                return self.connection.execute(f"PRAGMA {pragma}").fetchone()[0]

            if not self._waits_for_disk:  # report the mode every waiting commit runs under
                self.connection.execute(f"PRAGMA synchronous = {self._DURABLE_MODE}")
                self._waits_for_disk = True

            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(read("synchronous"), "?")
            return StorageSettings(
                path=self._local_path,
                journal_mode=str(read("journal_mode")),
                synchronous=synchronous,
                foreign_keys=bool(read("foreign_keys")),
                schema_version=int(read("user_version")),
                application_id=int(read("application_id")),
            )

    def integrity_check(self) -> tuple[str, ...]:
        """SQLite's ``integrity_check`` and ``foreign_key_check``; ``("ok",)`` when sound. On a server,
        which checks its pages itself: the records' triggers and constraints are all in force."""
        server = self.server
        if server is not None:
            with self.lock:
                return self.wrap("checking integrity", lambda: server_integrity_check(server))
        problems = [row[0] for row in self.read("checking integrity", "PRAGMA integrity_check")]
        for row in self.read("checking foreign keys", "PRAGMA foreign_key_check"):
            problems.append(f"foreign key: {tuple(row)}")
        if problems == ["ok"]:
            return ("ok",)
        return tuple(p for p in problems if p != "ok")
