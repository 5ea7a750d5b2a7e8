r"""Token ids of a piece of an already tokenised text, re-encoding only near the piece's ends.

Document-level FIM cuts a document into three character ranges and tokenises each on its own
(:mod:`mixer.fim`). Encoding the pieces from scratch costs as much as encoding the document
again, and the byte-level BPE runs at about 1 MB of text per second per core here, ten times
slower than the rest of a build. This module gives the very same ids (the tokenizer's own
encoding of the piece, not an approximation) while encoding only a few words.

Why that is exact: the byte-level pre-tokenizer cuts text into words with a regex matched left
to right without look-behind, and BPE then works within each word. So two texts that agree
from position ``p`` and both have a word starting at ``p`` cut the same words from there on, as
long as the regex has not needed a character that one of them lacks. The regex reads one
character past a word, two for the contractions (``'re`` tried after ``'``), and for whitespace
``\s+(?!\S)`` reads the whole run and the character after it. So a word boundary is settled
once a non-whitespace character follows it within the text (and, at the cut end of a window,
two more characters). A piece ``text[a:b]`` therefore has the document's tokens between

- a *resync* point: the first word start at or after ``a`` that the document and the piece
  share, found by encoding a short window from ``a`` (nothing to encode when ``a`` is itself a
  word start of the document), and
- the last word start of the document with a non-whitespace character after it inside the
  piece (the words after it are encoded again, as the piece's end cuts them).

When no shared word start turns up in the window (one very long word), the piece is encoded
whole. Word starts come from ``Encoding.word_ids``, recorded when documents are tokenised
(:mod:`mixer.documents`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from mixer.tokenizer import token_bytes

HEAD_WINDOW_CHARS = 64  # how far past a cut to look for a word start the piece shares


@dataclass(frozen=True)
class TokenisedText:
    """A text with its ids and, per token, whether it begins a pre-tokenizer word."""

    text: str
    ids: np.ndarray  # uint32
    word_starts: np.ndarray  # bool, same length as ids


def word_start_flags(word_ids: list[int | None]) -> np.ndarray:
    """Per token, whether it opens a new word (its word id differs from the previous token's)."""
    words = np.asarray([-1 if word is None else word for word in word_ids], dtype=np.int64)
    flags = np.ones(len(words), dtype=bool)
    flags[1:] = words[1:] != words[:-1]
    return flags


class PieceEncoder:
    """Encodes pieces of tokenised texts; one per tokenizer (it builds a byte-length table)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.byte_lengths = np.asarray([len(token) for token in token_bytes(tokenizer)], dtype=np.int64)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    def pieces(self, document: TokenisedText, cuts: list[int]) -> list[np.ndarray]:
        """The ids of ``text[0:c1], text[c1:c2], ..., text[cn:]`` for character ``cuts``."""
        data = document.text.encode("utf-8")
        bounds = [0, *(len(document.text[:cut].encode("utf-8")) for cut in cuts), len(data)]
        token_ends = np.cumsum(self.byte_lengths[document.ids])
        token_starts = token_ends - self.byte_lengths[document.ids]
        # byte offsets of the document's word starts, and the token index of each
        word_tokens = np.flatnonzero(document.word_starts)
        word_offsets = token_starts[word_tokens]
        return [
            self._piece(document, data, start, end, word_offsets, word_tokens)
            for start, end in zip(bounds[:-1], bounds[1:])
        ]

    def _piece(
        self, document: TokenisedText, data: bytes, start: int, end: int,
        word_offsets: np.ndarray, word_tokens: np.ndarray,
    ) -> np.ndarray:
        """Ids of ``data[start:end]`` (byte offsets at character boundaries)."""
        if start == end:
            return np.zeros(0, dtype=np.uint32)
        n_tokens = len(document.ids)
        resync = self._resync(data, start, end, word_offsets, word_tokens)
        if resync is None:
            return self.encode(data[start:end].decode("utf-8"))
        head, first_token, first_offset = resync
        if end == len(data):
            return np.concatenate([head, document.ids[first_token:n_tokens]]).astype(np.uint32)
        # the last word start settled inside the piece: a non-whitespace character follows it
        settled = start + len(data[start:end].decode("utf-8").rstrip().encode("utf-8"))
        last = int(np.searchsorted(word_offsets, settled, side="left")) - 1
        if last < 0 or word_offsets[last] < first_offset:
            return self.encode(data[start:end].decode("utf-8"))
        last_offset, last_token = int(word_offsets[last]), int(word_tokens[last])
        tail = self.encode(data[last_offset:end].decode("utf-8"))
        return np.concatenate([head, document.ids[first_token:last_token], tail]).astype(np.uint32)

    def _resync(
        self, data: bytes, start: int, end: int, word_offsets: np.ndarray, word_tokens: np.ndarray,
    ) -> tuple[np.ndarray, int, int] | None:
        """``(ids before the shared word start, its token index, its byte offset)``, or None."""
        at = int(np.searchsorted(word_offsets, start))
        if at < len(word_offsets) and word_offsets[at] == start:
            return np.zeros(0, dtype=np.uint32), int(word_tokens[at]), start
        window_text = data[start:end].decode("utf-8")[:HEAD_WINDOW_CHARS]
        whole = len(window_text.encode("utf-8")) == end - start  # the window is the whole piece
        # near the window's cut end the regex may have stopped for want of text
        settled = len(window_text) if whole else len(window_text.rstrip()) - 2
        encoding = self.tokenizer.encode(window_text, add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=np.uint32)
        char_offsets = encoding.offsets
        for index in np.flatnonzero(word_start_flags(encoding.word_ids)).tolist():
            char = char_offsets[index][0] if index else 0
            if char >= settled:
                break
            offset = start + len(window_text[:char].encode("utf-8"))
            found = int(np.searchsorted(word_offsets, offset))
            if index and found < len(word_offsets) and word_offsets[found] == offset:
                return ids[:index], int(word_tokens[found]), offset
        return None
