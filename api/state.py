"""The service's own state in an embedded DuckDB file, with ordered schema migrations applied
on open: mixture versions (immutable: saving a name that exists adds the next version),
registered sources, and the records of launched jobs (``api.jobs``).

DuckDB rather than SQLite because the rest of the product already queries Parquet through
DuckDB; one embedded engine is one dependency less. A DuckDB file admits one writing process,
so one API process owns the state file (uvicorn with a single worker, as ``serve`` runs it).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import duckdb

from mixer.spec import MixtureSpec

STATE_ENV = "MIDTRAIN_STATE"
DEFAULT_STATE = "runs/midtrain-state.duckdb"

Migration = Callable[[duckdb.DuckDBPyConnection], None]
T = TypeVar("T")


def _create_mixtures(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(
        """
        CREATE TABLE mixtures (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            sha256 VARCHAR NOT NULL,
            spec JSON NOT NULL,
            created_at TIMESTAMP NOT NULL,  -- UTC
            PRIMARY KEY (name, version)
        )
        """
    )


def _create_sources(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(
        """
        CREATE TABLE sources (
            name VARCHAR PRIMARY KEY,
            spec JSON NOT NULL,  -- a curate config's source entry (pipelines.config.SourceConfig)
            created_at TIMESTAMP NOT NULL
        )
        """
    )


def _create_jobs(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(
        """
        CREATE TABLE jobs (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,       -- curation | mix-build | training
            status VARCHAR NOT NULL,     -- running | succeeded | failed | cancelled
            request JSON NOT NULL,       -- what the job runs: the validated spec, paths resolved
            output VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            attempts INTEGER NOT NULL,   -- launches: 1, plus one per resume after a lost worker
            error VARCHAR,
            result JSON
        )
        """
    )


# Append only: a migration, once released, never changes; its position (from 1) is the schema
# version it brings the database to.
MIGRATIONS: list[Migration] = [_create_mixtures, _create_sources, _create_jobs]


class SchemaTooNewError(RuntimeError):
    """The state file was written by a newer midtrain; opening it could corrupt it."""


def migrate(connection: duckdb.DuckDBPyConnection, migrations: list[Migration] | None = None) -> int:
    """Apply the migrations this database has not seen, each in its own transaction with its
    version row, so a failed migration leaves the previous version intact. Returns the schema
    version."""
    migrations = MIGRATIONS if migrations is None else migrations
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] if row and row[0] is not None else 0
    if current > len(migrations):
        raise SchemaTooNewError(
            f"state schema version {current} is newer than this midtrain knows ({len(migrations)})"
        )
    for version, migration in enumerate(migrations[current:], start=current + 1):
        connection.execute("BEGIN TRANSACTION")
        try:
            migration(connection)
            connection.execute("INSERT INTO schema_version VALUES (?)", [version])
            connection.execute("COMMIT")
        except Exception:
            connection.execute("ROLLBACK")
            raise
    return len(migrations)


def canonical_spec(spec: MixtureSpec) -> str:
    """The spec as compact JSON with sorted keys and defaults filled in, so two requests that
    mean the same mixture hash the same."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def state_path(path: str | Path | None = None) -> Path:
    """The argument, else ``$MIDTRAIN_STATE``, else the default under ``runs/``."""
    return Path(path or os.environ.get(STATE_ENV) or DEFAULT_STATE)


_COLUMNS = "name, version, sha256, spec, created_at"


def utc_now() -> datetime:
    """Timestamps are stored naive, in UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


READ_CACHE_ENTRIES = 4096
DERIVED_CACHE_BYTES = 64 << 20  # the serialised responses: at most this much, then start over


class Store:
    """The state file, used from FastAPI's thread pool and the reconciler's thread.

    Each thread has its own DuckDB cursor (``connection.cursor()``: an independent connection
    to the same database, which a thread may use while others use theirs), so reads never wait
    for a lock. Writes are serialised by one lock, and each multi-statement write is a
    transaction, so two writers never interleave (the primary keys guard the rest).

    This process is the state file's only writer (DuckDB locks the file), so a read's rows stay
    valid until the next write here: reads are cached per (statement, parameters) and every
    write bumps ``generation``, which makes every cached read stale. A read computed while a
    write lands is stored under the generation seen before it, so it is never served after the
    write returns. Values derived from reads alone (the API's serialised responses) share that
    cache (``cached``). Every statement is parameterised; names never become SQL text. Mixture
    versions are methods here; other tables (``api.jobs``, the sources) go through ``query``
    (reads) and ``execute`` (writes)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = state_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = duckdb.connect(str(self.path))
        self._write_lock = threading.Lock()
        self._cursors_lock = threading.Lock()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._local = threading.local()
        self.generation = 0
        self._cached: dict[tuple, tuple[int, Any]] = {}  # key: (generation, value)
        self._cached_bytes = 0  # of the bytes and str values in _cached
        try:
            with self._write_lock:
                self.schema_version = migrate(self._connection)
        except Exception:
            self._connection.close()
            raise

    def close(self) -> None:
        with self._write_lock, self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
            self._connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor, made on its first use."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._cursors_lock:
                cursor = self._connection.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        """A read-only parameterised statement's rows, from the read cache while no write has
        happened since they were read."""
        def read() -> list[tuple]:
            result = self._cursor().execute(sql, parameters or [])
            return result.fetchall() if result.description else []

        return list(self.cached(("query", sql, tuple(parameters or ())), read))

    def cached(self, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()``, a value derived from this store's reads only (a query's rows, a
        response's JSON), cached under ``key`` until the next write. A value computed while a
        write lands is kept under the generation seen before it, so it is never returned after
        the write. The value is shared: callers must not change it."""
        generation = self.generation
        cached = self._cached.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        value = compute()
        size = len(value) if isinstance(value, (bytes, str)) else 0
        if len(self._cached) >= READ_CACHE_ENTRIES or self._cached_bytes + size > DERIVED_CACHE_BYTES:
            self._cached.clear()  # bounded in entries and in bytes: pages of 500 mixtures are large
            self._cached_bytes = 0
        self._cached[key] = (generation, value)
        self._cached_bytes += size
        return value

    def execute(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        """A parameterised statement that may write, under the write lock; its rows (none for a
        write without RETURNING)."""
        with self._write_lock:
            try:
                result = self._cursor().execute(sql, parameters or [])
                return result.fetchall() if result.description else []
            finally:
                self._wrote()

    def _wrote(self) -> None:
        """After a write (under the write lock): every cached read is stale."""
        self.generation += 1
        self._cached.clear()
        self._cached_bytes = 0

    def create_mixture(self, spec: MixtureSpec) -> dict[str, Any]:
        """Store ``spec`` as the next version of its name (1 for a new name); returns the record."""
        text = canonical_spec(spec)
        digest = hashlib.sha256(text.encode()).hexdigest()
        created_at = utc_now()
        with self._write_lock:
            connection = self._cursor()
            # The lock serialises this process; the transaction and the primary key keep two
            # versions from ever sharing a number even so.
            connection.execute("BEGIN TRANSACTION")
            try:
                row = connection.execute(
                    "SELECT coalesce(max(version), 0) FROM mixtures WHERE name = ?", [spec.name]
                ).fetchone()
                version = int(row[0]) + 1
                connection.execute(
                    f"INSERT INTO mixtures ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    [spec.name, version, digest, text, created_at],
                )
                connection.execute("COMMIT")
            except Exception:
                connection.execute("ROLLBACK")
                raise
            finally:
                self._wrote()
        return _record((spec.name, version, digest, text, created_at))

    def get_mixture(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version of a mixture, the latest when ``version`` is None; None when absent."""
        query = f"SELECT {_COLUMNS} FROM mixtures WHERE name = ?"
        parameters: list[Any] = [name]
        if version is None:
            query += " ORDER BY version DESC LIMIT 1"
        else:
            query += " AND version = ?"
            parameters.append(version)
        rows = self.query(query, parameters)
        return _record(rows[0]) if rows else None

    def list_mixtures(self, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The latest version of each mixture, by name; and how many names there are."""
        rows = self.query(
            f"""
            SELECT {_COLUMNS} FROM mixtures
            QUALIFY version = max(version) OVER (PARTITION BY name)
            ORDER BY name LIMIT ? OFFSET ?
            """,
            [limit, offset],
        )
        total = self.query("SELECT count(DISTINCT name) FROM mixtures")[0][0]
        return [_record(row) for row in rows], int(total)

    def mixture_versions(self, name: str, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Every version of one mixture, oldest first; and how many there are (0: no such name)."""
        rows = self.query(
            f"SELECT {_COLUMNS} FROM mixtures WHERE name = ? ORDER BY version LIMIT ? OFFSET ?",
            [name, limit, offset],
        )
        total = self.query("SELECT count(*) FROM mixtures WHERE name = ?", [name])[0][0]
        return [_record(row) for row in rows], int(total)


def _record(row: tuple) -> dict[str, Any]:
    name, version, digest, spec, created_at = row
    return {
        "name": name,
        "version": int(version),
        "sha256": digest,
        "spec": json.loads(spec),
        "created_at": created_at.isoformat() + "Z",
    }
