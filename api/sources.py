"""Registered sources: named curate-config source entries kept in the state file.

A source is registered once (``POST /sources``) with its path confined to the data roots and
resolved, and must match something on disk then. A curate config's ``sources`` list may then
name it as a plain string instead of spelling the entry out; ``resolve_sources`` puts the
stored entry in its place. Every statement is parameterised.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import duckdb

from api.paths import DataRoots, PathError
from api.state import Store, utc_now
from pipelines.config import SourceConfig

_COLUMNS = "name, spec, created_at"


class SourceExistsError(ValueError):
    """A source of that name is registered already."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a source named {name!r} is registered already")


class UnknownSourceError(PathError):
    """A curate config names a source that is not registered; ``field`` is ``sources.N``."""

    def __init__(self, field: str, name: str) -> None:
        self.field, self.path = field, name
        self.message = f"no registered source {name!r}"
        ValueError.__init__(self, f"field {field}: {self.message}")


def register_source(store: Store, roots: DataRoots, spec: SourceConfig) -> dict[str, Any]:
    """Store ``spec`` with its path confined and resolved; returns the record. Raises
    ``PathError`` (field ``path``) for a path outside the roots or matching nothing, and
    ``SourceExistsError`` when the name is taken."""
    path = roots.confine_glob(spec.path, "path")
    if not any(_readable(spec, match) for match in glob.iglob(str(path), recursive=True)):
        raise PathError("path", spec.path, "matches no input file" + (" or folder" if _tree(spec) else ""))
    stored = spec.model_copy(update={"path": str(path)})
    text = json.dumps(stored.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    created_at = utc_now()
    try:
        store.execute(f"INSERT INTO sources ({_COLUMNS}) VALUES (?, ?, ?)", [spec.name, text, created_at])
    except duckdb.ConstraintException as error:
        raise SourceExistsError(spec.name) from error
    return _record((spec.name, text, created_at))


def get_source(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.query(f"SELECT {_COLUMNS} FROM sources WHERE name = ?", [name])
    return _record(rows[0]) if rows else None


def list_sources(store: Store, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of sources by name, and how many there are."""
    rows = store.query(f"SELECT {_COLUMNS} FROM sources ORDER BY name LIMIT ? OFFSET ?", [limit, offset])
    total = store.query("SELECT count(*) FROM sources")[0][0]
    return [_record(row) for row in rows], int(total)


def delete_source(store: Store, name: str) -> bool:
    """Forget a source; False when there was none of that name."""
    return bool(store.execute("DELETE FROM sources WHERE name = ? RETURNING name", [name]))


def resolve_sources(store: Store, entries: list[Any]) -> list[dict[str, Any]]:
    """A curate config's ``sources`` list with every plain string (a registered source's name)
    replaced by the stored entry; other entries are returned as they are. Raises
    ``UnknownSourceError`` (a ``PathError``, field ``sources.N``) for a name not registered."""
    resolved = []
    for number, entry in enumerate(entries):
        if isinstance(entry, str):
            record = get_source(store, entry)
            if record is None:
                raise UnknownSourceError(f"sources.{number}", entry)
            entry = record["spec"]
        resolved.append(entry)
    return resolved


def _tree(spec: SourceConfig) -> bool:
    from pipelines.readers.tree import TREE_FORMATS

    return spec.format in TREE_FORMATS


def _readable(spec: SourceConfig, match: str) -> bool:
    """A file, or for text, code and html sources a folder (read recursively)."""
    return os.path.isfile(match) or (_tree(spec) and os.path.isdir(match))


def _record(row: tuple) -> dict[str, Any]:
    name, spec, created_at = row
    return {"name": name, "spec": json.loads(spec), "created_at": created_at.isoformat() + "Z"}


__all__ = [
    "SourceExistsError",
    "UnknownSourceError",
    "delete_source",
    "get_source",
    "list_sources",
    "register_source",
    "resolve_sources",
]
