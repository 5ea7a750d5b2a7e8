"""The mixture's tokenizer: a byte-level BPE trained with HF ``tokenizers`` on curated shards.

Byte-level means every string encodes and ``decode(encode(text)) == text`` exactly, which the
FIM transform relies on (it tokenises the three pieces of a document separately). No
normaliser is set for the same reason. Special tokens: ``<|endoftext|>`` ends every document,
``<|pad|>`` is reserved for padding, and the three FIM sentinels mark the pieces of a
fill-in-the-middle document (see :mod:`mixer.fim`).

Training text is streamed from the shards in record batches (never one big string) and, when
``sample_docs`` is given, a seeded sample of documents is taken; the BPE trainer itself is
deterministic, so the same shards, settings and seed give a byte-identical tokenizer file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from mixer.corpora import all_shard_files

EOD = "<|endoftext|>"
PAD = "<|pad|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
SPECIAL_TOKENS: tuple[str, ...] = (EOD, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)

READ_BATCH_ROWS = 1024


class TokenizerError(ValueError):
    """A tokenizer file that cannot be read or lacks a token the mixer needs."""


@dataclass(frozen=True)
class SpecialTokens:
    """The ids of the special tokens the mixer writes into streams."""

    eod: int
    pad: int
    fim_prefix: int
    fim_middle: int
    fim_suffix: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> "SpecialTokens":
        ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
        missing = [token for token, token_id in ids.items() if token_id is None]
        if missing:
            raise TokenizerError(
                f"tokenizer lacks special token(s) {', '.join(missing)}; "
                "train it with `midtrain tokenizer train` or add them"
            )
        return cls(
            eod=ids[EOD],
            pad=ids[PAD],
            fim_prefix=ids[FIM_PREFIX],
            fim_middle=ids[FIM_MIDDLE],
            fim_suffix=ids[FIM_SUFFIX],
        )


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizers JSON file for encoding documents.

    ``encode_special_tokens`` is switched on: documents are data, so a literal
    ``<|endoftext|>`` inside a document is encoded as ordinary text, never as the control token.
    """
    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer file not found")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises plain Exception subclasses from Rust
        raise TokenizerError(f"{path}: not a tokenizers JSON file: {error}") from error
    tokenizer.encode_special_tokens = True
    return tokenizer


def iter_shard_texts(
    corpus_dirs: Sequence[str | Path], sample_docs: int | None = None, seed: int = 0
) -> Iterator[str]:
    """Texts of every shard, shard by shard in path order, read in record batches.

    With ``sample_docs``, a seeded uniform sample of that many documents (without
    replacement) is yielded instead, still in shard order.
    """
    files = all_shard_files(corpus_dirs)
    keep = _sample_mask(files, sample_docs, seed)
    position = 0
    for path in files:
        batches = pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH_ROWS, columns=["text"])
        for batch in batches:
            texts = batch.column(0).to_pylist()
            if keep is None:
                yield from texts
            else:
                chosen = np.flatnonzero(keep[position : position + len(texts)])
                yield from (texts[i] for i in chosen)
            position += len(texts)


def _sample_mask(files: list[Path], sample_docs: int | None, seed: int) -> np.ndarray | None:
    if sample_docs is None:
        return None
    if sample_docs <= 0:
        raise ValueError(f"sample_docs must be positive, got {sample_docs}")
    total = sum(pq.ParquetFile(path).metadata.num_rows for path in files)
    if sample_docs >= total:
        return None
    keep = np.zeros(total, dtype=bool)
    keep[np.random.default_rng(seed).choice(total, size=sample_docs, replace=False)] = True
    return keep


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE: ByteLevel pre-tokenizer and decoder, no normaliser."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(
    corpus_dirs: list[str],
    output: str,
    vocab_size: int = 8192,
    min_frequency: int = 2,
    sample_docs: int | None = None,
    seed: int = 0,
) -> Path:
    """Train a byte-level BPE on the text of the curated shards and write it to ``output``.

    The vocabulary holds the 256 byte symbols, the special tokens, and merges up to
    ``vocab_size``. Returns the path written.
    """
    minimum = len(pre_tokenizers.ByteLevel.alphabet()) + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size {vocab_size} is below the {minimum} byte and special tokens")
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(iter_shard_texts(corpus_dirs, sample_docs, seed), trainer)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def _byte_symbols() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode`` inverted: the printable character ByteLevel writes for
    each byte, mapped back to the byte. Printable Latin-1 bytes stand for themselves; the other
    68 bytes are shifted to U+0100 and up, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = [byte for byte in range(256) if byte not in printable]
    symbols = {chr(byte): byte for byte in printable}
    symbols.update({chr(256 + n): byte for n, byte in enumerate(shifted)})
    return symbols


def token_bytes(tokenizer: Tokenizer) -> list[bytes]:
    """The raw bytes of every token id of a byte-level BPE (as :func:`new_tokenizer` builds).

    ``b"".join(table[i] for i in ids)`` gives the exact bytes of any run of tokens, even one
    that starts or ends inside a multi-byte character, where ``tokenizer.decode`` would write
    U+FFFD instead. Special and other added tokens map to their UTF-8 text. Ids the vocabulary
    skips map to ``b""``.
    """
    symbols = _byte_symbols()
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    added = {token.content for token in tokenizer.get_added_tokens_decoder().values()}
    table = [b""] * (max(vocab.values(), default=-1) + 1)
    for token, token_id in vocab.items():
        if token in added:
            table[token_id] = token.encode("utf-8")
        else:
            try:
                table[token_id] = bytes(symbols[symbol] for symbol in token)
            except KeyError as error:
                raise TokenizerError(
                    f"token {token!r} (id {token_id}) is not byte-level; "
                    "token_bytes needs a ByteLevel tokenizer"
                ) from error
    return table
