"""``midtrain curate``: contract 2 in, contract 1 out, on Ray Data.

read (one task per file) → per-document stage (normalise, domain, langid, filters, tokens,
quality) → exact dedup (hash shuffle) → sorted stream into the sink on the driver, which
writes shards, dropped and quarantine sets and the manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from corpus.manifest import Manifest, write_manifest
from filters.tokens import TokenCounter
from pipelines.config import CurateConfig
from pipelines.dedup import exact_dedup
from pipelines.readers import read_file
from pipelines.runtime import ensure_ray
from pipelines.stages import KEPT, WORK_SCHEMA, process_batch
from pipelines.writer import CurationSink

Progress = Callable[[str], None]


class CurationError(ValueError):
    """Bad curation input found before any work starts (e.g. a glob that matches nothing)."""


def config_hash(config: CurateConfig) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_tasks(config: CurateConfig) -> list[dict]:
    tasks = []
    for source in config.sources:
        files = source.files()
        if not files:
            raise CurationError(f"source {source.name!r}: path {source.path!r} matches no files")
        tasks.extend({"source": source.model_dump(), "path": path} for path in files)
    return tasks


def run_curation(config: CurateConfig, progress: Progress = print) -> Manifest:
    """Curate every source of ``config`` into ``config.output``; returns the manifest."""
    import ray.data
    from ray.data.expressions import col

    started, clock = _now(), time.perf_counter()
    tasks = _read_tasks(config)
    progress(f"curate: {len(tasks)} files from {len(config.sources)} sources → {config.output}")
    ensure_ray()
    stage_seconds: dict[str, float] = {}

    raw = ray.data.from_items(tasks, override_num_blocks=len(tasks)).flat_map(read_file)
    processed = raw.map_batches(
        process_batch,
        fn_kwargs={"config_json": config.model_dump_json()},
        batch_size=config.batch_size,
        batch_format="pyarrow",
        concurrency=config.concurrency,
    ).materialize()
    stage_seconds["read_and_filter"] = round(time.perf_counter() - clock, 2)
    progress(f"curate: read and filtered {processed.count()} records "
             f"in {stage_seconds['read_and_filter']:.1f}s")

    final = processed
    if config.exact_dedup:
        mark = time.perf_counter()
        kept = processed.filter(expr=col("status") == KEPT)
        others = processed.filter(expr=col("status") != KEPT)
        final = exact_dedup(kept, config.shuffle_partitions).union(others)
        final = final.materialize()
        stage_seconds["exact_dedup"] = round(time.perf_counter() - mark, 2)
        progress(f"curate: exact dedup in {stage_seconds['exact_dedup']:.1f}s")

    mark = time.perf_counter()
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    sink = CurationSink(out, config.shard_rows, [(t["source"]["name"], t["path"]) for t in tasks])
    ordered = final.sort(["status", "domain", "id"])
    for batch in ordered.iter_batches(batch_format="pyarrow", batch_size=4096):
        for row in batch.cast(WORK_SCHEMA).to_pylist():
            sink.add(row)
    counts, inputs, shards = sink.close()
    stage_seconds["write"] = round(time.perf_counter() - mark, 2)

    manifest = Manifest(
        run_id=uuid.uuid4().hex[:12],
        config_hash=config_hash(config),
        started_at=started,
        finished_at=_now(),
        tokenizer=TokenCounter(config.tokenizer).reference,
        inputs=inputs,
        counts=counts,
        domains={domain: totals for domain, totals in sorted(sink.domain_totals.items())},
        shards=shards,
        stage_seconds=stage_seconds,
    )
    write_manifest(out, manifest)
    progress(
        f"curate: {counts.input} in, {counts.kept} kept, {sum(counts.dropped.values())} dropped, "
        f"{counts.quarantined} quarantined in {time.perf_counter() - clock:.1f}s"
    )
    return manifest
