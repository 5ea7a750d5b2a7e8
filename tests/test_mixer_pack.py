"""Best-fit decreasing packing (``mixer.pack.pack_best_fit``) against a brute-force reference.

Documents are built from one ``arange``, so a token id is its position in the stream: each
output token says which document it came from and where in it it sat.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixer.pack import PAD_SOURCE, PackedPhase, pack, pack_best_fit

PAD_ID = 4_000_000_000  # no stream position reaches it


def stream_documents(lengths: list[int] | np.ndarray) -> list[np.ndarray]:
    """Documents whose tokens are their positions in the concatenated stream."""
    if len(lengths) == 0:
        return []
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    return np.split(np.arange(int(ends[-1]), dtype=np.uint32), ends[:-1])


def random_lengths(rng: np.random.Generator, n: int, seq_len: int) -> list[int]:
    """Mostly short documents, some over ``seq_len``, with many equal lengths (ties)."""
    short = rng.integers(1, seq_len + 1, n)
    long = rng.integers(seq_len + 1, 3 * seq_len + 1, n)
    return np.where(rng.random(n) < 0.15, long, short).tolist()


def lognormal_lengths(rng: np.random.Generator, n: int, mean: float) -> np.ndarray:
    return np.maximum(1, rng.lognormal(np.log(mean) - 0.5, 1.0, n)).astype(np.int64)


def windows_of(lengths: list[int], window_tokens: int) -> list[list[int]]:
    """Documents per window, the rule spelled out: a window closes at ``window_tokens``."""
    windows: list[list[int]] = [[]]
    held = 0
    for document, length in enumerate(lengths):
        if held >= window_tokens:
            windows.append([])
            held = 0
        windows[-1].append(document)
        held += length
    return windows if windows[0] else []


def reference_pack(
    documents: list[np.ndarray],
    sources: list[int],
    seq_len: int,
    window_tokens: int,
    shuffle_seed: int,
) -> list[tuple[list[int], list[int], list[int]]]:
    """Rows as (tokens, segments, sources), by the rule itself: O(pieces x bins), no tricks."""
    rows = []
    for window, members in enumerate(windows_of([len(d) for d in documents], window_tokens)):
        pieces = [
            (documents[d][start : start + seq_len].tolist(), sources[d])
            for d in members
            for start in range(0, len(documents[d]), seq_len)
        ]
        bins: list[list[tuple[list[int], int]]] = []
        for piece in sorted(pieces, key=lambda piece: -len(piece[0])):  # sorted() is stable
            rooms = [seq_len - sum(len(p[0]) for p in bin_) for bin_ in bins]
            fitting = [b for b, room in enumerate(rooms) if room >= len(piece[0])]
            if fitting:
                bins[min(fitting, key=lambda b: (rooms[b], b))].append(piece)
            else:
                bins.append([piece])
        for b in np.random.default_rng([shuffle_seed, window]).permutation(len(bins)):
            row_tokens, row_segments, row_sources = [], [], []
            for segment, (piece_tokens, source) in enumerate(bins[b]):
                row_tokens += piece_tokens
                row_segments += [segment] * len(piece_tokens)
                row_sources += [source] * len(piece_tokens)
            pad = seq_len - len(row_tokens)
            row_tokens += [PAD_ID] * pad
            row_segments += [len(bins[b])] * pad
            row_sources += [PAD_SOURCE] * pad
            rows.append((row_tokens, row_segments, row_sources))
    return rows


def check_layout(packed: PackedPhase, lengths: list[int], sources: list[int], seq_len: int) -> None:
    """Every token once, each segment one whole piece in order, padding only at row ends."""
    n_rows = packed.tokens.shape[0]
    assert packed.tokens.shape == packed.segments.shape == packed.sources.shape == (n_rows, seq_len)
    assert (packed.tokens.dtype, packed.segments.dtype, packed.sources.dtype) == (
        np.uint32,
        np.uint32,
        np.uint8,
    )
    real = packed.sources != PAD_SOURCE
    total = sum(lengths)
    np.testing.assert_array_equal(np.sort(packed.tokens[real]), np.arange(total))
    assert packed.padding == int((~real).sum()) == n_rows * seq_len - total
    assert (packed.tokens[~real] == PAD_ID).all()
    doc_start = np.cumsum(lengths) - lengths
    for row in range(n_rows):
        n_real = int(real[row].sum())
        assert n_real > 0 and real[row, :n_real].all(), "padding only at the end of a row"
        segments = packed.segments[row]
        n_segments = int(segments[n_real - 1]) + 1
        assert (segments[n_real:] == n_segments).all(), "the pad run is one segment, the next"
        steps = np.diff(segments[:n_real].astype(np.int64))
        assert segments[0] == 0 and set(steps.tolist()) <= {0, 1}
        for segment in range(n_segments):
            run = packed.tokens[row][segments == segment].astype(np.int64)
            assert (np.diff(run) == 1).all(), "a segment is consecutive tokens of its document"
            document = int(np.searchsorted(doc_start, run[0], side="right")) - 1
            offset = int(run[0] - doc_start[document])
            assert offset % seq_len == 0, "pieces are cut every seq_len tokens from the head"
            assert len(run) == min(seq_len, lengths[document] - offset), "a segment is one piece"
            assert (packed.sources[row][segments == segment] == sources[document]).all()


def test_every_token_once_as_whole_pieces() -> None:
    rng = np.random.default_rng(1)
    seq_len = 32
    lengths = random_lengths(rng, 300, seq_len)
    sources = rng.integers(0, 3, len(lengths)).tolist()
    packed = pack_best_fit(stream_documents(lengths), sources, seq_len, 3, PAD_ID, 400, 5)
    check_layout(packed, lengths, sources, seq_len)
    by_source = np.bincount(sources, weights=lengths, minlength=3)
    np.testing.assert_array_equal(packed.written_by_source, by_source)
    np.testing.assert_array_equal(packed.dropped_by_source, np.zeros(3))
    assert packed.truncated_by_source.dtype.kind == packed.written_by_source.dtype.kind == "i"


def test_matches_brute_force_best_fit_decreasing() -> None:
    rng = np.random.default_rng(2)
    for case in range(150):
        seq_len = int(rng.integers(1, 17))
        lengths = random_lengths(rng, int(rng.integers(0, 40)), seq_len)
        sources = rng.integers(0, 4, len(lengths)).tolist()
        window_tokens = int(rng.integers(1, 8 * seq_len))
        documents = stream_documents(lengths)
        packed = pack_best_fit(documents, sources, seq_len, 4, PAD_ID, window_tokens, case)
        expected = reference_pack(documents, sources, seq_len, window_tokens, case)
        shape = (len(expected), seq_len)
        for got, want in zip((packed.tokens, packed.segments, packed.sources), zip(*expected)):
            np.testing.assert_array_equal(got, np.asarray(want).reshape(shape), err_msg=f"{case}")
        if lengths:
            check_layout(packed, lengths, sources, seq_len)


def test_worked_example() -> None:
    # pieces longest first: 8 (doc 4's head), 6, 5, 3, 2, 2 (doc 4's rest); the 3 fills the
    # bin left with exactly 3; of the two 2s, doc 2's fills the bin left with 2 and doc 4's tail
    # finds no room and opens a bin
    lengths = [3, 5, 2, 6, 10]
    packed = pack_best_fit(stream_documents(lengths), [0, 1, 0, 1, 2], 8, 3, PAD_ID, 100, 0)
    real = packed.sources != PAD_SOURCE
    rows = sorted(row[mask].tolist() for row, mask in zip(packed.tokens, real))
    assert rows == [
        [3, 4, 5, 6, 7, 0, 1, 2],  # doc 1, then doc 0 into its 3 left
        [10, 11, 12, 13, 14, 15, 8, 9],  # doc 3, then doc 2
        [16, 17, 18, 19, 20, 21, 22, 23],  # doc 4's head
        [24, 25],  # doc 4's tail
    ]
    assert packed.padding == 6
    np.testing.assert_array_equal(packed.truncated_by_source, [0, 0, 1])
    np.testing.assert_array_equal(packed.written_by_source, [5, 11, 10])


def test_equal_room_goes_to_the_earliest_opened_bin() -> None:
    # longest first: doc 2 (7) opens bin 0, docs 0 and 1 (6 each) open bins 1 and 2, both with
    # room 4; doc 3 (4) ties them and takes bin 1, doc 5 (4) bin 2, doc 4 (3) bin 0's room 3
    lengths = [6, 6, 7, 4, 3, 4]  # stream positions: 0-5, 6-11, 12-18, 19-22, 23-25, 26-29
    packed = pack_best_fit(stream_documents(lengths), [0] * 6, 10, 1, PAD_ID, 100, 0)
    assert packed.padding == 0
    rows = sorted(packed.tokens.tolist())
    assert rows == [
        list(range(0, 6)) + list(range(19, 23)),
        list(range(6, 12)) + list(range(26, 30)),
        list(range(12, 19)) + list(range(23, 26)),
    ]


def test_truncates_only_long_documents_and_less_than_concat() -> None:
    rng = np.random.default_rng(3)
    seq_len = 512
    lengths = lognormal_lengths(rng, 5_000, 300)
    sources = rng.integers(0, 4, len(lengths))
    documents = stream_documents(lengths)
    total = int(lengths.sum())
    packed = pack_best_fit(documents, sources, seq_len, 4, PAD_ID, total, 0)
    long = sources[lengths > seq_len]
    np.testing.assert_array_equal(packed.truncated_by_source, np.bincount(long, minlength=4))
    concat = pack(documents, sources, seq_len, 4)
    assert concat.truncated_by_source.sum() > 2 * packed.truncated_by_source.sum()
    assert packed.padding <= 0.01 * packed.tokens.size
    assert packed.written_by_source.sum() == total  # nothing dropped, unlike concat's tail


def test_deterministic_and_the_seed_only_permutes_rows_within_windows() -> None:
    rng = np.random.default_rng(4)
    seq_len = 64
    lengths = lognormal_lengths(rng, 600, 40).tolist()
    sources = rng.integers(0, 2, len(lengths)).tolist()
    documents = stream_documents(lengths)
    window_tokens = 1_500

    def run(seed: int, docs: list[np.ndarray] = documents) -> PackedPhase:
        return pack_best_fit(docs, sources, seq_len, 2, PAD_ID, window_tokens, seed)

    first, again = run(7), run(7)
    as_int64 = run(7, [document.astype(np.int64) for document in documents])
    for packed in (again, as_int64):
        for name in ("tokens", "segments", "sources"):
            assert getattr(packed, name).tobytes() == getattr(first, name).tobytes()
    other = run(8)
    window = window_of_rows(first, lengths, window_tokens)
    np.testing.assert_array_equal(window_of_rows(other, lengths, window_tokens), window)
    assert len(set(window.tolist())) > 3
    moved = False
    for w in np.unique(window):
        rows_a = [row.tobytes() for row in rows_of(first, window == w)]
        rows_b = [row.tobytes() for row in rows_of(other, window == w)]
        assert sorted(rows_a) == sorted(rows_b)
        moved |= rows_a != rows_b
    assert moved, "another seed orders some window's rows differently"


def rows_of(packed: PackedPhase, mask: np.ndarray) -> list[np.ndarray]:
    stacked = np.concatenate([packed.tokens, packed.segments, packed.sources.astype(np.uint32)], 1)
    return list(stacked[mask])


def window_of_rows(packed: PackedPhase, lengths: list[int], window_tokens: int) -> np.ndarray:
    """The window of each row's real tokens; asserts a row never mixes two windows."""
    doc_window = np.zeros(len(lengths), dtype=np.int64)
    for window, members in enumerate(windows_of(lengths, window_tokens)):
        doc_window[members] = window
    doc_start = np.cumsum(lengths) - np.asarray(lengths)
    windows = []
    for row, sources in zip(packed.tokens, packed.sources):
        documents = np.searchsorted(doc_start, row[sources != PAD_SOURCE], side="right") - 1
        row_windows = set(doc_window[documents].tolist())
        assert len(row_windows) == 1, f"a row mixes windows {row_windows}"
        windows.append(row_windows.pop())
    return np.asarray(windows)


def test_windows_are_packed_apart_and_in_order() -> None:
    rng = np.random.default_rng(5)
    seq_len = 128
    lengths = lognormal_lengths(rng, 400, 60).tolist()
    window_tokens = 2 * seq_len
    documents = stream_documents(lengths)
    packed = pack_best_fit(documents, [0] * 400, seq_len, 1, PAD_ID, window_tokens, 1)
    window = window_of_rows(packed, lengths, window_tokens)  # asserts no row mixes windows
    assert (np.diff(window) >= 0).all(), "windows keep their order"
    n_windows = len(windows_of(lengths, window_tokens))
    assert n_windows > 50
    np.testing.assert_array_equal(np.unique(window), np.arange(n_windows))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty document"):
        pack_best_fit([np.arange(3), np.zeros(0, np.uint32)], [0, 0], 8, 1, 0, 10, 0)
    with pytest.raises(ValueError, match="at most"):
        pack_best_fit([np.arange(3)], [0], 8, 256, 0, 10, 0)
    with pytest.raises(ValueError, match="sources"):
        pack_best_fit([np.arange(3)], [1], 8, 1, 0, 10, 0)
