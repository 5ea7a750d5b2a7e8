"""PieceEncoder gives exactly the tokenizer's own ids for every piece of a tokenised text."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from mixer_fixtures import corpus_dir, sample_rows, tokenizer_path  # noqa: F401

from mixer.documents import encode_texts
from mixer import pieces
from mixer.pieces import HEAD_WINDOW_CHARS, PieceEncoder, TokenisedText
from mixer.tokenizer import load_tokenizer

TRICKY = [
    "it's what we'll do, isn't it? They'd've said 'yes'.",
    "def f(x):\n    return x  \n\n\n    # done\t\ttabs   and   spaces   \n",
    "numbers 12345 and 3.14159, 2026-11-23; totals: $1,000,000!!!",
    "北京市 emoji 🙂🙃 ok 👩‍👩‍👧 and é è ê, Ünïcödé",
    "   leading spaces, trailing spaces   ",
    "a literal <|endoftext|> inside, and <|fim_prefix|> too",
    "x" * (HEAD_WINDOW_CHARS * 3) + " then words after one very long word",
    "\n\n\n\n" + " " * 40 + "after a long run of blank space" + "\n" * 10,
]


@pytest.fixture(scope="module")
def encoder(tokenizer_path: Path) -> PieceEncoder:
    return PieceEncoder(load_tokenizer(tokenizer_path))


def tokenised(encoder: PieceEncoder, text: str) -> TokenisedText:
    ids, _, starts = encode_texts(encoder.tokenizer, [text])
    return TokenisedText(text, ids, starts)


def expected(encoder: PieceEncoder, text: str, cuts: list[int]) -> list[list[int]]:
    bounds = [0, *cuts, len(text)]
    return [encoder.tokenizer.encode(text[a:b], add_special_tokens=False).ids for a, b in zip(bounds, bounds[1:])]


@pytest.mark.parametrize("text", TRICKY)
def test_every_pair_of_cuts_gives_the_tokenizers_ids(encoder: PieceEncoder, text: str) -> None:
    document = tokenised(encoder, text)
    cuts = range(0, len(text) + 1, max(1, len(text) // 60))
    for start in cuts:
        for end in cuts:
            if start <= end:
                got = [piece.tolist() for piece in encoder.pieces(document, [start, end])]
                assert got == expected(encoder, text, [start, end]), (start, end)


def test_random_cuts_in_corpus_documents(encoder: PieceEncoder) -> None:
    rng = random.Random(3)
    texts = [row["text"] for row in sample_rows()]
    texts.append(" ".join(texts[:8]))  # a long one, so most pieces reuse the document's ids
    for text in texts:
        document = tokenised(encoder, text)
        for _ in range(25):
            cuts = sorted(rng.randint(0, len(text)) for _ in range(2))
            got = [piece.tolist() for piece in encoder.pieces(document, cuts)]
            assert got == expected(encoder, text, cuts)
            assert all(piece.dtype == np.uint32 for piece in encoder.pieces(document, cuts))


def test_a_long_document_is_not_encoded_again(encoder: PieceEncoder, monkeypatch) -> None:
    """Only a window at each cut is encoded, not the pieces."""
    text = " ".join(row["text"] for row in sample_rows()[:20])
    document = tokenised(encoder, text)
    encoded: list[int] = []
    original = encoder.tokenizer

    class Counting:
        def encode(self, piece: str, add_special_tokens: bool = True):
            encoded.append(len(piece))
            return original.encode(piece, add_special_tokens=add_special_tokens)

    monkeypatch.setattr(encoder, "tokenizer", Counting())
    cuts = [len(text) // 3, 2 * len(text) // 3]
    pieces = encoder.pieces(document, cuts)
    monkeypatch.setattr(encoder, "tokenizer", original)
    assert [piece.tolist() for piece in pieces] == expected(encoder, text, cuts)
    assert sum(encoded) <= 4 * HEAD_WINDOW_CHARS < len(text) // 10


@pytest.mark.parametrize("window", [HEAD_WINDOW_CHARS, 3, 5, 9])
def test_random_strings_of_awkward_characters(encoder: PieceEncoder, monkeypatch, window: int) -> None:
    """Whitespace runs of every kind, contractions, digits, punctuation, letters and marks in
    random mixes: wherever the cuts fall, the pieces are the tokenizer's own (small windows
    make most cuts go through the window's resync)."""
    monkeypatch.setattr(pieces, "HEAD_WINDOW_CHARS", window)
    alphabet = list("ab xy'sltmdrev 0123.,;!?-_()\n\n\t\r\x0b\x0c\x1c\x85\xa0") + [
        "\u2003", "\u3000", "\u200b", "\u180e", "é", "北", "🙂", "\u0301", "'s", "'ll", "  ", "\n  ",
    ]
    rng = random.Random(11)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120)))
        document = tokenised(encoder, text)
        for _ in range(6):
            cuts = sorted(rng.randint(0, len(text)) for _ in range(2))
            got = [piece.tolist() for piece in encoder.pieces(document, cuts)]
            assert got == expected(encoder, text, cuts), (text, cuts)
