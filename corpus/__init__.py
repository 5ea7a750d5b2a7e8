"""Contracts shared by every stage: shard schema, manifest and the DuckDB catalog."""

from corpus.schema import DOMAINS, SHARD_COLUMNS, SHARD_SCHEMA

__all__ = ["DOMAINS", "SHARD_COLUMNS", "SHARD_SCHEMA"]
