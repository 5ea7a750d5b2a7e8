"""The DuckDB catalog over a curation run's shards: queries, never copies, of the Parquet."""

from __future__ import annotations

from pathlib import Path

import glob as globbing
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from corpus.schema import SHARD_SCHEMA, shard_glob, shards_dir

# The quality quantiles the catalog table shows; the report asks for more.
CATALOG_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


def create_view(connection: duckdb.DuckDBPyConnection, name: str, files: str, schema: pa.Schema) -> None:
    """A view ``name`` over the Parquet files matching the glob ``files``; when none match, an
    empty table of ``schema``, so a query over a stage that wrote nothing counts zero."""
    if not globbing.glob(files):
        connection.register(name, schema.empty_table())
        return
    # The path is ours (derived from OUT), not request data, and DuckDB cannot bind a
    # parameter in a view definition; quote it as a SQL string literal.
    quoted = files.replace("'", "''")
    connection.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{quoted}', union_by_name = true)")


def connect(out: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a ``docs`` view over every shard of ``out``."""
    if not any(shards_dir(out).glob("domain=*/*.parquet")):
        raise FileNotFoundError(f"{shards_dir(out)}: no shards; is this a finished curation output?")
    connection = duckdb.connect()
    create_view(connection, "docs", shard_glob(out), SHARD_SCHEMA)
    return connection


def quantile_label(q: float) -> str:
    """``0.1`` → ``quality_p10``."""
    return f"quality_p{round(q * 100)}"


def domain_rows(
    connection: duckdb.DuckDBPyConnection, quantiles: Sequence[float] = CATALOG_QUANTILES
) -> list[dict]:
    """Per-domain documents, tokens, characters, quality quantiles and mean, long documents and
    sources, over the ``docs`` view of ``connection``. Quantiles interpolate linearly between
    order statistics (DuckDB's ``quantile_cont``, the same as numpy's default)."""
    rows = connection.execute(
        """
        SELECT domain,
               count(*) AS documents,
               coalesce(sum(n_tokens), 0) AS tokens,
               coalesce(sum(n_chars), 0) AS chars,
               quantile_cont(quality, ?) AS quantiles,
               avg(quality) AS quality_mean,
               count(*) FILTER (WHERE list_contains(tags, 'long_doc')) AS long_docs,
               count(DISTINCT source) AS sources
        FROM docs GROUP BY domain ORDER BY domain
        """,
        [list(quantiles)],
    ).fetchall()
    return [_domain_row(row, quantiles) for row in rows]


def _domain_row(row: tuple, quantiles: Sequence[float]) -> dict:
    domain, documents, tokens, chars, values, mean, long_docs, sources = row
    record = {"domain": domain, "documents": documents, "tokens": int(tokens), "chars": int(chars)}
    record.update({quantile_label(q): value for q, value in zip(quantiles, values)})
    record.update({"quality_mean": mean, "long_docs": long_docs, "sources": sources})
    return record


def domain_table(out: str | Path, quantiles: Sequence[float] = CATALOG_QUANTILES) -> list[dict]:
    """The catalog of ``out``: one row per domain, as :func:`domain_rows` describes."""
    return domain_rows(connect(out), quantiles)


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain aligned text table, numbers right-aligned."""
    if not rows:
        return "(empty)"
    columns = columns or list(rows[0])
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [all(isinstance(row.get(column), (int, float)) for row in rows) for column in columns]

    def render(values: list[str]) -> str:
        return "  ".join(
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric)
        ).rstrip()

    lines = [render(columns), render(["-" * width for width in widths])]
    lines.extend(render(line) for line in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)
