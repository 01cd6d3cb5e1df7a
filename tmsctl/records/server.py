"""The records on a PostgreSQL server: the same ``Records``, the same SQL, the server's guarantees.

A clinic with several rooms points every workstation at one server (``--db postgresql://…`` or
``TMSCTL_DB``); ``Records`` then talks to it through ``ServerConnection``, which looks to the store
like the ``sqlite3`` connection it was written for. That is the design: a thin dialect layer under
the store, not a second store, so every rule the store enforces (never repeat, never skip, intent
before the trigger, status changes, caps) is one piece of code for both backends.

What the dialect layer does
---------------------------
- Placeholders: the store writes ``?`` and ``:name``; they become psycopg's ``%s`` and ``%(name)s``
  (outside string literals), bound client-side as literals, like ``sqlite3`` binds them.
- ``BEGIN IMMEDIATE`` (SQLite: one writer at a time for the whole file) becomes ``BEGIN`` plus a
  transaction-level advisory lock that every tmsctl writer takes: writers on the server are
  serialised exactly as on a file, so "check the resume point, then insert the intent" and the
  daily-cap reads stay race-free across rooms. A clinic's write rate (a train every few seconds
  per room) is far below what one lock serialises. ``BEGIN`` (a read snapshot) becomes
  ``REPEATABLE READ``.
- ``cursor.lastrowid`` comes from ``RETURNING`` on the tables whose key the store assigns.
- The schema carries what the store's SQL expects from SQLite: ``sum(boolean)`` (SQLite sums
  comparisons as 0/1), ``sessions.rowid`` (SQLite's implicit insertion order) and
  ``json_each(text)`` over a JSON array (the course queries pass id lists so).
- Pragmas become server settings: ``synchronous_commit = on`` for this connection (a commit
  returns only once flushed to the server's WAL, and to any synchronous standby), ``fsync`` must be
  on (a server that does not flush cannot hold an intent durable, so it is refused), ``lock_timeout``
  bounds waits as ``busy_timeout`` does.
- Owner locks are server-side: ``pg_try_advisory_lock`` on a key derived from the session id, held
  by this connection. The server frees it when the process or its connection dies, which is how
  another room tells a dead owner from a live one, exactly as the kernel's ``flock`` does on a file.
- Errors: psycopg's errors are raised as ``ServerError`` (``ServerIntegrityError`` for constraint
  and trigger refusals) so the store's handlers catch them beside ``sqlite3``'s; ``server_error``
  turns them into typed ``RecordsError``: a server that cannot be reached is ``RecordsUnavailable``.

When the server goes away
-------------------------
A statement on a lost connection fails with ``RecordsUnavailable``; nothing is retried inside a
transaction, so an intent that could not be committed is never reported recorded and the runner does
not fire. The next transaction reconnects (once, bounded by ``CONNECT_TIMEOUT_S``) and takes this
process's owner locks again; a lock another process took meanwhile (it found the session's owner
gone and marked it interrupted) is given up, so the session is no longer run from here.

Migrations: the store's own mechanism, on both backends
-------------------------------------------------------
``PG_MIGRATIONS[n]`` takes a server database from schema version n to n + 1, as ``MIGRATIONS[n]``
does a file, and ``apply_server_migrations`` runs each step in its own transaction (PostgreSQL's DDL
is transactional, like SQLite's), the version kept in the one-row table ``tmsctl_meta``. Not Alembic:
the three steps so far include one that only SQLite needs in its own way (widening a CHECK by a
schema edit, which Alembic would do by copying the table), the embedded default would gain
SQLAlchemy and Alembic as dependencies for nothing, and the store's runner already gives what
matters: one step per transaction, a newer database refused, a failed step leaving the previous
version. The tables and indexes of version 1 are derived from the SQLite text (only type names
differ), so the two cannot drift; triggers are written in PL/pgSQL beside it, and a test compares
both backends' tables column by column.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tmsctl.records.errors import DatabaseNotFound, RecordsError, RecordsUnavailable
from tmsctl.records.schema import (
    _COURSES_V4,
    _MEP_MEASUREMENTS_V5,
    _SCHEMA_V1,
    APPLICATION_ID,
    MIGRATIONS,
    _split_sql,
)

SERVER_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_S = 5.0
# A server that vanishes without closing the connection (cable, power) is noticed this fast.
TCP_USER_TIMEOUT_MS = 5000
# Advisory-lock keys: the two-int4 form, so they never meet the one-bigint keys of the owner locks.
WRITER_LOCK = (APPLICATION_ID, 1)


def is_server_url(location: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) location."""
    return isinstance(location, str) and location.split(":", 1)[0].lower() in SERVER_SCHEMES and ":" in location


def redact_url(url: str) -> str:
    """The URL without its password, for messages and records."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[1]}"))


def check_server_url(url: str) -> None:
    if not re.match(r"^(postgresql|postgres)://", url, re.IGNORECASE):
        raise RecordsError(
            f"{url!r} is not a PostgreSQL URL (the '//' after the scheme is missing)",
            hint="write it as postgresql://USER@HOST[:PORT]/DATABASE; pass it as text, not as a file path",
        )


# -- errors ---------------------------------------------------------------------------------------


class ServerError(Exception):
    """A psycopg error, raised by ``ServerConnection`` (the original is ``__cause__``)."""

    def __init__(self, message: str, *, sqlstate: str | None, connection_lost: bool) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.connection_lost = connection_lost


class ServerIntegrityError(ServerError):
    """A constraint or trigger refused a write (SQLSTATE class 23)."""


def _raise_server_error(exc: Exception, *, connection_lost: bool) -> None:
    import psycopg

    sqlstate = getattr(exc, "sqlstate", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = ServerIntegrityError if isinstance(exc, psycopg.IntegrityError) else ServerError
    raise kind(message, sqlstate=sqlstate, connection_lost=connection_lost) from exc


def server_error(exc: ServerError, location: str, doing: str) -> RecordsError:
    """The typed ``RecordsError`` for a server error (``location`` is the redacted URL)."""
    if exc.connection_lost or (exc.sqlstate or "").startswith("08"):
        return RecordsUnavailable(
            f"the records server {location} cannot be reached ({doing}: {exc})",
            path=location,
            hint="nothing was recorded by this step, and no train fires without its record; check that "
            "the server is up and reachable (`pg_isready`), then resume the session",
        )
    if exc.sqlstate == "55P03":  # lock_not_available: lock_timeout passed
        return RecordsError(
            f"the records server {location} is busy: another tmsctl held the write lock for more than "
            f"{LOCK_TIMEOUT_S:g} s ({doing}: {exc})",
            path=location,
            hint="retry; if it persists, look for a stuck tmsctl process or a long transaction on the server",
        )
    if exc.sqlstate in ("42501", "28000", "28P01"):
        return RecordsError(
            f"the records server {location} refused access ({doing}: {exc})",
            path=location,
            hint="the database role needs to connect and to read and write the tmsctl tables",
        )
    if exc.sqlstate == "25006":  # read_only_sql_transaction
        return RecordsError(f"the records server {location} was opened read-only ({doing}: {exc})", path=location)
    return RecordsError(f"records server {location}: {doing} failed: {exc}", path=location)


# -- rows and cursors -----------------------------------------------------------------------------


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class ServerCursor:
    """What the store uses of a ``sqlite3.Cursor``: fetches, ``lastrowid``, ``rowcount``."""

    row_factory: Any = None  # the store sets sqlite3.Row; rows here are always read by name and position

    def __init__(self, rows: list[Row], lastrowid: int | None, rowcount: int,
                 description: list[tuple[str, ...]] | None = None) -> None:
        self.description = description
        self._rows = rows
        self._next = 0
        self.lastrowid = lastrowid
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rest = self._rows[self._next:]
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


# Tables whose integer key the store reads back from cursor.lastrowid after an INSERT.
_ASSIGNED_KEYS = {
    "motor_thresholds": "threshold_id",
    "protocol_approvals": "approval_id",
    "operator_actions": "action_id",
    "overrides": "override_id",
    "faults": "fault_id",
    "courses": "course_id",
    "course_plan_changes": "change_id",
    "outcome_entries": "entry_id",
    "mep_measurements": "measurement_id",
}
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)


def translate_placeholders(sql: str) -> str:
    """``?`` → ``%s``, ``:name`` → ``%(name)s``, ``%`` → ``%%``; string literals and ``::`` casts kept."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # a doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        elif ch == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 2
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[i + 1:end]})s")
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class ServerConnection:
    """A psycopg connection dressed as the ``sqlite3.Connection`` the store was written against.

    Autocommit, so ``BEGIN``/``COMMIT`` are the store's own. Reconnects before a transaction (or a
    lone read) when the connection was lost, never inside one; ``on_reconnect`` then runs (the
    store takes its owner locks again).
    """

    def __init__(self, url: str, *, read_only: bool = False, on_reconnect: Callable[[], None] | None = None) -> None:
        check_server_url(url)
        self._url = url
        self._read_only = read_only
        self.on_reconnect = on_reconnect
        self._in_transaction = False
        self._translated: dict[str, tuple[str, str | None]] = {}
        self._conn: Any = None
        self._connect()

    # -- the connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise RecordsError(
                "records on a PostgreSQL server need the psycopg package, which is not installed",
                hint="pip install 'tmsctl[postgresql]'",
            ) from exc

        import socket  # only a server connection needs it

        name = f"tmsctl pid {os.getpid()} on {socket.gethostname()}"[:63]
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, cursor_factory=psycopg.ClientCursor,
                connect_timeout=CONNECT_TIMEOUT_S, application_name=name,
                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            )
        except psycopg.Error as exc:
            _raise_server_error(exc, connection_lost=isinstance(exc, psycopg.OperationalError))
        try:
            # Durable on the server before a commit returns, whatever the server's default says.
            conn.execute("SET synchronous_commit = on")
            conn.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'")
            conn.execute("SET TIME ZONE 'UTC'")
            if self._read_only:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            conn.close()
            _raise_server_error(exc, connection_lost=conn.broken)
        self._conn = conn
        self._in_transaction = False

    @property
    def raw(self) -> Any:
        """The psycopg connection (for the server-only steps: migrations, settings)."""
        return self._conn

    def _usable(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def reconnect_if_lost(self) -> None:
        if self._usable() or self._in_transaction:
            return
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None
        self._connect()
        if self.on_reconnect is not None:
            self.on_reconnect()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    # -- statements --------------------------------------------------------------------------------

    def _translate(self, sql: str) -> tuple[str, str | None]:
        cached = self._translated.get(sql)
        if cached is None:
            text = translate_placeholders(sql)
            key = None
            match = _INSERT_INTO.match(sql)
            if match and match.group(1).lower() in _ASSIGNED_KEYS and "RETURNING" not in sql.upper():
                key = _ASSIGNED_KEYS[match.group(1).lower()]
                text = f"{text.rstrip().rstrip(';')} RETURNING {key}"
            cached = self._translated[sql] = (text, key)
        return cached

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> ServerCursor:
        command = " ".join(sql.split()).upper()
        if command in ("BEGIN IMMEDIATE", "BEGIN", "BEGIN DEFERRED"):
            return self._begin(writer=command == "BEGIN IMMEDIATE")
        if command in ("COMMIT", "ROLLBACK", "END"):
            return self._end(command)
        text, key = self._translate(sql)
        if self._in_transaction:
            return self._run(text, params if params else None, key)
        return self._outside_transaction(lambda: self._run(text, params if params else None, key))

    def _outside_transaction(self, statement: Callable[[], ServerCursor]) -> ServerCursor:
        """Run a statement that starts a transaction or stands alone: on a connection found lost only
        now (the server restarted while we were idle), reconnect and run it once more; nothing of
        it can have happened on the old connection."""
        self.reconnect_if_lost()
        try:
            return statement()
        except ServerError as exc:
            if not exc.connection_lost:
                raise
        self.reconnect_if_lost()
        return statement()

    def executemany(self, sql: str, seq_of_params: Sequence[Sequence[Any]]) -> ServerCursor:
        for params in seq_of_params:
            self.execute(sql, params)
        return ServerCursor([], None, len(seq_of_params))

    def _run(self, text: str, params: Any, key: str | None) -> ServerCursor:
        import psycopg

        if self._conn is None:
            raise ServerError("the connection to the records server is closed", sqlstate="08003",
                              connection_lost=True)
        try:
            cursor = self._conn.execute(text, params)
            rows: list[Row] = []
            if cursor.description is not None:
                names = {column.name: i for i, column in enumerate(cursor.description)}
                rows = [Row(values, names) for values in cursor.fetchall()]
            lastrowid = rows[0][0] if key is not None and rows else None
            description: list[tuple[str, ...]] | None = (
                None if cursor.description is None else [(c.name,) for c in cursor.description]
            )
            return ServerCursor(rows, lastrowid, cursor.rowcount, description)
        except psycopg.Error as exc:
            _raise_server_error(exc, connection_lost=self._conn.broken)
            raise  # unreachable: for the type checker

    def _begin(self, *, writer: bool) -> ServerCursor:
        self._outside_transaction(
            lambda: self._run("BEGIN" if writer else "BEGIN ISOLATION LEVEL REPEATABLE READ", None, None))
        self._in_transaction = True
        if writer:
            try:
                self._run("SELECT pg_advisory_xact_lock(%s, %s)", WRITER_LOCK, None)
            except BaseException:
                self._end("ROLLBACK")
                raise
        return ServerCursor([], None, -1)

    def _end(self, command: str) -> ServerCursor:
        self._in_transaction = False
        if command == "ROLLBACK" and not self._usable():
            return ServerCursor([], None, -1)  # the server dropped the transaction with the connection
        return self._run("COMMIT" if command == "END" else command, None, None)

    # -- owner locks -------------------------------------------------------------------------------

    def try_owner_lock(self, session_id: str) -> bool:
        row = self.execute("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", (_owner_key(session_id),)).fetchone()
        return bool(row and row[0])

    def release_owner_lock(self, session_id: str) -> None:
        if self._usable():
            with contextlib.suppress(ServerError):
                self.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", (_owner_key(session_id),))

    def owner_lock_holder(self, session_id: str) -> str:
        """Who holds the session's owner lock, as its connection named itself (or "?")."""
        with contextlib.suppress(ServerError):
            row = self.execute(
                """SELECT a.application_name, host(a.client_addr) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND l.classid::bigint = (hashtextextended(:key, 0) >> 32) & 4294967295
                     AND l.objid::bigint = hashtextextended(:key, 0) & 4294967295""",
                {"key": _owner_key(session_id)},
            ).fetchone()
            if row is not None:
                return f"{row[0] or 'unnamed client'}" + (f", from {row[1]}" if row[1] else "")
        return "?"


def _owner_key(session_id: str) -> str:
    return f"tmsctl.session.planned:{session_id}"


class ServerOwnerLock:
    """A session's owner lock on the server (the counterpart of the file lock's ``_OwnerLock``)."""

    def __init__(self, conn: ServerConnection, session_id: str) -> None:
        self._conn = conn
        self.session_id = session_id
        self.held = True

    @classmethod
    def try_acquire(cls, conn: ServerConnection, session_id: str) -> ServerOwnerLock | None:
        return cls(conn, session_id) if conn.try_owner_lock(session_id) else None

    def release(self, *, remove: bool) -> None:  # nothing to remove on a server
        if self.held:
            self.held = False
            self._conn.release_owner_lock(self.session_id)


# -- the schema on the server ---------------------------------------------------------------------

_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),  # PostgreSQL's REAL is 4 bytes; SQLite's is 8
)

_APPEND_ONLY = ("subjects", "motor_thresholds", "protocol_approvals", "session_thresholds",
                "operator_actions", "overrides", "faults")


def _pg_tables(sqlite_script: str) -> list[str]:
    """A step's tables and indexes, from the SQLite text; its triggers are written in PL/pgSQL."""
    statements = []
    for statement in _split_sql(sqlite_script):
        if statement.lstrip().upper().startswith("CREATE TRIGGER"):
            continue
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        statements.append(statement.rstrip().rstrip(";"))
    return statements


def _refuse(name: str, table: str, when: str, message: str, *, condition: str | None = None) -> str:
    quoted = message.replace("'", "''")
    return (f"CREATE TRIGGER {name} BEFORE {when} ON {table} FOR EACH ROW"
            + (f" WHEN ({condition})" if condition else "")
            + f" EXECUTE FUNCTION tmsctl_refuse('{quoted}')")


_PG_V1_EXTRAS = [
    """CREATE TABLE tmsctl_meta (
           one             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
           application_id  BIGINT NOT NULL,
           schema_version  INTEGER NOT NULL
       )""",
    f"INSERT INTO tmsctl_meta (application_id, schema_version) VALUES ({APPLICATION_ID}, 0)",
    # SQLite's implicit insertion order, which the store's session listing sorts by.
    "ALTER TABLE sessions ADD COLUMN rowid BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE",
    # SQLite sums comparisons as 0/1 (sum(state = 'completed')); so does this.
    """CREATE FUNCTION tmsctl_count_true(total BIGINT, flag BOOLEAN) RETURNS BIGINT
           LANGUAGE sql IMMUTABLE STRICT AS 'SELECT total + flag::int'""",
    "CREATE AGGREGATE sum(BOOLEAN) (SFUNC = tmsctl_count_true, STYPE = BIGINT, INITCOND = '0')",
    # The triggers' refusals are integrity violations (SQLSTATE 23000), as SQLite's RAISE(ABORT) is.
    """CREATE FUNCTION tmsctl_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', MESSAGE = TG_ARGV[0];
       END $$""",
    _refuse("sessions_simulated_fixed", "sessions", "UPDATE OF simulated, subject_id",
            "a session's subject and simulated flag never change"),
    _refuse("sessions_kept", "sessions", "DELETE", "sessions are never deleted"),
    _refuse("deliveries_kept", "deliveries", "DELETE", "delivery records are never deleted"),
    _refuse("deliveries_final", "deliveries", "UPDATE", "a finished delivery keeps its outcome",
            condition="(OLD.state <> 'in_progress' AND (NEW.state <> OLD.state "
                      "OR NEW.pulses_delivered <> OLD.pulses_delivered)) "
                      "OR (OLD.resolution IS NOT NULL AND NEW.resolution IS DISTINCT FROM OLD.resolution)"),
    *(_refuse(f"{table}_append_only_{event.lower()}", table, event, f"{table} are append-only")
      for table in _APPEND_ONLY for event in ("UPDATE", "DELETE")),
    # TRUNCATE skips row triggers; nothing of the records may be emptied that way either.
    *(f"CREATE TRIGGER {table}_never_truncated BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
      f"EXECUTE FUNCTION tmsctl_refuse('{table} are never emptied')"
      for table in (*_APPEND_ONLY, "sessions", "deliveries")),
]

ServerMigration = Callable[[Any], None]


def _create_schema_v1(conn: Any) -> None:
    for statement in [*_pg_tables(_SCHEMA_V1), *_PG_V1_EXTRAS]:
        conn.execute(statement)


def _add_replies_confirmed_v2(conn: Any) -> None:
    conn.execute("ALTER TABLE sessions ADD COLUMN replies_confirmed INTEGER NOT NULL DEFAULT 1")


def _add_dose_evidence_v3(conn: Any) -> None:
    conn.execute(
        "ALTER TABLE deliveries ADD COLUMN pulses_uncertain INTEGER NOT NULL DEFAULT 0 CHECK (pulses_uncertain >= 0)"
    )
    conn.execute("ALTER TABLE deliveries ADD COLUMN evidence TEXT")
    conn.execute("DROP TRIGGER deliveries_final ON deliveries")
    conn.execute(_refuse(
        "deliveries_final", "deliveries", "UPDATE", "a finished delivery keeps its outcome",
        condition="(OLD.state <> 'in_progress' AND (NEW.state <> OLD.state "
                  "OR NEW.pulses_delivered <> OLD.pulses_delivered OR NEW.pulses_uncertain <> OLD.pulses_uncertain)) "
                  "OR (OLD.resolution IS NOT NULL AND NEW.resolution IS DISTINCT FROM OLD.resolution)",
    ))
    for event in ("INSERT", "UPDATE"):
        conn.execute(_refuse(
            f"deliveries_dose_bounded_{event.lower()}", "deliveries", event,
            "delivered + uncertain pulses exceed the plan, or a completed delivery has uncertain pulses",
            condition="NEW.pulses_delivered + NEW.pulses_uncertain > NEW.pulses_planned "
                      "OR (NEW.state = 'completed' AND NEW.pulses_uncertain <> 0)",
        ))
    conn.execute(
        "ALTER TABLE sessions DROP CONSTRAINT sessions_status_check, ADD CONSTRAINT sessions_status_check "
        "CHECK (status IN ('planned', 'running', 'paused', 'completed', 'aborted', 'faulted', 'interrupted', "
        "'incomplete'))"
    )


_COURSE_APPEND_ONLY = ("course_plan_changes", "outcome_entries")


def _add_courses_v4(conn: Any) -> None:
    for statement in _pg_tables(_COURSES_V4):
        conn.execute(statement)
    # The course queries pass a list of ids as a JSON array, read with SQLite's json_each(text).
    # A text argument makes this one the match (pg_catalog's json_each takes json and objects only).
    conn.execute("""CREATE FUNCTION json_each(document TEXT) RETURNS TABLE (value TEXT)
                        LANGUAGE sql IMMUTABLE STRICT AS 'SELECT json_array_elements_text(document::json)'""")
    for statement in (
        _refuse("courses_kept", "courses", "DELETE", "courses are never deleted"),
        _refuse("courses_closed_final", "courses", "UPDATE", "a closed course is final",
                condition="OLD.status <> 'active'"),
        _refuse("courses_identity_fixed", "courses", "UPDATE OF subject_id, start_date, created_at",
                "a course's subject and start never change"),
        *(_refuse(f"{table}_append_only_{event.lower()}", table, event, f"{table} are append-only")
          for table in _COURSE_APPEND_ONLY for event in ("UPDATE", "DELETE")),
        *(f"CREATE TRIGGER {table}_never_truncated BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
          f"EXECUTE FUNCTION tmsctl_refuse('{table} are never emptied')"
          for table in (*_COURSE_APPEND_ONLY, "courses")),
    ):
        conn.execute(statement)


def _add_mep_measurements_v5(conn: Any) -> None:
    for statement in _pg_tables(_MEP_MEASUREMENTS_V5):
        conn.execute(statement)
    for event in ("UPDATE", "DELETE"):
        conn.execute(_refuse(f"mep_measurements_append_only_{event.lower()}", "mep_measurements", event,
                             "mep_measurements are append-only"))
    conn.execute("CREATE TRIGGER mep_measurements_never_truncated BEFORE TRUNCATE ON mep_measurements "
                 "FOR EACH STATEMENT EXECUTE FUNCTION tmsctl_refuse('mep_measurements are never emptied')")


PG_MIGRATIONS: tuple[ServerMigration, ...] = (
    _create_schema_v1, _add_replies_confirmed_v2, _add_dose_evidence_v3, _add_courses_v4, _add_mep_measurements_v5,
)
assert len(PG_MIGRATIONS) == len(MIGRATIONS), "every schema version is expressed for both backends"


def read_schema(raw: Any, location: str, *, read_only: bool) -> int | None:
    """The database's schema version; None for an empty database. Refuses another program's tables."""
    (meta,) = raw.execute("SELECT to_regclass('tmsctl_meta') IS NOT NULL").fetchone()
    if meta:
        app_id, version = raw.execute("SELECT application_id, schema_version FROM tmsctl_meta").fetchone()
        if app_id == APPLICATION_ID:
            return int(version)
    (tables,) = raw.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchone()
    if meta or tables:
        raise RecordsError(
            f"the database {location} holds another program's tables ({tables}), not tmsctl records",
            path=location,
            hint="point --db or TMSCTL_DB at a database of its own for tmsctl (createdb tmsctl)",
        )
    return None


def open_server_schema(conn: ServerConnection, location: str, *, create: bool, read_only: bool) -> int:
    """Check what the database is and bring it to this tmsctl's schema; returns the version."""
    raw = conn.raw
    try:
        (fsync,) = raw.execute("SHOW fsync").fetchone()
        version = read_schema(raw, location, read_only=read_only)
    except Exception as exc:  # psycopg's errors, typed below
        import psycopg

        if isinstance(exc, psycopg.Error):
            _wrap_server(exc, location, "reading the schema", raw)
        raise
    if fsync != "on":
        raise RecordsError(
            f"the records server {location} runs with fsync = {fsync}: no commit on it is durable",
            path=location,
            hint="a train's record must survive a power cut before the train fires; set fsync = on on the server",
        )
    if version is None and (read_only or not create):
        raise DatabaseNotFound(
            f"the database {location} holds no tmsctl records yet",
            path=location,
            hint=f"check the URL for a typo; to make it a new, empty records database: `tmsctl db init {location}`",
        )
    if read_only:
        if version != len(PG_MIGRATIONS):
            hint = "upgrade tmsctl" if (version or 0) > len(PG_MIGRATIONS) else (
                f"open it once with write access to upgrade it: `tmsctl db init {location}`")
            raise RecordsError(
                f"the records database {location} has schema version {version}; this tmsctl reads "
                f"version {len(PG_MIGRATIONS)}",
                path=location, hint=hint,
            )
        return int(version or 0)
    return apply_server_migrations(raw, PG_MIGRATIONS, location=location)


def _wrap_server(exc: Exception, location: str, doing: str, raw: Any) -> None:
    try:
        _raise_server_error(exc, connection_lost=bool(getattr(raw, "broken", False)))
    except ServerError as typed:
        raise server_error(typed, location, doing) from exc


def apply_server_migrations(raw: Any, migrations: Sequence[ServerMigration], *, location: str) -> int:
    """Bring the server database to ``len(migrations)``, each step in its own transaction (under
    the writer lock, so two workstations opening at once migrate once)."""
    import psycopg

    target = len(migrations)
    version = 0
    while True:
        try:
            with raw.transaction():
                raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITER_LOCK)
                version = read_schema(raw, location, read_only=False) or 0
                if version > target:
                    raise RecordsError(
                        f"the records database {location} has schema version {version}; this tmsctl knows "
                        f"versions up to {target}",
                        path=location,
                        hint="upgrade tmsctl; an older version must not write to a newer database",
                    )
                if version == target:
                    return version
                migrations[version](raw)
                raw.execute("UPDATE tmsctl_meta SET schema_version = %s", (version + 1,))
        except psycopg.Error as exc:
            _wrap_server(exc, location, f"migrating the schema to version {version + 1}", raw)


def _one_row(conn: ServerConnection, query: str) -> Row:
    """The row of a query that always returns one (a setting; the one meta row)."""
    row = conn.execute(query).fetchone()
    if row is None:
        raise ServerError(f"{query} returned no row", sqlstate=None, connection_lost=False)
    return row


def server_storage_settings(conn: ServerConnection) -> tuple[str, str, int, int]:
    """(journal, synchronous_commit, schema version, application id) as the server reports them."""
    version = _one_row(conn, "SELECT current_setting('server_version')")
    synchronous = _one_row(conn, "SELECT current_setting('synchronous_commit')")
    meta = _one_row(conn, "SELECT schema_version, application_id FROM tmsctl_meta")
    return (f"postgresql {version[0]} (server WAL)", str(synchronous[0]).upper(), int(meta[0]), int(meta[1]))


def server_integrity_check(conn: ServerConnection) -> tuple[str, ...]:
    """What a server can check that it does not enforce anyway: our triggers and constraints are in
    place and valid, and the schema is this tmsctl's."""
    problems: list[str] = []
    (version,) = _one_row(conn, "SELECT schema_version FROM tmsctl_meta")
    if version != len(PG_MIGRATIONS):
        problems.append(f"schema version {version}, expected {len(PG_MIGRATIONS)}")
    expected = {f"{t}_append_only_{e}" for t in _APPEND_ONLY for e in ("update", "delete")} | {
        "sessions_simulated_fixed", "sessions_kept", "deliveries_kept", "deliveries_final",
        "deliveries_dose_bounded_insert", "deliveries_dose_bounded_update",
        "courses_kept", "courses_closed_final", "courses_identity_fixed",
        *(f"{t}_append_only_{e}" for t in (*_COURSE_APPEND_ONLY, "mep_measurements") for e in ("update", "delete")),
    }
    present = {row[0] for row in conn.execute(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'").fetchall()}
    problems += [f"trigger {name} is missing or disabled" for name in sorted(expected - present)]
    for (name,) in conn.execute(
        "SELECT conname FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND NOT convalidated"
    ).fetchall():
        problems.append(f"constraint {name} is not validated")
    return tuple(problems) or ("ok",)
