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
sequence is **dropped**, not padded, so every token concat writes is a real one. The dropped
tokens are counted per source so the build report stays honest.

Best-fit packing (Ding et al. 2024, "Fewer Truncations Improve Language Modeling") splits only
the documents longer than ``seq_len``: within a window of about ``window_tokens`` tokens'
worth of documents, the pieces are placed longest first, each into the open sequence with the
least room that still holds it. Concatenation cuts a document at nearly every sequence
boundary, so the model sees many documents without their beginning (or end); best-fit keeps
almost all of them whole at the cost of a little padding, which ``PAD_SOURCE`` marks so the
trainer masks it out of the loss. Nothing is dropped. A window's sequences are written in a
seeded random order, since best-fit decreasing fills them from long documents to short ones.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from heapq import heappop, heappush
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
    available = [len(source_lengths) for source_lengths in lengths]
    # visiting sources in tie-break order and keeping the first strict maximum breaks ties
    by_tie = sorted(range(len(lengths)), key=lambda i: (-targets[i], i))
    total = 0
    order: list[tuple[int, int]] = []
    for _ in range(sum(available)):
        choice, best = -1, 0
        for i in by_tie:
            if next_position[i] < available[i]:
                # deficit scaled by the budget, so it stays an exact integer
                deficit = targets[i] * (total + 1) - taken[i] * budget
                if choice < 0 or deficit > best:
                    choice, best = i, deficit
        position = next_position[choice]
        length = int(lengths[choice][position])
        order.append((choice, position))
        next_position[choice] = position + 1
        taken[choice] += length
        total += length
    return order


def pack(
    documents: Sequence[np.ndarray], document_sources: Sequence[int], seq_len: int, n_sources: int
) -> PackedPhase:
    """Concatenate ``documents`` (token id arrays, each non-empty) and cut them into sequences."""
    check_sources(n_sources)
    lengths = np.fromiter((len(document) for document in documents), dtype=np.int64, count=len(documents))
    if (lengths == 0).any():
        raise ValueError("pack: empty document; every document has at least its end token")
    ends = np.cumsum(lengths)
    starts = ends - lengths
    total = int(ends[-1]) if len(ends) else 0
    n_sequences = total // seq_len
    kept = n_sequences * seq_len
    shape = (n_sequences, seq_len)
    flat = np.empty(total, dtype=np.uint32)
    if documents:
        np.concatenate(documents, out=flat, casting="unsafe")  # token ids: any integer dtype
    # segments count the documents begun so far within each row, so the one that opens it
    # (begun in it or carried over from the last) is 0
    begins = np.zeros(kept, dtype=np.uint32)
    begins[starts[(starts < kept) & (starts % seq_len != 0)]] = 1
    doc_sources = np.asarray(document_sources, dtype=np.int64)
    in_sequences = np.clip(np.minimum(ends, kept) - starts, 0, None)
    # split across sequences, or partly in the dropped tail (a document wholly in it is dropped)
    truncated = (starts // seq_len != (ends - 1) // seq_len) & (starts < kept)

    def per_source(weights: np.ndarray) -> np.ndarray:
        return np.bincount(doc_sources, weights=weights, minlength=n_sources).astype(np.int64)

    segments = np.cumsum(begins, dtype=np.uint32).reshape(shape)  # flat cumsum: faster than per row
    segments -= segments[:, :1]  # nothing begins at a row's first token, so this restarts each row at 0
    return PackedPhase(
        tokens=flat[:kept].reshape(shape),
        segments=segments,
        sources=np.repeat(doc_sources.astype(np.uint8), lengths)[:kept].reshape(shape),
        written_by_source=per_source(in_sequences),
        dropped_by_source=per_source(lengths - in_sequences),
        truncated_by_source=np.bincount(doc_sources[truncated], minlength=n_sources),
        padding=0,
    )


def _windows(lengths: np.ndarray, window_tokens: int) -> np.ndarray:
    """First document of each window: a window closes once its tokens reach ``window_tokens``."""
    ends = np.cumsum(lengths)
    starts = [0]
    taken = 0  # tokens in the windows closed so far
    while True:
        # the document whose end brings the open window to window_tokens closes it
        last = int(np.searchsorted(ends, taken + window_tokens, side="left"))
        if last >= len(lengths) - 1:
            return np.asarray(starts, dtype=np.int64)
        starts.append(last + 1)
        taken = int(ends[last])


def _best_fit(lengths: list[int], seq_len: int) -> tuple[list[int], int]:
    """Bin of each piece, placed in the given order (longest first); bins count from 0 as opened.

    Open bins are kept by remaining room: ``rooms`` is the sorted list of the distinct rooms some
    bin has, so the least room that still fits a piece is one bisection away, and each room
    keeps a min-heap of its bins, so a tie goes to the earliest-opened one. Full bins leave the
    structure: no piece is empty. ``rooms`` holds at most ``seq_len`` values, so keeping it sorted
    is a short memmove, and its bisection runs in C: faster here than a tree walked in Python.
    """
    rooms: list[int] = []
    bins_with: dict[int, list[int]] = {}
    placed: list[int] = []
    n_bins = 0
    for length in lengths:
        at = bisect_left(rooms, length)
        if at < len(rooms):
            room = rooms[at]
            heap = bins_with[room]
            chosen = heappop(heap)
            if not heap:
                del rooms[at]
            room -= length
        else:
            chosen = n_bins
            n_bins += 1
            room = seq_len - length
        if room:
            heap = bins_with.get(room)
            if heap:
                heappush(heap, chosen)
            else:
                insort(rooms, room)
                bins_with[room] = [chosen]
        placed.append(chosen)
    return placed, n_bins


def pack_best_fit(
    documents: Sequence[np.ndarray],
    document_sources: Sequence[int],
    seq_len: int,
    n_sources: int,
    pad_id: int,
    window_tokens: int,
    shuffle_seed: int,
) -> PackedPhase:
    """Best-fit decreasing packing of ``documents`` (in stream order) into padded sequences.

    The documents are split, in order, into windows that close once they hold ``window_tokens``
    tokens. In a window, a document longer than ``seq_len`` becomes ``seq_len`` pieces from its
    head plus the rest (and counts as truncated), any other document is one piece; pieces go
    longest first (ties: window order) into the open bin with the least room that fits them
    (ties: the earliest opened), else into a new bin. A bin is a sequence: its pieces in the
    order placed, one segment each, then padding (``pad_id``, ``PAD_SOURCE``, one more segment).
    Row ``j`` of a window's rows holds its bin
    ``np.random.default_rng([shuffle_seed, window]).permutation(n_bins)[j]``; windows in order.
    """
    check_sources(n_sources)
    if seq_len < 1 or window_tokens < 1:
        raise ValueError(f"pack_best_fit: seq_len {seq_len}, window_tokens {window_tokens}")
    if len(document_sources) != len(documents):
        raise ValueError("pack_best_fit: one source per document")
    documents = list(documents)
    n_documents = len(documents)
    lengths = np.fromiter(map(len, documents), dtype=np.int64, count=n_documents)
    if (lengths == 0).any():
        raise ValueError("pack_best_fit: empty document; every document has at least its end token")
    doc_sources = np.asarray(document_sources, dtype=np.int64).reshape(-1)
    if n_documents and not 0 <= doc_sources.min() <= doc_sources.max() < n_sources:
        raise ValueError(f"pack_best_fit: document sources must lie in [0, {n_sources})")
    doc_window = np.zeros(n_documents, dtype=np.int64)
    if n_documents:
        doc_window[_windows(lengths, window_tokens)[1:]] = 1
    doc_window = np.cumsum(doc_window)

    # pieces in stream order: a document's pieces are consecutive, head first
    doc_pieces = -(-lengths // seq_len)
    piece_doc = np.repeat(np.arange(n_documents), doc_pieces)
    piece_rank = np.arange(len(piece_doc)) - (np.cumsum(doc_pieces) - doc_pieces)[piece_doc]
    piece_len = np.minimum(lengths[piece_doc] - piece_rank * seq_len, seq_len)

    out_piece, pieces_in_row = _place(piece_len, doc_window[piece_doc], seq_len, shuffle_seed)
    n_rows = len(pieces_in_row)

    # the output as one list of items, row by row: a row's pieces, then its (maybe empty) pad
    row_piece_end = np.cumsum(pieces_in_row)
    row_piece_start = row_piece_end - pieces_in_row
    out_len = piece_len[out_piece]
    filled = np.cumsum(out_len)[row_piece_end - 1]  # every row holds a piece
    pad_len = seq_len - np.diff(filled, prepend=0)
    is_pad = np.zeros(len(out_piece) + n_rows, dtype=bool)
    is_pad[row_piece_end + np.arange(n_rows)] = True
    is_piece = ~is_pad
    item_len = np.empty(len(is_pad), dtype=np.int64)
    item_len[is_piece] = out_len
    item_len[is_pad] = pad_len
    item_segment = np.empty(len(is_pad), dtype=np.uint32)
    item_segment[is_piece] = np.arange(len(out_piece)) - np.repeat(row_piece_start, pieces_in_row)
    item_segment[is_pad] = pieces_in_row
    item_source = np.full(len(is_pad), PAD_SOURCE, dtype=np.uint8)
    item_source[is_piece] = doc_sources[piece_doc[out_piece]]

    # an item's tokens: a whole document, a piece cut from one, or a run of padding
    cut = np.flatnonzero(doc_pieces[piece_doc] > 1)  # the pieces of truncated documents
    views: list[np.ndarray] = documents + [
        documents[doc][start : start + length]
        for doc, start, length in zip(
            piece_doc[cut].tolist(),
            (piece_rank[cut] * seq_len).tolist(),
            piece_len[cut].tolist(),
        )
    ]
    pad = np.full(seq_len, pad_id, dtype=np.uint32)
    views += [pad[:length] for length in range(seq_len + 1)]
    view_of_piece = piece_doc.copy()
    view_of_piece[cut] = n_documents + np.arange(len(cut))
    item_view = np.empty(len(is_pad), dtype=np.int64)
    item_view[is_piece] = view_of_piece[out_piece]
    item_view[is_pad] = n_documents + len(cut) + pad_len

    tokens = np.empty((n_rows, seq_len), dtype=np.uint32)
    segments = np.empty((n_rows, seq_len), dtype=np.uint32)
    sources = np.empty((n_rows, seq_len), dtype=np.uint8)
    _write_rows(views, item_view, item_len, item_segment, item_source, tokens, segments, sources)

    written = np.bincount(doc_sources, weights=lengths, minlength=n_sources).astype(np.int64)
    return PackedPhase(
        tokens=tokens,
        segments=segments,
        sources=sources,
        written_by_source=written,
        dropped_by_source=np.zeros(n_sources, dtype=np.int64),
        truncated_by_source=np.bincount(doc_sources[lengths > seq_len], minlength=n_sources),
        padding=int(tokens.size - lengths.sum()),
    )


def _place(
    piece_len: np.ndarray, piece_window: np.ndarray, seq_len: int, shuffle_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit each window's pieces and shuffle its bins into rows.

    Returns the pieces in output order (row by row, a row's pieces in the order placed) and the
    number of pieces in each row.
    """
    # placement order: by window, longest first, stable so that ties keep the window's order
    order = np.lexsort((-piece_len, piece_window))
    n_windows = int(piece_window[-1]) + 1 if len(piece_window) else 0
    window_ends = np.cumsum(np.bincount(piece_window, minlength=n_windows)).tolist()
    sorted_lengths = piece_len[order].tolist()
    local_bin = np.empty(len(order), dtype=np.int64)  # per placement, its bin in the window
    window_bins = np.zeros(n_windows, dtype=np.int64)
    begin = 0
    for window, end in enumerate(window_ends):
        placed, window_bins[window] = _best_fit(sorted_lengths[begin:end], seq_len)
        local_bin[begin:end] = placed
        begin = end

    # each window's rows follow the rows of the windows before it, its bins in a seeded order
    bin_base = np.cumsum(window_bins) - window_bins
    n_rows = int(window_bins.sum())
    row_of_bin = np.arange(n_rows, dtype=np.int64)
    for window in np.flatnonzero(window_bins > 1).tolist():
        base, count = int(bin_base[window]), int(window_bins[window])
        permutation = np.random.default_rng([shuffle_seed, window]).permutation(count)
        row_of_bin[base + permutation] = np.arange(base, base + count)
    placed_row = row_of_bin[bin_base[piece_window[order]] + local_bin]
    by_row = np.argsort(placed_row, kind="stable")  # stable: a row's pieces stay as placed
    return order[by_row], np.bincount(placed_row, minlength=n_rows)


def _write_rows(
    views: list[np.ndarray],
    item_view: np.ndarray,
    item_len: np.ndarray,
    item_segment: np.ndarray,
    item_source: np.ndarray,
    tokens: np.ndarray,
    segments: np.ndarray,
    sources: np.ndarray,
    chunk_tokens: int = 1 << 20,
) -> None:
    """Fill the outputs a run of rows at a time from the items (``views[item_view]``) in order.

    Each output byte is written once, in order, and the temporaries stay a chunk in size: on a
    phase of hundreds of millions of tokens, token-sized index arrays (compute each token's
    place, then scatter) cost more in memory traffic than the packing itself.
    """
    n_rows, seq_len = tokens.shape
    item_end = np.cumsum(item_len)
    chunk_rows = max(1, chunk_tokens // seq_len)
    first_item = 0
    for first in range(0, n_rows, chunk_rows):
        last = min(first + chunk_rows, n_rows)
        # the rows' items: up to the one ending on their last token (an empty pad included)
        end_item = int(np.searchsorted(item_end, last * seq_len, side="right"))
        items = slice(first_item, end_item)
        np.concatenate(
            [views[view] for view in item_view[items].tolist()],
            out=tokens[first:last].reshape(-1),
            casting="unsafe",  # token ids fit in uint32 whatever dtype the documents come in
        )
        segments[first:last] = np.repeat(item_segment[items], item_len[items]).reshape(-1, seq_len)
        sources[first:last] = np.repeat(item_source[items], item_len[items]).reshape(-1, seq_len)
        first_item = end_item
