"""Selectors compiled to parameterised DuckDB queries over curated shards.

A :class:`~mixer.spec.Selector` becomes a ``WHERE`` clause whose SQL text is fixed by this
module; every user value (domains, source names, tags, thresholds, even the shard globs) is
bound as a ``?`` parameter, so no spec can change the shape of the query. Token ranges
(``min_tokens``/``max_tokens``) filter on the shards' ``n_tokens`` column, i.e. the curation
run's reference tokenizer, not the mixture's.

Rows come back ordered by ``id`` (then by shard file, for the rare id shared by two corpora),
so a selection is stable whatever order DuckDB scans the files in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from mixer.corpora import shard_globs
from mixer.spec import Selector

SELECTED_COLUMNS: tuple[str, ...] = ("id", "text", "domain", "source", "n_tokens")

# One fixed SQL fragment per selector field; the field's value is the single parameter.
_PREDICATES: dict[str, str] = {
    "domain": "list_contains(?::VARCHAR[], domain)",
    "source": "list_contains(?::VARCHAR[], source)",
    "lang": "list_contains(?::VARCHAR[], lang)",
    "min_quality": "quality >= ?",
    "max_quality": "quality <= ?",
    "tags_any": "list_has_any(tags, ?::VARCHAR[])",
    "tags_none": "NOT list_has_any(tags, ?::VARCHAR[])",
    "min_tokens": "n_tokens >= ?",
    "max_tokens": "n_tokens <= ?",
}


@dataclass(frozen=True)
class CompiledSelector:
    """A ``WHERE`` clause (``TRUE`` for an empty selector) and its parameters, in order."""

    where: str
    params: list[Any]


@dataclass(frozen=True)
class Query:
    sql: str
    params: list[Any]


def compile_selector(selector: Selector) -> CompiledSelector:
    clauses: list[str] = []
    params: list[Any] = []
    for field, predicate in _PREDICATES.items():
        value = getattr(selector, field)
        if value is not None:
            clauses.append(predicate)
            params.append(value)
    return CompiledSelector(where=" AND ".join(clauses) or "TRUE", params=params)


def selection_query(selector: Selector, corpus_dirs: Sequence[str | Path]) -> Query:
    """The full query: selected columns of the matching documents of every corpus, by id."""
    compiled = compile_selector(selector)
    columns = ", ".join(SELECTED_COLUMNS)
    sql = (
        f"SELECT {columns} "
        "FROM read_parquet(?, union_by_name = true, filename = true) "
        f"WHERE {compiled.where} "
        "ORDER BY id, filename"
    )
    return Query(sql=sql, params=[shard_globs(corpus_dirs), *compiled.params])


def selection_rows_query(selector: Selector, files: Sequence[str]) -> Query:
    """Where the matching documents are, for counting: per shard file (as given in ``files``),
    the row numbers of its matches in file order and their distinct domains."""
    compiled = compile_selector(selector)
    sql = (
        "SELECT filename, array_agg(file_row_number ORDER BY file_row_number) AS rows, "
        "array_agg(DISTINCT domain) AS domains "
        "FROM read_parquet(?, union_by_name = true, filename = true, file_row_number = true) "
        f"WHERE {compiled.where} "
        "GROUP BY filename ORDER BY filename"
    )
    return Query(sql=sql, params=[list(files), *compiled.params])


def select_documents(
    corpus_dirs: Sequence[str | Path],
    selector: Selector,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """The documents ``selector`` matches, as an Arrow table of :data:`SELECTED_COLUMNS`."""
    query = selection_query(selector, corpus_dirs)
    connection = connection or duckdb.connect()
    return connection.sql(query.sql, params=query.params).to_arrow_table()
