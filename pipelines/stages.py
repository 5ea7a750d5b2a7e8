"""The per-document stage that Ray Data distributes: it runs the filter chain from
``filters/`` over a batch of raw records and returns one work row per record, kept, dropped
(with its reason) or quarantined (with its error).

Columns needed: ``readers.RAW_COLUMNS``. Columns added: ``WORK_SCHEMA`` (contract 1's shard
columns plus ``status``, ``reason``, ``file``, ``location`` and ``text_hash``).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import pyarrow as pa

from corpus.schema import SHARD_SCHEMA
from filters.base import Document, DocumentFilter
from filters.code import CodeRules
from filters.domain import DomainTagger, LongDocumentTagger
from filters.langid import LanguageFilter, LanguageIdentifier
from filters.normalize import Normalizer
from filters.prose import GopherQuality, GopherRepetition
from filters.quality import HeuristicQuality
from filters.tokens import TokenCounter
from pipelines.config import CurateConfig, FilterSettings

KEPT, DROPPED, QUARANTINED = "kept", "dropped", "quarantined"

# Contract 1's columns (nullable here: a quarantined record has no domain or language) with
# ``scores`` as JSON until the sink, plus where each record came from and what became of it.
WORK_SCHEMA = pa.schema(
    [pa.field(f.name, pa.string() if f.name == "scores" else f.type) for f in SHARD_SCHEMA]
    + [pa.field(name, pa.string()) for name in ("status", "reason", "file", "location", "text_hash")]
)


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
    """The filters before and after token counting, in the order they run."""
    before: list[DocumentFilter] = [
        Normalizer(),
        DomainTagger(),
        LanguageFilter(identifier, config.language.allowed, config.language.min_score),
    ]
    if filters.gopher_quality:
        before.append(GopherQuality())
    if filters.gopher_repetition:
        before.append(GopherRepetition())
    if filters.code_rules:
        before.append(CodeRules())
    after: list[DocumentFilter] = [LongDocumentTagger(config.long_doc_tokens), HeuristicQuality()]
    return before, after


def _run(chain: list[DocumentFilter], doc: Document) -> str | None:
    """Run filters in order; the first drop's reason, or None when every filter keeps."""
    for step in chain:
        if step.applies_to(doc):
            verdict = step.check(doc)
            if not verdict.keep:
                return verdict.reason or step.name
    return None


def _row(record: dict[str, Any], doc: Document | None, status: str, reason: str | None) -> dict:
    row = dict.fromkeys(WORK_SCHEMA.names)
    row.update(
        source=record["source"],
        file=record["file"],
        location=record["location"],
        status=status,
        reason=reason,
        meta=record["meta"] or "{}",
        tags=[],
        # A quarantined record has no text; keep the first bytes of what was read instead.
        text=(record["raw"] if status == QUARANTINED else record["text"]) if doc is None else doc.text,
        id=document_id(record) if doc is None else doc.id,
    )
    if doc is not None:
        row.update(
            id=doc.id,
            domain=doc.domain,
            lang=doc.lang,
            lang_score=doc.lang_score,
            quality=doc.quality,
            scores=json.dumps(doc.scores, sort_keys=True),
            tags=sorted(doc.tags),
            n_chars=len(doc.text),
            n_tokens=doc.n_tokens,
            text_hash=text_hash(doc.text) if status == KEPT else None,
        )
    return row


class DocumentStage:
    """The filter chain with its models loaded; ``process_batch`` keeps one per worker."""

    def __init__(self, config_json: str) -> None:
        config = CurateConfig.model_validate_json(config_json)
        identifier = LanguageIdentifier(config.language.model)
        # One chain per source, since a source may override the run's filter settings.
        self.chains = {
            source.name: build_chain(config, config.filters_for(source.name), identifier)
            for source in config.sources
        }
        self.counter = TokenCounter(config.tokenizer)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict | None] = []
        survivors: list[tuple[int, dict, Document]] = []
        for record in batch.to_pylist():
            if record["error"] is not None:
                rows.append(_row(record, None, QUARANTINED, f"{record['error']}"))
                continue
            doc = Document(
                id=document_id(record),
                text=record["text"],
                source=record["source"],
                kind=record["kind"],
            )
            reason = _run(self.chains[doc.source][0], doc)
            if reason is not None:
                rows.append(_row(record, doc, DROPPED, reason))
            else:
                survivors.append((len(rows), record, doc))
                rows.append(None)
        # Token counting is batched: tokenizers' encode_batch runs in Rust threads.
        counts = self.counter.count([doc.text for _, _, doc in survivors])
        for (index, record, doc), n_tokens in zip(survivors, counts):
            doc.n_tokens = n_tokens
            reason = _run(self.chains[doc.source][1], doc)
            rows[index] = _row(record, doc, KEPT if reason is None else DROPPED, reason)
        return pa.Table.from_pylist(rows, schema=WORK_SCHEMA)


@lru_cache(maxsize=2)
def _stage(config_json: str) -> DocumentStage:
    return DocumentStage(config_json)


def process_batch(batch: pa.Table, config_json: str) -> pa.Table:
    """``map_batches`` entry. A plain task, not an actor pool: Ray reuses worker processes, so
    the models still load once per process, and reads and filters share the CPUs without an
    actor pool holding every CPU while the read tasks that feed it wait."""
    return _stage(config_json)(batch)
