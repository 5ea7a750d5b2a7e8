"""Response schemas of the REST API. Request bodies reuse the specs' own pydantic models
(``mixer.spec.MixtureSpec``), so the CLI and the API accept exactly the same documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str = Field(description="installed midtrain version")


class MixtureRecord(BaseModel):
    name: str
    version: int = Field(ge=1, description="1 for the first save of a name, then n+1")
    sha256: str = Field(description="sha256 of the canonical spec JSON (sorted keys, defaults filled)")
    spec: dict[str, Any] = Field(description="the mixture spec as stored (contract 3)")
    created_at: str = Field(description="UTC, ISO 8601")


class MixturePage(BaseModel):
    items: list[MixtureRecord]
    total: int = Field(description="items across all pages")
    limit: int
    offset: int


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. phases.0.sources.1.weight")
    message: str


class Problem(BaseModel):
    """RFC 7807 problem details; ``field`` and ``errors`` are extension members that say which
    input was wrong."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None


# ---------------------------------------------------------------------------------------------
# Jobs (api.jobs): curation runs, mixture builds, training runs


class CurationRunRequest(BaseModel):
    config: dict[str, Any] = Field(description="a curate config (contract 2); an entry of its `sources` may be "
                                               "the name of a registered source instead of a source object")


class MixBuildRequest(BaseModel):
    mixture: str = Field(description="a saved mixture's name")
    version: int | None = Field(default=None, ge=1, description="its version; the latest when absent")
    output: str | None = Field(default=None, description="where to write; RUNS/mix-builds/<name>-v<version>-<id> "
                                                         "when absent")


class TrainingRunRequest(BaseModel):
    spec: dict[str, Any] = Field(description="a train spec (contract 4)")
    mix_build: str | None = Field(default=None, description="a succeeded mix build whose output replaces "
                                                            "the spec's `mixture`")


class JobProgress(BaseModel):
    stage: str | None = Field(description="curation: stage, dedup, finalize, done; training: the phase")
    message: str = Field(description="the latest progress line")
    documents: int | None = Field(default=None, description="curation: documents staged so far")
    updated_at: str


class JobRecord(BaseModel):
    id: str
    kind: str = Field(examples=["curation", "mix-build", "training"])
    status: str = Field(examples=["running", "succeeded", "failed", "cancelled"])
    request: dict[str, Any] = Field(description="what the job runs: the validated spec with paths resolved")
    output: str
    created_at: str
    finished_at: str | None
    attempts: int = Field(description="launches: 1, plus one per resume after a lost worker")
    error: str | None = Field(description="why it failed or was cancelled, one line")
    result: dict[str, Any] | None = Field(description="its summary once succeeded")
    progress: JobProgress | None = None


class JobPage(BaseModel):
    items: list[JobRecord]
    total: int
    limit: int
    offset: int


class LogPage(BaseModel):
    lines: list[str]
    next_offset: int = Field(description="pass as `offset` to read on from here")


class Artefact(BaseModel):
    path: str = Field(description="relative to the job's output")
    bytes: int


class RecordPage(BaseModel):
    records: list[dict[str, Any]]
    next_offset: int
