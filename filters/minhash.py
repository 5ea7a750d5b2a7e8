"""MinHash signatures and LSH band keys for a batch of documents, computed with numpy.

A document's shingles are its word ``ngram``-grams (words: ``\\w+`` runs of the lowercased
text; a document with fewer words than ``ngram`` is one shingle of all of them, and one with
no word has no signature). Each shingle is hashed to 32 bits, and the signature applies
datasketch's ``affine32`` permutations to those hashes: the MurmurHash3 finaliser, then
``h -> a*h + b mod 2^32`` for each of ``bands * rows`` seeded (a, b), keeping the minimum.
datasketch does this one ``MinHash`` object per document; here every shingle of a batch goes
through the same arithmetic at once, and the tests check the signatures are datasketch's,
value for value.

Band keys: a band's ``rows`` values hashed to 64 bits together with the band's number, so two
documents share a key exactly when they agree on a whole band (up to a 2^-64 collision).
Nothing here depends on the process: the same text gives the same signature everywhere.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import regex

_WORD_CHAR = regex.compile(r"\w")
# Odd 64-bit multipliers: shingle and band hashes are polynomials in these, mod 2^64.
_MIX = np.random.default_rng(0x5EED).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_CHUNK_VALUES = 1 << 22  # shingles x permutations evaluated at once (16 MiB of uint32)
_WORD_CACHE_LIMIT = 1 << 20


def fmix(values: np.ndarray, width: int) -> np.ndarray:
    """datasketch's MurmurHash3 finaliser (a bijection on ``width``-bit integers), elementwise.
    datasketch is imported on first use: its package import pulls in scipy (0.7 s), which
    every CLI command that loads a config would otherwise pay."""
    from datasketch.minhash import _fmix

    return _fmix(values, width)


class _NonWordToSpace(dict):
    """A ``str.translate`` table, filled as characters are met, that turns every character
    ``\\w`` does not match into a space: ``lower().translate().split()`` then gives the same
    words as ``regex.findall(r"\\w+")`` at a third of the cost."""

    def __missing__(self, code: int) -> int:
        self[code] = value = code if _WORD_CHAR.match(chr(code)) else 32
        return value


_TO_SPACE = _NonWordToSpace()


def _words(text: str) -> list[str]:
    return text.lower().translate(_TO_SPACE).split()


def _word_hash(word: str) -> int:
    return zlib.crc32(word.encode("utf-8")) | (len(word) << 32)


@dataclass(frozen=True)
class MinHashScheme:
    """The parameters two signatures must share to be compared."""

    ngram: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @cached_property
    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        from datasketch import MinHash

        a, b = MinHash(num_perm=self.num_perm, seed=self.seed, scheme="affine32").permutations
        return a.astype(np.uint32), b.astype(np.uint32)


class MinHasher:
    """Signatures (``num_perm`` uint32 per document) and band keys for batches of texts."""

    def __init__(self, scheme: MinHashScheme) -> None:
        if scheme.ngram > len(_MIX):
            raise ValueError(f"ngram {scheme.ngram} exceeds {len(_MIX)}")
        self.scheme = scheme
        self._words: dict[str, int] = {}

    def _word_hashes(self, text: str) -> list[int]:
        # Words repeat across documents (Zipf), so a per-process cache saves most crc32 calls.
        cache = self._words
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        try:
            return [cache[word] for word in _words(text)]
        except KeyError:
            return [cache[word] if word in cache else cache.setdefault(word, _word_hash(word))
                    for word in _words(text)]

    def shingle_hashes(self, texts: list[str]) -> list[np.ndarray]:
        """Per text, the 32-bit hashes of its shingles (repeats included: a signature is a
        minimum, so they cost nothing but time). Computed for the batch at once, since numpy's
        per-call overhead would otherwise dominate short documents."""
        n = self.scheme.ngram
        per_text = [self._word_hashes(text) for text in texts]
        lengths = np.array([len(words) for words in per_text], dtype=np.int64)
        words = np.fromiter((h for words in per_text for h in words), dtype=np.uint64, count=int(lengths.sum()))
        starts = np.cumsum(lengths) - lengths
        # Shingle i covers words[i : i+n]; it is kept when those words belong to one text.
        count = max(words.size - n + 1, 0)
        combined = np.zeros(count, dtype=np.uint64)
        for k in range(n):
            combined += words[k:k + count] * _MIX[k]
        counts = np.maximum(lengths - n + 1, 0)
        first = np.cumsum(counts) - counts  # where each text's shingles start in the output
        keep = np.repeat(starts - first, counts) + np.arange(counts.sum())
        shingles = combined[keep]
        # A text shorter than n words is one shingle of all its words.
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        if short.size:
            values = [sum(int(words[start + k]) * int(_MIX[k]) for k in range(length)) % 2**64
                      for start, length in zip(starts[short], lengths[short])]
            shingles = np.insert(shingles, first[short], np.array(values, dtype=np.uint64))
            counts[short] = 1
        hashed = (fmix(shingles, 64) >> np.uint64(32)).astype(np.uint32)
        return np.split(hashed, np.cumsum(counts)[:-1])

    def signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(signatures, has_words)``: a (len(texts), num_perm) uint32 array, and which rows
        are real (a text without words gets a row of 0xFFFFFFFF and ``False``)."""
        shingles = self.shingle_hashes(texts)
        return self.signatures_of(shingles), np.array([s.size > 0 for s in shingles], dtype=bool)

    def signatures_of(self, shingles: list[np.ndarray]) -> np.ndarray:
        """Signatures of documents given as arrays of 32-bit shingle hashes."""
        a, b = self.scheme.permutations
        out = np.full((len(shingles), self.scheme.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        rows_per_chunk = max(1, _CHUNK_VALUES // self.scheme.num_perm)
        # Walk the concatenated shingles in chunks; a document may span chunk boundaries.
        lengths = np.array([s.size for s in shingles], dtype=np.int64)
        owners = np.repeat(np.arange(len(shingles)), lengths)
        values = np.concatenate(shingles) if shingles else np.empty(0, dtype=np.uint32)
        for start in range(0, values.size, rows_per_chunk):
            chunk = fmix(values[start:start + rows_per_chunk], 32)
            owner = owners[start:start + rows_per_chunk]
            # Permutations along rows, shingles along columns: numpy reduces contiguous rows
            # several times faster than the transpose. uint32 arithmetic wraps: mod 2^32.
            permuted = np.multiply(a[:, None], chunk[None, :])
            permuted += b[:, None]
            firsts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            minima = np.minimum.reduceat(permuted, firsts, axis=1).T
            docs = owner[firsts]
            out[docs] = np.minimum(out[docs], minima)
        return out

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n, bands) uint64 keys; equal keys in a column mean an equal band."""
        bands, rows = self.scheme.bands, self.scheme.rows
        grouped = signatures.reshape(len(signatures), bands, rows).astype(np.uint64)
        keys = np.zeros((len(signatures), bands), dtype=np.uint64)
        for r in range(rows):
            keys += grouped[:, :, r] * _MIX[r]
        keys += np.arange(bands, dtype=np.uint64) * _MIX[rows]
        return fmix(keys, 64)


def similarity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of paired rows of two signature arrays."""
    return (left == right).mean(axis=1)
