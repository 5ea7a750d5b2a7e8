"""A source's documents, selected from the corpora and tokenised with the mixture's tokenizer.

Both planning and building need the exact token count of every selected document under the
mixture's tokenizer (the shards' ``n_tokens`` is the curation run's reference tokenizer), so
documents are tokenised once, here, and shared through a :class:`DocumentCache` keyed by the
selector: two phases that select the same documents tokenise them once.

Token ids are kept flat (one ``uint32`` array and offsets, CSR style) rather than one array
per document. Everything is held in memory; that bounds a build to what fits in RAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import numpy as np
from tokenizers import Tokenizer

from mixer.pieces import TokenisedText, word_start_flags
from mixer.select import select_documents
from mixer.spec import Selector

ENCODE_BATCH_DOCS = 1024


@dataclass(frozen=True)
class SourceDocuments:
    """Selected documents in selection order (by id); token ids exclude the end-of-document
    token, but :attr:`lengths` and :attr:`tokens` count it, since every document gets one."""

    ids: list[str]
    texts: list[str]
    domains: list[str]
    flat_ids: np.ndarray  # uint32, every document's token ids back to back
    offsets: np.ndarray  # int64 [n + 1]; document i is flat_ids[offsets[i]:offsets[i + 1]]
    word_starts: np.ndarray  # bool, per token of flat_ids: it opens a pre-tokenizer word

    def __len__(self) -> int:
        return len(self.ids)

    def token_ids(self, index: int) -> np.ndarray:
        return self.flat_ids[self.offsets[index] : self.offsets[index + 1]]

    def tokenised(self, index: int) -> TokenisedText:
        """Document ``index`` with what :class:`mixer.pieces.PieceEncoder` needs."""
        span = slice(self.offsets[index], self.offsets[index + 1])
        return TokenisedText(self.texts[index], self.flat_ids[span], self.word_starts[span])

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per document, end-of-document token included."""
        return np.diff(self.offsets) + 1

    @property
    def tokens(self) -> int:
        """Tokens of one pass over every document, end-of-document tokens included."""
        return int(self.offsets[-1]) + len(self.ids)

    def domain_label(self) -> str:
        """The documents' domain, or their sorted domains joined by ``+`` when mixed."""
        return "+".join(sorted(set(self.domains))) or "none"


def encode_texts(
    tokenizer: Tokenizer, texts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat uint32 ids, int64 offsets and per-token word-start flags of ``texts``, encoded in
    batches (no special tokens)."""
    chunks: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), ENCODE_BATCH_DOCS):
        # encode_batch, not _fast: word_ids need the offsets that _fast skips
        batch = tokenizer.encode_batch(list(texts[start : start + ENCODE_BATCH_DOCS]), add_special_tokens=False)
        for offset, encoding in enumerate(batch):
            chunks.append(np.asarray(encoding.ids, dtype=np.uint32))
            starts.append(word_start_flags(encoding.word_ids))
            lengths[start + offset] = len(encoding.ids)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint32)
    word_starts = np.concatenate(starts) if starts else np.zeros(0, dtype=bool)
    return flat, offsets, word_starts


def load_documents(
    corpus_dirs: Sequence[str | Path],
    selector: Selector,
    tokenizer: Tokenizer,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> SourceDocuments:
    table = select_documents(corpus_dirs, selector, connection)
    texts = table.column("text").to_pylist()
    flat, offsets, word_starts = encode_texts(tokenizer, texts)
    return SourceDocuments(
        ids=table.column("id").to_pylist(),
        texts=texts,
        domains=table.column("domain").to_pylist(),
        flat_ids=flat,
        offsets=offsets,
        word_starts=word_starts,
    )


@dataclass
class DocumentCache:
    """Selected and tokenised documents per selector, for one mixture's corpora and tokenizer."""

    corpus_dirs: list[str]
    tokenizer: Tokenizer
    progress: Callable[[str], None] | None = None
    _loaded: dict[str, SourceDocuments] = field(default_factory=dict, init=False, repr=False)
    _connection: duckdb.DuckDBPyConnection = field(
        default_factory=duckdb.connect, init=False, repr=False
    )

    def get(self, selector: Selector, label: str = "") -> SourceDocuments:
        key = selector.model_dump_json()
        if key not in self._loaded:
            documents = load_documents(self.corpus_dirs, selector, self.tokenizer, self._connection)
            if self.progress is not None:
                self.progress(
                    f"mix: selected {len(documents):,} documents, {documents.tokens:,} tokens"
                    + (f" for {label}" if label else "")
                )
            self._loaded[key] = documents
        return self._loaded[key]
