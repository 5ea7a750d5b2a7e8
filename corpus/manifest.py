"""Contract 1: ``OUT/manifest.json``, the record of one curation run.

The counting invariant ``input = kept + sum(dropped) + quarantined`` is checked here, by the
writer before it writes and by any reader that calls :func:`check_invariant`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from corpus.files import write_text_atomic


class InputRecord(BaseModel):
    source: str
    path: str
    documents: int  # records read from this file, parseable or not


class ShardRecord(BaseModel):
    path: str  # relative to OUT
    domain: str
    rows: int
    bytes: int
    sha256: str


class DomainTotals(BaseModel):
    documents: int = 0
    chars: int = 0
    tokens: int = 0


class Counts(BaseModel):
    input: int
    kept: int
    dropped: dict[str, int] = Field(default_factory=dict)
    quarantined: int = 0


class Manifest(BaseModel):
    run_id: str
    config_hash: str
    started_at: str
    finished_at: str
    tokenizer: str  # the reference tokenizer that n_tokens counts in
    inputs: list[InputRecord]
    counts: Counts
    domains: dict[str, DomainTotals]
    shards: list[ShardRecord]
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    # The pipeline's filter names in the order they run; empty in manifests written before it.
    stages: list[str] = Field(default_factory=list)
    # Work units (an input file, a byte range of a large one, or a run of small files of a
    # folder source) whose staged results a ``--resume`` run took from the interrupted run.
    units_resumed: int = 0
    models: dict[str, str] = Field(default_factory=dict)  # model file -> sha256


class InvariantError(ValueError):
    pass


def check_invariant(counts: Counts) -> None:
    accounted = counts.kept + sum(counts.dropped.values()) + counts.quarantined
    if accounted != counts.input:
        raise InvariantError(
            f"counting invariant broken: input={counts.input} but kept={counts.kept} + "
            f"dropped={sum(counts.dropped.values())} + quarantined={counts.quarantined} = {accounted}"
        )


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(out: str | Path) -> Path:
    return Path(out) / "manifest.json"


def write_manifest(out: str | Path, manifest: Manifest) -> Path:
    """Check the invariant, then write atomically so a reader never sees half a manifest."""
    check_invariant(manifest.counts)
    return write_text_atomic(manifest_path(out), json.dumps(manifest.model_dump(), indent=2) + "\n")


def read_manifest(out: str | Path) -> Manifest:
    path = manifest_path(out)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; is this a finished curation output?")
    data: dict[str, Any] = json.loads(path.read_text())
    return Manifest.model_validate(data)
