"""The per-document stage that Ray distributes: it runs the filter chain from ``filters/``
over a batch of raw records and returns one staged row per record: kept, dropped (with the
stage and reason) or quarantined (with its error).

Columns needed: ``readers.RAW_COLUMNS`` plus ``ordinal`` (the record's position in its
input). Columns added: ``STAGED_SCHEMA`` (contract 1's shard columns plus ``status``,
``stage``, ``reason``, ``file``, ``location``, ``ordinal``, ``text_hash`` and, for kept
documents when fuzzy dedup is on, their MinHash signature ``minhash``).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import pyarrow as pa

from corpus.schema import SHARD_SCHEMA
from filters.base import Document, DocumentFilter
from filters.classifier import classifier_filters
from filters.code import CodeRules
from filters.decontam import decontamination_filters
from filters.domain import DomainTagger, LongDocumentTagger
from filters.langid import LanguageFilter, LanguageIdentifier
from filters.math import MathDensity
from filters.minhash import MinHasher
from filters.normalize import Normalizer
from filters.pii import PiiRedactor
from filters.prose import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from filters.quality import HeuristicQuality
from filters.tokens import TokenCounter
from pipelines.config import CurateConfig, FilterSettings

KEPT, DROPPED, QUARANTINED = "kept", "dropped", "quarantined"
TOKENS_STAGE = "tokens"  # not a filter: where n_tokens becomes known between the two chains

# Contract 1's columns (nullable here: a quarantined record has no domain or language), plus
# where each record came from and what became of it.
STAGED_SCHEMA = pa.schema(
    [pa.field(f.name, f.type) for f in SHARD_SCHEMA]
    + [pa.field(name, pa.string()) for name in ("status", "stage", "reason", "file", "location")]
    + [pa.field("ordinal", pa.int64()), pa.field("text_hash", pa.string()), pa.field("minhash", pa.binary())]
)

# What a Document carries before any filter has run.
_INPUT_FIELDS = frozenset({"id", "text", "source", "kind"})


class ChainError(ValueError):
    """A filter chain whose order cannot work: some filter needs a field nothing set."""


def check_chain(chains: list[list[DocumentFilter]], provided: frozenset[str] = _INPUT_FIELDS) -> None:
    """Fail at start-up, not mid-run, when a filter needs a field no earlier step adds.
    ``chains`` run one after the other, with ``n_tokens`` set between consecutive chains."""
    available = set(provided)
    for number, chain in enumerate(chains):
        if number:
            available.add("n_tokens")
        for step in chain:
            missing = sorted(set(step.needs) - available)
            if missing:
                raise ChainError(f"filter {step.name!r} needs {missing}, which no earlier stage adds")
            available.update(step.adds)


def stage_names(chains: list[list[DocumentFilter]]) -> list[str]:
    """The chain's step names in the order they run, with the token count between the chains."""
    names: list[str] = []
    for number, chain in enumerate(chains):
        if number:
            names.append(TOKENS_STAGE)
        names.extend(step.name for step in chain)
    return names


def document_id(record: dict[str, Any]) -> str:
    """The input's id under its source's name, or a stable hash of where the record was read."""
    if record["input_id"] is not None:
        return f"{record['source']}/{record['input_id']}"
    where = f"{record['file']}:{record['location']}".encode()
    return f"{record['source']}/{hashlib.sha1(where).hexdigest()[:16]}"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def build_chain(
    config: CurateConfig, filters: FilterSettings, identifier: LanguageIdentifier
) -> tuple[list[DocumentFilter], list[DocumentFilter]]:
    """The filters before and after token counting, in the order they run. The prose filters
    follow FineWeb's order (filters/prose.py); each applies to its own domain only."""
    before: list[DocumentFilter] = [
        Normalizer(),
        DomainTagger.from_model(config.domain.classifier, config.domain.min_confidence),  # cached load
        LanguageFilter(identifier, config.language.allowed, config.language.min_score),
    ]
    before.extend(decontamination_filters(config.decontamination))  # on the text before prose rules cut it
    if filters.gopher_repetition:
        before.append(GopherRepetition())
    if filters.gopher_quality:
        before.append(GopherQuality())
    if filters.c4_quality:
        before.append(C4Quality())
    if filters.fineweb_quality:
        before.append(FineWebQuality())
    if filters.math_density:
        before.append(MathDensity(filters.math_min_density))
    if filters.code_rules:
        before.append(CodeRules())
    if filters.pii_redaction:  # last: the filters judge the text as written, shards get it redacted
        before.append(PiiRedactor())
    after: list[DocumentFilter] = [
        LongDocumentTagger(config.long_doc_tokens),
        *classifier_filters(config.quality.classifiers),  # loaded once per process (cached)
        HeuristicQuality(config.quality.classifier_weight),
    ]
    return before, after


class FilterFailure(Exception):
    """A filter raised on one document: that document is quarantined, the run goes on."""

    def __init__(self, stage: str, error: Exception) -> None:
        super().__init__(f"filter {stage!r} failed: {type(error).__name__}: {error}")
        self.stage = stage


def _run(chain: list[DocumentFilter], doc: Document) -> tuple[str, str] | None:
    """Run filters in order: the first drop's (stage, reason), or None when every filter keeps."""
    for step in chain:
        try:
            verdict = step.check(doc) if step.applies_to(doc) else None
        except Exception as error:  # one document's failure must not cost the rest of the run
            raise FilterFailure(step.name, error) from error
        if verdict is not None and not verdict.keep:
            return step.name, verdict.reason or step.name
    return None


def _row(record: dict[str, Any], doc: Document | None, status: str,
         stage: str | None, reason: str | None) -> dict:
    row = dict.fromkeys(STAGED_SCHEMA.names)
    row.update(
        source=record["source"],
        file=record["file"],
        location=record["location"],
        ordinal=record["ordinal"],
        status=status,
        stage=stage,
        reason=reason,
        meta=record["meta"] or "{}",
        tags=[],
        scores=[],
        # A quarantined record has no text; keep the first bytes of what was read instead.
        text=(record["raw"] if record["raw"] is not None else record["text"]) if doc is None else doc.text,
        id=document_id(record) if doc is None else doc.id,
    )
    if doc is not None:
        row.update(
            domain=doc.domain or None,
            lang=doc.lang or None,
            lang_score=doc.lang_score,
            quality=doc.quality,
            scores=sorted(doc.scores.items()),
            tags=sorted(doc.tags),
            n_chars=len(doc.text),
            n_tokens=doc.n_tokens,
            text_hash=text_hash(doc.text) if status == KEPT else None,
        )
    return row


class DocumentStage:
    """The filter chains with their models loaded; ``document_stage`` keeps one per process.

    Every parsed document gets a token count, dropped ones included (of the text as it was
    when dropped), so the report's funnel can show tokens as well as documents per stage."""

    def __init__(self, config_json: str) -> None:
        config = CurateConfig.model_validate_json(config_json)
        self.sources = {source.name: source.model_dump() for source in config.sources}  # for the readers
        identifier = LanguageIdentifier(config.language.model)
        # One pair of chains per source, since a source may override the run's filters.
        self.chains = {
            source.name: build_chain(config, config.filters_for(source.name), identifier)
            for source in config.sources
        }
        for chains in self.chains.values():
            check_chain(list(chains))
        self.counter = TokenCounter(config.tokenizer)
        self.hasher = MinHasher(config.fuzzy_dedup.scheme()) if config.fuzzy_dedup.enabled else None

    def stage_names(self) -> list[str]:
        """Every source's steps in run order (sources that override filters add theirs)."""
        names: list[str] = []
        for chains in self.chains.values():
            names.extend(name for name in stage_names(list(chains)) if name not in names)
        return names

    def __call__(self, records: list[dict[str, Any]]) -> pa.Table:
        rows: list[dict | None] = [None] * len(records)
        docs: list[tuple[int, dict, Document, tuple[str, str] | None]] = []
        for index, record in enumerate(records):
            if record["error"] is not None:
                rows[index] = _row(record, None, QUARANTINED, "read", record["error"])
                continue
            if record["skip_reason"] is not None:  # read fine, left out on purpose (e.g. vendored)
                rows[index] = _row(record, None, DROPPED, "read", record["skip_reason"])
                continue
            doc = Document(
                id=document_id(record),
                text=record["text"],
                source=record["source"],
                kind=record["kind"],
            )
            try:
                docs.append((index, record, doc, _run(self.chains[doc.source][0], doc)))
            except FilterFailure as failure:
                rows[index] = _row(record, None, QUARANTINED, failure.stage, str(failure))
        # Token counting is batched: tokenizers' encode_batch runs in Rust threads.
        for (index, record, doc, drop), n_tokens in zip(docs, self.counter.count([d.text for _, _, d, _ in docs])):
            doc.n_tokens = n_tokens
            try:
                if drop is None:
                    drop = _run(self.chains[doc.source][1], doc)
            except FilterFailure as failure:
                rows[index] = _row(record, None, QUARANTINED, failure.stage, str(failure))
                continue
            stage, reason = drop if drop is not None else (None, None)
            rows[index] = _row(record, doc, KEPT if drop is None else DROPPED, stage, reason)
        if self.hasher is not None:
            self._sign([row for row in rows if row["status"] == KEPT])
        return pa.Table.from_pylist(rows, schema=STAGED_SCHEMA)

    def _sign(self, rows: list[dict]) -> None:
        """MinHash signatures of the kept documents' final text, for fuzzy dedup; a document
        without a word has none and is left to exact dedup."""
        signatures, has_words = self.hasher.signatures([row["text"] for row in rows])
        for row, signature, valid in zip(rows, signatures, has_words):
            row["minhash"] = signature.astype("<u4", copy=False).tobytes() if valid else None


@lru_cache(maxsize=2)
def document_stage(config_json: str) -> DocumentStage:
    """One stage per worker process and config: Ray reuses worker processes across tasks, so
    the fastText models and tokenizer load once per process, not once per input."""
    return DocumentStage(config_json)
