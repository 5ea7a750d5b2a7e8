"""Our Gopher statistics equal datatrove's, string for string, and so do the decisions."""

from __future__ import annotations

import random

import pytest
from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams
from test_prose import perturb, web_texts

from filters.gopher import FastGopherQualityFilter, FastGopherRepetitionFilter, _NGrams, repeated_ngram_chars, top_ngram_chars
from filters.words import FastEnglishTokenizer


def word_lists() -> list[list[str]]:
    tokenizer, rng = FastEnglishTokenizer(), random.Random(3)
    texts = web_texts()[:400]
    lists = [tokenizer.word_tokenize(text) for text in texts + [perturb(text, rng) for text in texts]]
    # Lists whose plain concatenations collide across word boundaries ("ab"+"c" == "a"+"bc"),
    # short ones, and heavy repeats.
    lists += [["ab", "c", "a", "bc", "d", "e", "f"] * 4, ["x"], [], ["a", "b"] * 40,
              ["the", "cat", "sat"] * 7 + ["on", "the", "mat"]]
    return lists


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_ngram_chars_equals_datatrove(n: int) -> None:
    for words in word_lists():
        grams = get_n_grams(words, n)
        expected = find_top_duplicate(grams) if grams else -1
        assert top_ngram_chars(_NGrams(words, " "), n) == expected, words[:20]


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9, 10])
def test_repeated_ngram_chars_equals_datatrove(n: int) -> None:
    for words in word_lists():
        assert repeated_ngram_chars(_NGrams(words, ""), n) == find_all_duplicate(words, n), words[:20]


def decision_texts(seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = web_texts()
    return texts + [perturb(text, rng) for text in texts] + [
        "word " * 300, "a b c d e f\n" * 30, "- item one\n- item two\n" * 40, "... " * 100,
        "# heading\n" * 60, "12 34 56 " * 50, "the of and " * 20]


@pytest.mark.parametrize("ours,stock,expected", [
    (FastGopherRepetitionFilter, GopherRepetitionFilter, {True, "top_2_gram", "dup_para_frac"}),
    (FastGopherQualityFilter, GopherQualityFilter, {True, "gopher_short_doc", "gopher_below_alpha_threshold"}),
])
def test_every_decision_equals_the_stock_filter_on_the_same_words(ours, stock, expected) -> None:
    tokenizer = FastEnglishTokenizer()
    mine, theirs = ours(language=tokenizer), stock(language=tokenizer)
    decisions = [(mine.filter(DatatroveDocument(text=t, id="x")), theirs.filter(DatatroveDocument(text=t, id="x")))
                 for t in decision_texts(4)]
    assert all(a == b for a, b in decisions)
    assert {a if a is True else a[1] for a, _ in decisions} >= expected
