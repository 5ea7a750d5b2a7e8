"""Parquet, streamed in row batches. The schema is checked once, before any row: a file with
no usable text column is one quarantined input with one message, not one error per row."""

from __future__ import annotations

import os
from typing import Any, Iterator

from pipelines.readers.records import document, record

BATCH_ROWS = 256  # small batches bound memory when documents are large


def read_parquet(source: dict, path: str) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    if os.path.getsize(path) == 0:
        return  # an empty file holds no records (pyarrow would call it corrupt)
    row = 0
    try:
        parquet = pq.ParquetFile(path)
        problem = schema_problem(parquet.schema_arrow, source["text_field"])
        if problem:
            rows = parquet.metadata.num_rows
            yield record(source, path, "schema", error=f"{problem}; none of its {rows:,} rows read")
            return
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for fields in batch.to_pylist():
                row += 1
                yield document(source, path, f"row {row}", fields)
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
        yield record(source, path, f"after row {row}", error=f"unreadable Parquet: {error}")


def schema_problem(schema: Any, text_field: str) -> str | None:
    """Why ``schema`` cannot give documents, or None when its text column is a string."""
    import pyarrow as pa

    if text_field not in schema.names:
        return f"Parquet schema has no column {text_field!r} (columns: {', '.join(schema.names)})"
    kind = schema.field(text_field).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        return f"Parquet column {text_field!r} is {kind}, not a string"
    return None
