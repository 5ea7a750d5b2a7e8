"""Interleaving sources' documents and packing them into fixed-length sequences.

Interleaving follows the idea of Megatron-LM's blended dataset index (``build_blending_indices``):
at every step take the next document of the source whose realised share is furthest below its
target share. Here shares are counted in tokens and a step is one whole document, and the
arithmetic is in integers, so the order is exact and the same on every machine. Written by hand
because Megatron's helper is a C++ extension of its training framework, per sample, not a
library.

Packing is concat-and-chunk: documents are laid end to end (each already ends with the
end-of-document token) and cut every ``seq_len`` tokens, so a document may run across two
sequences; it then continues as segment 0 of the next one. The tail that does not fill a last
sequence is **dropped**, not padded: padding would need a loss mask the stream format does not
carry, and dropping keeps every written token a real one. The dropped tokens are counted per
source so the build report stays honest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


PAD_SOURCE = 255  # the source index of padding tokens, so sources number at most 255


def check_sources(n_sources: int) -> None:
    if n_sources > PAD_SOURCE:
        raise ValueError(f"a phase holds at most {PAD_SOURCE} sources, got {n_sources}")


@dataclass(frozen=True)
class PackedPhase:
    """A phase's sequences in the stream layout of :mod:`mixer.stream` (padding included)."""

    tokens: np.ndarray  # uint32 [n_seq, seq_len]
    segments: np.ndarray  # uint32 [n_seq, seq_len], document index within the sequence
    sources: np.ndarray  # uint8 [n_seq, seq_len], source index, PAD_SOURCE on padding
    written_by_source: np.ndarray  # int64 [n_sources], real tokens in the sequences
    dropped_by_source: np.ndarray  # int64 [n_sources], tokens left out (tail, truncation)
    truncated_by_source: np.ndarray  # int64 [n_sources], documents split or cut
    padding: int  # pad tokens in the sequences


def interleave(lengths: Sequence[Sequence[int]], targets: Sequence[int]) -> list[tuple[int, int]]:
    """The order in which to take documents: ``(source, position in that source's list)``.

    ``lengths[i]`` are the token lengths of source ``i``'s documents, in the order they are to
    be taken; ``targets[i]`` the source's target tokens (its share is ``targets[i] / sum``).
    At each step the source with the largest deficit ``share * (T + 1) - taken`` is chosen,
    ``T`` being the tokens taken so far (Megatron's rule, in tokens); ties go to the larger
    target, then to the earlier source.
    """
    budget = sum(targets)
    taken = [0] * len(lengths)
    next_position = [0] * len(lengths)
    total = 0
    order: list[tuple[int, int]] = []
    remaining = sum(len(source_lengths) for source_lengths in lengths)
    for _ in range(remaining):
        # deficit scaled by the budget, so it stays an exact integer
        choice = max(
            (i for i in range(len(lengths)) if next_position[i] < len(lengths[i])),
            key=lambda i: (targets[i] * (total + 1) - taken[i] * budget, targets[i], -i),
        )
        length = int(lengths[choice][next_position[choice]])
        order.append((choice, next_position[choice]))
        next_position[choice] += 1
        taken[choice] += length
        total += length
    return order


def pack(
    documents: Sequence[np.ndarray], document_sources: Sequence[int], seq_len: int, n_sources: int
) -> PackedPhase:
    """Concatenate ``documents`` (token id arrays, each non-empty) and cut them into sequences."""
    if any(len(document) == 0 for document in documents):
        raise ValueError("pack: empty document; every document has at least its end token")
    check_sources(n_sources)
    lengths = np.asarray([len(document) for document in documents], dtype=np.int64)
    flat = np.concatenate(documents).astype(np.uint32) if documents else np.zeros(0, np.uint32)
    document_index = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
    source_index = np.repeat(np.asarray(document_sources, dtype=np.int64), lengths)
    n_sequences = len(flat) // seq_len
    kept = n_sequences * seq_len
    shape = (n_sequences, seq_len)
    segments = document_index[:kept].reshape(shape)
    segments = segments - segments[:, :1]  # the document that opens a sequence is segment 0
    ends = np.cumsum(lengths)
    starts = ends - lengths
    # split across sequences, or partly in the dropped tail (a document wholly in it is dropped)
    truncated = (starts // seq_len != (ends - 1) // seq_len) & (starts < kept)
    return PackedPhase(
        tokens=flat[:kept].reshape(shape),
        segments=segments.astype(np.uint32),
        sources=source_index[:kept].reshape(shape).astype(np.uint8),
        written_by_source=np.bincount(source_index[:kept], minlength=n_sources),
        dropped_by_source=np.bincount(source_index[kept:], minlength=n_sources),
        truncated_by_source=np.bincount(
            np.asarray(document_sources, dtype=np.int64)[truncated], minlength=n_sources
        ),
        padding=0,
    )
