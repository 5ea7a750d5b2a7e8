"""The service's own state in an embedded DuckDB file, with ordered schema migrations applied
on open. Mixtures are immutable: saving a name that exists adds the next version."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb

from mixer.spec import MixtureSpec

DEFAULT_STATE = "runs/midtrain-state.duckdb"


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


# Append only: a migration, once released, never changes; its index is its schema version.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_create_mixtures]


def migrate(connection: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations this database has not seen; returns the schema version."""
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] if row and row[0] is not None else 0
    for version, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        connection.execute("BEGIN TRANSACTION")
        try:
            migration(connection)
            connection.execute("INSERT INTO schema_version VALUES (?)", [version])
            connection.execute("COMMIT")
        except Exception:
            connection.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def canonical_spec(spec: MixtureSpec) -> str:
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class MixtureStore:
    """Mixture versions in DuckDB. One connection guarded by a lock: FastAPI runs handlers on
    a thread pool, and a DuckDB connection is not safe to share across threads unguarded."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or DEFAULT_STATE)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = duckdb.connect(str(self.path))
        self._lock = threading.Lock()
        with self._lock:
            self.schema_version = migrate(self._connection)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def create(self, spec: MixtureSpec) -> dict[str, Any]:
        text = canonical_spec(spec)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            connection = self._connection
            connection.execute("BEGIN TRANSACTION")
            try:
                row = connection.execute(
                    "SELECT coalesce(max(version), 0) FROM mixtures WHERE name = ?", [spec.name]
                ).fetchone()
                version = row[0] + 1
                connection.execute(
                    "INSERT INTO mixtures VALUES (?, ?, ?, ?, ?)",
                    [spec.name, version, digest, text, datetime.now(timezone.utc).replace(tzinfo=None)],
                )
                connection.execute("COMMIT")
            except Exception:
                connection.execute("ROLLBACK")
                raise
        return self.get(spec.name, version)

    def get(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        query = "SELECT name, version, sha256, spec, created_at FROM mixtures WHERE name = ?"
        parameters: list[Any] = [name]
        if version is None:
            query += " ORDER BY version DESC LIMIT 1"
        else:
            query += " AND version = ?"
            parameters.append(version)
        with self._lock:
            row = self._connection.execute(query, parameters).fetchone()
        return _record(row) if row else None

    def list(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The latest version of each mixture, by name."""
        with self._lock:
            rows = self._connection.execute(
                """
                SELECT name, version, sha256, spec, created_at FROM mixtures
                QUALIFY version = max(version) OVER (PARTITION BY name)
                ORDER BY name LIMIT ? OFFSET ?
                """,
                [limit, offset],
            ).fetchall()
            total = self._connection.execute("SELECT count(DISTINCT name) FROM mixtures").fetchone()[0]
        return [_record(row) for row in rows], total


def _record(row: tuple) -> dict[str, Any]:
    name, version, digest, spec, created_at = row
    return {
        "name": name,
        "version": version,
        "sha256": digest,
        "spec": json.loads(spec),
        "created_at": created_at.isoformat() + "Z",
    }
