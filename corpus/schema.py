"""Contract 1: the curated shard schema that pipelines/ writes and mixer/ and api/ read.

One row per kept document, stored under ``OUT/shards/domain=<domain>/part-*.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

DOMAINS: tuple[str, ...] = ("web", "code", "math", "instruction", "reasoning", "synthetic")

SHARD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("lang_score", pa.float64(), nullable=False),
        pa.field("quality", pa.float64(), nullable=False),
        pa.field("scores", pa.map_(pa.string(), pa.float64()), nullable=False),
        pa.field("tags", pa.list_(pa.string()), nullable=False),
        pa.field("n_chars", pa.int64(), nullable=False),
        pa.field("n_tokens", pa.int64(), nullable=False),
        pa.field("dup_cluster", pa.string(), nullable=True),
        pa.field("meta", pa.string(), nullable=False),
    ]
)

SHARD_COLUMNS: tuple[str, ...] = tuple(SHARD_SCHEMA.names)

# Dropped documents keep their text so a user can audit a decision, and the stage that
# dropped them with the document's size then, so a report can draw the funnel.
DROPPED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("stage", pa.string()),  # the filter's name, e.g. "gopher_quality"
        pa.field("reason", pa.string()),  # the filter's reason, e.g. "gopher_short_doc"
        pa.field("domain", pa.string()),  # null when dropped before domain tagging
        pa.field("lang", pa.string()),
        pa.field("text", pa.string()),
        pa.field("n_chars", pa.int64()),
        pa.field("n_tokens", pa.int64()),  # reference tokens of the text as it was dropped
        pa.field("scores", pa.map_(pa.string(), pa.float64())),
        pa.field("dup_cluster", pa.string()),
        pa.field("meta", pa.string()),
        pa.field("file", pa.string()),
        pa.field("location", pa.string()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("file", pa.string()),
        pa.field("location", pa.string()),  # "line 17" or "row 3" or "file"
        pa.field("error", pa.string()),
        pa.field("raw", pa.string()),  # the first bytes of the record, for debugging
    ]
)

PARQUET_COMPRESSION = "zstd"


def shards_dir(out: str | Path) -> Path:
    return Path(out) / "shards"


def shard_glob(out: str | Path) -> str:
    """Glob over every curated shard of a run, for DuckDB's read_parquet."""
    return str(shards_dir(out) / "domain=*" / "*.parquet")
