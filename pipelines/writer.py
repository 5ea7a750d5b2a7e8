"""The sink of a curation run: routes every work row to a domain shard, the dropped set or
quarantine, counts everything for the manifest, and writes Parquet atomically (a temporary
name renamed into place, so a reader never takes a half-written shard as whole).

Rows arrive sorted by (status, domain, id), so shard contents and names are deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.manifest import Counts, DomainTotals, InputRecord, ShardRecord, sha256_file
from corpus.schema import (
    DROPPED_SCHEMA,
    PARQUET_COMPRESSION,
    QUARANTINE_SCHEMA,
    SHARD_SCHEMA,
    shards_dir,
)
from pipelines.stages import DROPPED, KEPT, QUARANTINED

DUPLICATE_ID = "duplicate id"


class _RollingParquet:
    """Writes ``prefix-00000.parquet``, ``-00001``, ... of at most ``max_rows`` rows each."""

    def __init__(self, directory: Path, schema: pa.Schema, max_rows: int, prefix: str = "part") -> None:
        self.directory, self.schema, self.max_rows, self.prefix = directory, schema, max_rows, prefix
        self.finished: list[tuple[Path, int]] = []
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.max_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{self.prefix}-{len(self.finished):05d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        table = pa.Table.from_pylist(self._pending, schema=self.schema)
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
        os.replace(tmp, final)
        self.finished.append((final, table.num_rows))
        self._pending = []

    def close(self) -> list[tuple[Path, int]]:
        self._flush()
        return self.finished


def _scores_map(scores_json: str | None) -> list[tuple[str, float]]:
    return sorted(json.loads(scores_json).items()) if scores_json else []


class CurationSink:
    def __init__(self, out: str | Path, shard_rows: int, inputs: list[tuple[str, str]]) -> None:
        """``inputs`` are the (source, file) pairs read: an empty file is still an input, with
        zero documents, in the manifest."""
        self.out = Path(out)
        for stale in ("shards", "dropped", "quarantine"):
            shutil.rmtree(self.out / stale, ignore_errors=True)
        self.shard_rows = shard_rows
        self._domains: dict[str, _RollingParquet] = {}
        self._dropped = _RollingParquet(self.out / "dropped", DROPPED_SCHEMA, shard_rows)
        self._quarantine = _RollingParquet(self.out / "quarantine", QUARANTINE_SCHEMA, shard_rows)
        self.per_file: Counter[tuple[str, str]] = Counter(dict.fromkeys(inputs, 0))
        self.dropped: Counter[str] = Counter()
        self.quarantined = 0
        self.domain_totals: dict[str, DomainTotals] = defaultdict(DomainTotals)
        self._seen_ids: dict[str, str] = {}

    def add(self, row: dict[str, Any]) -> None:
        self.per_file[(row["source"], row["file"])] += 1
        where = f"{row['file']}:{row['location']}"
        if row["status"] == KEPT and row["id"] in self._seen_ids:
            row = {**row, "status": QUARANTINED,
                   "reason": f"{DUPLICATE_ID} {row['id']!r} (first at {self._seen_ids[row['id']]})"}
        if row["status"] == KEPT:
            self._seen_ids[row["id"]] = where
            self._keep(row)
        elif row["status"] == DROPPED:
            self.dropped[row["reason"]] += 1
            self._dropped.add({**row, "scores": _scores_map(row["scores"])})
        else:
            self.quarantined += 1
            self._quarantine.add(
                {"source": row["source"], "file": row["file"], "location": row["location"],
                 "error": row["reason"], "raw": (row["text"] or "")[:200]}
            )

    def _keep(self, row: dict[str, Any]) -> None:
        domain = row["domain"]
        if domain not in self._domains:
            self._domains[domain] = _RollingParquet(
                shards_dir(self.out) / f"domain={domain}", SHARD_SCHEMA, self.shard_rows
            )
        self._domains[domain].add({**row, "scores": _scores_map(row["scores"])})
        totals = self.domain_totals[domain]
        totals.documents += 1
        totals.chars += row["n_chars"]
        totals.tokens += row["n_tokens"]

    def close(self) -> tuple[Counts, list[InputRecord], list[ShardRecord]]:
        shards = []
        for domain, writer in sorted(self._domains.items()):
            for path, rows in writer.close():
                shards.append(
                    ShardRecord(
                        path=str(path.relative_to(self.out)), domain=domain, rows=rows,
                        bytes=path.stat().st_size, sha256=sha256_file(path),
                    )
                )
        self._dropped.close()
        self._quarantine.close()
        kept = sum(totals.documents for totals in self.domain_totals.values())
        counts = Counts(
            input=sum(self.per_file.values()),
            kept=kept,
            dropped=dict(sorted(self.dropped.items())),
            quarantined=self.quarantined,
        )
        inputs = [
            InputRecord(source=source, path=path, documents=n)
            for (source, path), n in sorted(self.per_file.items())
        ]
        return counts, inputs, shards
