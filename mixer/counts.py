"""Exact token counts of selected documents, for planning, without tokenising on every plan.

A plan needs, per source, only how many documents its selector matches, how many tokens they
hold under the mixture's tokenizer and their domains; not the token ids a build needs
(:mod:`mixer.documents`). So the planner counts here:

- Every shard's per-row token counts are computed once per (shard content, tokenizer content)
  and kept on disk (:class:`TokenCountStore`), keyed by the shard file's sha256 and a key of
  the tokenizer file's sha256, the ``tokenizers`` version and how the mixer encodes (no added
  special tokens, special-token text encoded as text: :func:`mixer.tokenizer.load_tokenizer`).
  A changed shard or tokenizer has another key, so a count is never read for content it was
  not computed from. A whole shard is counted, whatever the selector, so a later plan with
  another selector over the same corpus reads counts too.
- A selector is compiled by :mod:`mixer.select` to a query returning only (file, row number,
  domain) of the matching rows; the counts of those rows are summed.

The shards' own ``n_tokens`` is not used, even when the curation run's reference tokenizer is
the mixture's: curation counts with special tokens parsed as control tokens (a literal
``<|endoftext|>`` in a document is one token there, several here) and the manifest names the
tokenizer file only by name, so equal counts could not be guaranteed.

The cache lives outside curated outputs (``midtrain verify`` treats extra files under a run's
``shards/`` as stray data): ``$MIDTRAIN_CACHE/token-counts``, else
``$XDG_CACHE_HOME/midtrain/token-counts``, else ``~/.cache/midtrain/token-counts``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pyarrow.parquet as pq
import tokenizers
from tokenizers import Tokenizer

from corpus.manifest import sha256_file
from mixer.corpora import all_shard_files
from mixer.select import selection_rows_query
from mixer.spec import Selector

CACHE_ENV = "MIDTRAIN_CACHE"
COUNT_BATCH_ROWS = 4096
# How documents are encoded for counting; part of the cache key, so changing it (or the
# tokenizers library) never reuses counts made the old way.
ENCODING = "ids-without-added-special-tokens;special-token-text-as-text"


def default_cache_dir() -> Path:
    """``$MIDTRAIN_CACHE``, else ``$XDG_CACHE_HOME/midtrain``, else ``~/.cache/midtrain``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "midtrain"


class _DigestMemo:
    """sha256 of files, remembered per (path, size, mtime, inode, ctime): a file is hashed again
    only when one of those changes (an atomic replace changes the inode)."""

    def __init__(self) -> None:
        self._digests: dict[str, tuple[tuple[int, ...], str]] = {}
        self._lock = threading.Lock()

    def sha256(self, path: str | Path) -> str:
        key = str(path)
        stat = os.stat(key)
        identity = (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
        with self._lock:
            known = self._digests.get(key)
        if known is not None and known[0] == identity:
            return known[1]
        digest = sha256_file(key)
        with self._lock:
            self._digests[key] = (identity, digest)
        return digest


DIGESTS = _DigestMemo()


def tokenizer_key(path: str | Path) -> str:
    """What a count depends on besides the text: the tokenizer file's content, the library that
    runs it and how the mixer calls it."""
    parts = {"tokenizer_sha256": DIGESTS.sha256(path), "tokenizers": tokenizers.__version__, "encoding": ENCODING}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def count_texts(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """Tokens per text as the mixer encodes them (:func:`mixer.documents.encode_texts`), without
    the end-of-document token. ``encode_batch_fast`` gives the same ids without offsets."""
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return np.fromiter((len(encoding.ids) for encoding in encodings), dtype=np.int64, count=len(texts))


def count_shard(path: str | Path, tokenizer: Tokenizer) -> np.ndarray:
    """Tokens of every row of one shard, in file order."""
    parts = [count_texts(tokenizer, batch.column(0).to_pylist())
             for batch in pq.ParquetFile(path).iter_batches(batch_size=COUNT_BATCH_ROWS, columns=["text"])]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as .npy so that a reader sees the whole file or none (two writers of the
    same key write the same values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, array)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class TokenCountStore:
    """Per-row token counts of shards, on disk under ``directory/token-counts`` and, for the
    last ``memory_entries`` shards used, in memory. Safe to use from several threads."""

    def __init__(self, directory: str | Path | None = None, memory_entries: int = 4096) -> None:
        self.directory = Path(directory or default_cache_dir()) / "token-counts"
        self.memory_entries = memory_entries
        self._memory: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # shards tokenised by this store (tests and logs: a warm plan computes none)

    def path(self, shard_sha256: str, key: str) -> Path:
        return self.directory / key[:32] / f"{shard_sha256}.npy"

    def counts(self, shard: str | Path, tokenizer: Tokenizer, key: str) -> np.ndarray:
        """Tokens of every row of ``shard`` under the tokenizer whose :func:`tokenizer_key` is
        ``key``: from memory, else the disk, else tokenised (and stored)."""
        entry = (DIGESTS.sha256(shard), key)
        with self._lock:
            if entry in self._memory:
                self._memory.move_to_end(entry)
                return self._memory[entry]
        counts = self._read(shard, *entry)
        if counts is None:
            counts = count_shard(shard, tokenizer)
            _save_atomic(self.path(*entry), counts)
            with self._lock:
                self.computed += 1
        counts.setflags(write=False)
        with self._lock:
            self._memory[entry] = counts
            while len(self._memory) > self.memory_entries:
                self._memory.popitem(last=False)
        return counts

    def _read(self, shard: str | Path, shard_sha256: str, key: str) -> np.ndarray | None:
        """The stored counts, or None when absent or unusable (not one count per row)."""
        try:
            counts = np.load(self.path(shard_sha256, key), allow_pickle=False)
        except (OSError, ValueError):
            return None
        rows = pq.read_metadata(shard).num_rows
        return counts if counts.ndim == 1 and len(counts) == rows and counts.dtype == np.int64 else None


_SHARED: dict[Path, TokenCountStore] = {}
_SHARED_LOCK = threading.Lock()


def shared_store() -> TokenCountStore:
    """One store per cache directory per process, so its memory serves every plan."""
    directory = default_cache_dir()
    with _SHARED_LOCK:
        if directory not in _SHARED:
            _SHARED[directory] = TokenCountStore(directory)
        return _SHARED[directory]


@dataclass(frozen=True)
class SelectionCounts:
    """What a plan needs of a source's selection: documents, tokens and domains."""

    documents: int
    tokens: int  # one pass, one end-of-document token per document included
    domains: tuple[str, ...]

    def __len__(self) -> int:
        return self.documents

    def domain_label(self) -> str:
        """The documents' domain, or their sorted domains joined by ``+`` when mixed."""
        return "+".join(sorted(self.domains)) or "none"


@dataclass
class CountCache:
    """Selection counts per selector, for one mixture's corpora and tokenizer (the planner's
    counterpart of :class:`mixer.documents.DocumentCache`)."""

    corpus_dirs: list[str]
    tokenizer: Tokenizer
    tokenizer_key: str
    store: TokenCountStore = field(default_factory=shared_store)
    _counted: dict[str, SelectionCounts] = field(default_factory=dict, init=False, repr=False)
    _connection: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect, init=False, repr=False)

    def get(self, selector: Selector, label: str = "") -> SelectionCounts:
        key = selector.model_dump_json()
        if key not in self._counted:
            self._counted[key] = self._count(selector)
        return self._counted[key]

    def _count(self, selector: Selector) -> SelectionCounts:
        files = [str(path) for path in all_shard_files(self.corpus_dirs)]
        query = selection_rows_query(selector, files)
        table = self._connection.sql(query.sql, params=query.params).to_arrow_table()
        documents = tokens = 0
        domains: set[str] = set()
        for filename, rows, found in zip(table.column("filename").to_pylist(), table.column("rows"),
                                         table.column("domains").to_pylist()):
            selected = rows.values.to_numpy()
            counts = self.store.counts(filename, self.tokenizer, self.tokenizer_key)
            documents += len(selected)
            tokens += int(counts[selected].sum())
            domains.update(found)
        return SelectionCounts(documents=documents, tokens=tokens + documents, domains=tuple(sorted(domains)))


def count_cache(corpus_dirs: Sequence[str | Path], tokenizer_path: str | Path,
                store: TokenCountStore | None = None) -> CountCache:
    from mixer.tokenizer import load_tokenizer

    return CountCache([str(path) for path in corpus_dirs], load_tokenizer(tokenizer_path),
                      tokenizer_key(tokenizer_path), store or shared_store())
