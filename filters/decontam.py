"""Decontamination: drop every document that shares a word n-gram (13 by default) with an
evaluation set the user names, so a model is never trained on the benchmarks it is judged on.

This is the GPT-3 / OLMo style n-gram overlap test. Both sides are normalised the same way
(:func:`words`): Unicode NFKC, lowercase, and every run of characters that are not letters,
digits or ``_`` (punctuation, symbols, whitespace) is a word break, so ``"Natalia sold
clips"`` and ``"NATALIA, sold: clips!"`` give the same words. Each configured field of an
evaluation item is a separate passage (no n-gram spans two fields); a list of strings (e.g.
MMLU's ``choices``) gives one passage per string. A passage of at least ``ngram`` words
contributes all its n-grams. A passage shorter than that is matched whole when it has at least
``min_words`` words (GPT-3 also used the whole item when it was shorter than the n-gram), and
is not checked at all below that: a three-word answer would match half the web.

Written by hand rather than with datatrove's ``NGramsDecontIndexer``/``NGramsDecontFilter``:
those build their index from lighteval task definitions (the ``lighteval`` package, which we do
not install), as a separate step writing index files, while a user here names plain jsonl files
in the curate config. The idea is the same: each n-gram is a 64-bit hash built from the words'
blake2b digests (stable across processes and machines, unlike ``hash()``; see
:func:`ngram_hashes`), the set's hashes sit in a sorted numpy array, and a document's n-grams
are hashed and looked up vectorised. Each evaluation file is parsed once per process and
cached under its path, size and modification time, so a changed file is read again.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from filters.base import KEEP, Document, DocumentFilter, Verdict

if TYPE_CHECKING:  # pipelines.config imports this module, so only the type checker imports it back
    from pipelines.config import DecontaminationSettings

CONTAMINATED = "contaminated"  # the drop reason
HITS_SCORE = "contamination_hits"  # scores key: matching n-gram positions in the document
ITEM_SCORE_PREFIX = "contaminated:"  # scores key prefix: contaminated:<set>:<item id> = 1.0
MAX_ITEMS_RECORDED = 10  # evaluation items named per dropped document (the scores map stays small)
MAX_ITEM_BYTES = 16 * 2**20  # an evaluation line longer than this is an error, not read whole

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so multiplying by it loses no bits modulo 2**64


class EvalSetError(ValueError):
    """An evaluation set that cannot be used; the message names the file and line."""


class EvalSet(BaseModel):
    """One evaluation set of contract 2's ``decontamination.sets``: a jsonl (or .jsonl.gz)
    file of items, the fields whose text is checked, and the field that names an item (None:
    its line number). The path is made absolute, so workers find it whatever their directory."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    path: str
    fields: list[str] = Field(min_length=1)
    id_field: str | None = None

    @field_validator("path")
    @classmethod
    def _existing_file(cls, path: str, info: ValidationInfo) -> str:
        if (info.context or {}).get("defer_files"):  # pipelines.config.DEFER_FILES
            return path
        if not Path(path).is_file():
            raise ValueError(f"evaluation set file not found ({path})")
        return str(Path(path).resolve())


def words(text: str) -> list[str]:
    """The words n-grams are made of: NFKC, lowercase, split at anything not a letter/digit/_."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


@lru_cache(maxsize=1 << 16)  # words repeat (Zipf): most of a document's words were hashed before
def word_hash(word: str) -> int:
    """A 64-bit hash of one word, the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def word_hashes(tokens: Sequence[str]) -> np.ndarray:
    return np.fromiter((word_hash(token) for token in tokens), dtype=np.uint64, count=len(tokens))


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the polynomial's bits so that sorted lookups and any
    truncation see well-mixed values."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """The 64-bit hash of every run of ``n`` consecutive words (none when there are fewer),
    from the words' hashes: a polynomial in ``_BASE`` modulo 2**64 (numpy's uint64 arithmetic
    wraps) plus ``n``, so runs of different lengths hash apart, then mixed. Vectorised over the
    document: n array operations instead of one blake2b call per n-gram."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    polynomial = np.zeros(count, dtype=np.uint64)
    for offset in range(n):
        polynomial = polynomial * _BASE + hashes[offset:offset + count]
    return _mix(polynomial + np.uint64(n))


def ngram_hash(gram: Sequence[str]) -> int:
    """The hash of one run of words, as :func:`ngram_hashes` computes it inside a document."""
    return int(ngram_hashes(word_hashes(gram), len(gram))[0])


@dataclass(frozen=True)
class EvalIndex:
    """The hashed n-grams of one evaluation set. ``hashes`` is sorted (duplicates kept: two
    items may share an n-gram) and ``items[i]`` indexes ``item_ids`` for ``hashes[i]``."""

    name: str
    hashes: np.ndarray  # uint64, sorted
    items: np.ndarray  # int64, aligned with hashes
    item_ids: tuple[str, ...]
    lengths: frozenset[int]  # n-gram lengths present: ngram, plus those of short passages matched whole
    passages_skipped: int  # passages shorter than min_words, not checked

    def lookup(self, doc_hashes: np.ndarray) -> tuple[int, list[str]]:
        """(how many of ``doc_hashes`` occur in this set, the items hit in ``doc_hashes`` order)."""
        left = np.searchsorted(self.hashes, doc_hashes, side="left")
        right = np.searchsorted(self.hashes, doc_hashes, side="right")
        found = np.flatnonzero(right > left)
        hit: dict[str, None] = {}  # ordered and unique
        for position in found:
            for item in self.items[left[position]:right[position]]:
                hit.setdefault(self.item_ids[item])
        return len(found), list(hit)


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    # Imported here: pipelines.config imports this module, and the readers import the config.
    from pipelines.readers.streams import bounded_lines, open_binary

    try:
        with open_binary(path) as handle:
            for line in bounded_lines(handle, MAX_ITEM_BYTES):
                if line.oversized:
                    raise EvalSetError(f"{path} line {line.number}: {line.size:,} bytes, over {MAX_ITEM_BYTES:,}")
                yield line.number, line.data
    except (OSError, EOFError) as error:  # a corrupt or truncated compressed stream too
        raise EvalSetError(f"{path}: cannot read: {error}") from error


def _passages(value: Any, where: str, field: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return value
    raise EvalSetError(f"{where}: field {field!r} is {type(value).__name__}, not a string or list of strings")


def _items(spec: EvalSet) -> Iterator[tuple[str, list[str]]]:
    """(item id, passages) per non-blank line, with a one-line error naming file and line."""
    seen: set[str] = set()
    for number, raw in _lines(spec.path):
        if not raw.strip():
            continue
        where = f"{spec.path} line {number}"
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EvalSetError(f"{where}: not JSON ({error})") from error
        if not isinstance(record, dict):
            raise EvalSetError(f"{where}: a {type(record).__name__}, not a JSON object")
        missing = [field for field in spec.fields if field not in record]
        if missing:
            raise EvalSetError(f"{where}: no field {missing[0]!r}")
        if spec.id_field is None:
            item_id = str(number)
        elif isinstance(record.get(spec.id_field), (str, int)) and not isinstance(record[spec.id_field], bool):
            item_id = str(record[spec.id_field])
        else:
            raise EvalSetError(f"{where}: id field {spec.id_field!r} is missing or not a string/integer")
        if item_id in seen:  # the report counts documents per item, so ids must name one item
            raise EvalSetError(f"{where}: duplicate item id {item_id!r}")
        seen.add(item_id)
        yield item_id, [text for field in spec.fields for text in _passages(record[field], where, field)]


@lru_cache(maxsize=32)
def _build(spec_json: str, ngram: int, min_words: int, size: int, mtime_ns: int) -> EvalIndex:
    """Parse and hash one set; ``size`` and ``mtime_ns`` are only part of the cache key."""
    spec = EvalSet.model_validate_json(spec_json)
    hashes: list[np.ndarray] = []
    items: list[np.ndarray] = []
    item_ids: list[str] = []
    lengths, skipped = {ngram}, 0
    for item_id, passages in _items(spec):
        index = len(item_ids)
        item_ids.append(item_id)
        for passage in passages:
            tokens = words(passage)
            if len(tokens) < min(min_words, ngram):
                skipped += 1
                continue
            grams = ngram_hashes(word_hashes(tokens), min(ngram, len(tokens)))
            lengths.add(min(ngram, len(tokens)))
            hashes.append(grams)
            items.append(np.full(len(grams), index, dtype=np.int64))
    if not item_ids:
        raise EvalSetError(f"{spec.path}: evaluation set {spec.name!r} holds no items")
    all_hashes = np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)
    all_items = np.concatenate(items) if items else np.empty(0, dtype=np.int64)
    order = np.argsort(all_hashes, kind="stable")
    return EvalIndex(
        name=spec.name,
        hashes=all_hashes[order],
        items=all_items[order],
        item_ids=tuple(item_ids),
        lengths=frozenset(lengths),
        passages_skipped=skipped,
    )


def load_eval_index(spec: EvalSet, ngram: int, min_words: int) -> EvalIndex:
    """The set's index, built once per process for each version of its file."""
    try:
        stat = Path(spec.path).stat()
    except OSError as error:
        raise EvalSetError(f"{spec.path}: cannot read: {error}") from error
    return _build(spec.model_dump_json(), ngram, min_words, stat.st_size, stat.st_mtime_ns)


class Decontaminator(DocumentFilter):
    """Drops a document (reason ``contaminated``) that shares an n-gram with any evaluation
    set, in every domain. On a drop it records ``scores["contamination_hits"]`` (the document's
    matching n-gram positions, all sets together) and ``scores["contaminated:<set>:<item>"] =
    1.0`` for the first ``MAX_ITEMS_RECORDED`` items hit, which the report lists; a kept
    document gets no score from this filter."""

    name = "decontaminate"
    needs = ("text",)
    adds = (f"scores.{HITS_SCORE}",)

    def __init__(self, indexes: list[EvalIndex]) -> None:
        self.indexes = indexes
        self.lengths = sorted(set().union(*(index.lengths for index in indexes)))

    @classmethod
    def from_sets(cls, sets: list[EvalSet], ngram: int, min_words: int) -> "Decontaminator":
        return cls([load_eval_index(spec, ngram, min_words) for spec in sets])

    def check(self, doc: Document) -> Verdict:
        hashes = word_hashes(words(doc.text))
        # The length is part of each hash, so every length's n-grams are looked up together.
        doc_hashes = np.concatenate([ngram_hashes(hashes, n) for n in self.lengths])
        if not doc_hashes.size:
            return KEEP
        total, refs = 0, []
        for index in self.indexes:
            hits, items = index.lookup(doc_hashes)
            total += hits
            refs.extend(f"{index.name}:{item}" for item in items)
        if not total:
            return KEEP
        doc.scores[HITS_SCORE] = float(total)
        for ref in refs[:MAX_ITEMS_RECORDED]:
            doc.scores[ITEM_SCORE_PREFIX + ref] = 1.0
        return Verdict.drop(CONTAMINATED)


def decontamination_filters(settings: "DecontaminationSettings") -> list[DocumentFilter]:
    """The run's decontamination step: none when no evaluation set is configured."""
    if not settings.sets:
        return []
    return [Decontaminator.from_sets(settings.sets, settings.ngram, settings.min_words)]
