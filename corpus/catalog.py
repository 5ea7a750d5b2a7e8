"""The DuckDB catalog over a curation run's shards: queries, never copies, of the Parquet."""

from __future__ import annotations

from pathlib import Path

import duckdb

from corpus.schema import shard_glob, shards_dir


def connect(out: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a ``docs`` view over every shard of ``out``."""
    if not any(shards_dir(out).glob("domain=*/*.parquet")):
        raise FileNotFoundError(f"{shards_dir(out)}: no shards; is this a finished curation output?")
    connection = duckdb.connect()
    # The path is ours (derived from OUT), not request data, and DuckDB cannot bind a
    # parameter in a view definition; quote it as a SQL string literal.
    glob = shard_glob(out).replace("'", "''")
    connection.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet('{glob}', union_by_name = true)")
    return connection


def domain_table(out: str | Path) -> list[dict]:
    """Per-domain documents, characters, tokens, mean quality and long-document count."""
    connection = connect(out)
    rows = connection.execute(
        """
        SELECT domain,
               count(*) AS documents,
               sum(n_chars) AS chars,
               sum(n_tokens) AS tokens,
               round(avg(quality), 3) AS mean_quality,
               count(*) FILTER (WHERE list_contains(tags, 'long_doc')) AS long_docs,
               count(DISTINCT source) AS sources
        FROM docs GROUP BY domain ORDER BY domain
        """
    ).fetchall()
    names = ["domain", "documents", "chars", "tokens", "mean_quality", "long_docs", "sources"]
    return [dict(zip(names, row)) for row in rows]


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
