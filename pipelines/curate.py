"""``midtrain curate``: contract 2 in, contract 1 out.

1. **Stage** (Ray Data, one task per input file; see ``staging``): read, normalise, tag,
   filter, count tokens and score every record, into ``OUT/.staging/``.
2. **Fuzzy dedup** (Ray; see ``fuzzy``): near-duplicate components over the staged
   signatures and, when given, earlier runs' signatures.
3. **Finalise** (DuckDB over the staged files; see ``finalize``): duplicate ids, exact and
   near-duplicate survivors, optionally semantic dedup of those (Ray; see ``semantic``),
   sorted shards, dropped and quarantine sets, counts.
4. **Record**: ``manifest.json`` (its invariant checked before it is written), then
   ``OUT/report/`` (funnel, quality histograms, ``stats.json``; see ``report``).

``resume=True`` keeps the units an interrupted run of the same config staged and stages only
the rest; the staging area is removed once the manifest is written.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from corpus.manifest import Manifest, sha256_file, write_manifest
from filters.tokens import TokenCounter
from pipelines.config import CurateConfig
from corpus.signatures import reference_files
from pipelines.finalize import EXACT_DEDUP_STAGE, FUZZY_DEDUP_STAGE, SEMANTIC_DEDUP_STAGE, DedupInputs, finalize
from pipelines.fuzzy import fuzzy_components
from pipelines.report import write_report
from pipelines.runtime import ensure_ray
from pipelines.stages import document_stage
from pipelines.staging import (
    CurationError,
    InputUnit,
    is_staged,
    plan_units,
    reset_staging,
    stage_row,
    staging_dir,
)

__all__ = ["CurationError", "config_hash", "run_curation"]

Progress = Callable[[str], None]


def model_digests(config: CurateConfig) -> dict[str, str]:
    """sha256 of every model file the run loads (quality and domain classifiers, reference
    tokenizer, a custom language-ID model): a retrained model changes the output as surely as a config."""
    paths = [*config.quality.classifiers.values(), config.domain.classifier, config.tokenizer,
             config.language.model, *(spec.path for spec in config.decontamination.sets)]
    return {str(path): sha256_file(path) for path in sorted({p for p in paths if p})}


def config_hash(config: CurateConfig, models: dict[str, str] | None = None) -> str:
    """The config and the contents of the models it names (``models``: their digests, when
    already computed); resume trusts staging only under it."""
    models = model_digests(config) if models is None else models
    canonical = json.dumps({"config": config.model_dump(mode="json"), "models": models}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stage_on_ray(units: list[InputUnit], config: CurateConfig, directory: Path) -> tuple[int, float]:
    """One Ray Data task per input unit; returns the records staged and the seconds the tasks
    spent on them (against the wall time, the parallel efficiency)."""
    import ray.data

    ensure_ray()
    staged = ray.data.from_items([unit.model_dump() for unit in units], override_num_blocks=len(units)).map(
        stage_row,
        fn_kwargs={"config_json": config.model_dump_json(), "directory": str(directory),
                   "batch_size": config.batch_size},
        num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=config.concurrency),
    )
    rows = staged.take_all()
    return sum(row["records"] for row in rows), sum(row["seconds"] for row in rows)


def _file_count(units: list[InputUnit]) -> int:
    return len({(unit.source, file.path) for unit in units for file in unit.files})


def run_curation(config: CurateConfig, progress: Progress = print, resume: bool = False) -> Manifest:
    """Curate every source of ``config`` into ``config.output``; returns the manifest."""
    started, clock = _now(), time.perf_counter()
    out = Path(config.output)
    units = plan_units(config)
    models = model_digests(config)  # hashing the model files once: they can be tens of MB
    digest = config_hash(config, models)
    directory = staging_dir(out, digest)
    if not resume:
        reset_staging(out)
    # Building the chain here checks its order before any task starts.
    stages = document_stage(config.model_dump_json()).stage_names()
    if config.exact_dedup:
        stages.append(EXACT_DEDUP_STAGE)
    if config.fuzzy_dedup.enabled:
        stages.append(FUZZY_DEDUP_STAGE)
    if config.semantic_dedup.enabled:
        stages.append(SEMANTIC_DEDUP_STAGE)

    pending = [unit for unit in units if not (resume and is_staged(directory, unit))]
    resumed = len(units) - len(pending)
    progress(f"curate: {_file_count(units)} files in {len(units)} units from {len(config.sources)} "
             f"sources → {out}" + (f" ({resumed} units already staged, resuming)" if resume else ""))
    stage_seconds: dict[str, float] = {}
    if pending:
        records, busy = _stage_on_ray(pending, config, directory)
        stage_seconds["stage"] = round(time.perf_counter() - clock, 2)
        stage_seconds["stage_task_seconds"] = round(busy, 2)
        progress(f"curate: staged {records} records from {len(pending)} units "
                 f"in {stage_seconds['stage']:.1f}s ({busy:.1f}s of task time)")

    staged = [directory / unit.staged_name() for unit in units]
    components: list[str] = []
    earlier: list[str] = []
    fuzzy = config.fuzzy_dedup
    if fuzzy.enabled:
        mark = time.perf_counter()
        earlier = [path for folder in fuzzy.reference for path in reference_files(folder, fuzzy.scheme())]
        found = fuzzy_components([str(path) for path in staged], earlier, fuzzy.scheme(), fuzzy.threshold,
                                 directory / "fuzzy")
        components = found.components
        stage_seconds[FUZZY_DEDUP_STAGE] = round(time.perf_counter() - mark, 2)
        progress(f"curate: fuzzy dedup: {found.candidate_pairs} candidate pairs ({found.checked_on_text} checked "
                 f"on text), {found.edges} at Jaccard ≥ {fuzzy.threshold}, components in {found.rounds} rounds "
                 f"({stage_seconds[FUZZY_DEDUP_STAGE]:.1f}s)")

    mark = time.perf_counter()
    dedup = DedupInputs(exact=config.exact_dedup, components=components, earlier=earlier,
                        signatures=fuzzy.scheme() if fuzzy.enabled else None, semantic=config.semantic_dedup)
    final = finalize(out, staged, units, config.shard_rows, dedup, progress)
    stage_seconds["finalize"] = round(time.perf_counter() - mark, 2)

    manifest = Manifest(
        run_id=uuid.uuid4().hex[:12],
        config_hash=digest,
        started_at=started,
        finished_at=_now(),
        tokenizer=TokenCounter(config.tokenizer).reference,
        inputs=final.inputs,
        counts=final.counts,
        domains=final.domains,
        shards=final.shards,
        stage_seconds=stage_seconds,
        stages=stages,
        units_resumed=resumed,
        models=models,
    )
    write_manifest(out, manifest)
    write_report(out, manifest)
    reset_staging(out)
    counts = final.counts
    progress(
        f"curate: {counts.input} in, {counts.kept} kept, {sum(counts.dropped.values())} dropped, "
        f"{counts.quarantined} quarantined in {time.perf_counter() - clock:.1f}s"
    )
    return manifest
