"""Our faster Gopher and C4 subclasses: statistics equal datatrove's string for string, and
every decision (and C4's rewritten text) equals the stock filter's on the same words."""

from __future__ import annotations

import random

import pytest
from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams
from test_prose import perturb, web_texts

from filters.c4 import FastC4QualityFilter
from filters.gopher import (
    FastGopherQualityFilter,
    FastGopherRepetitionFilter,
    _NGrams,
    no_repeats_from,
    repeated_ngram_chars,
    top_ngram_chars,
)
from filters.words import FastEnglishTokenizer


def word_lists() -> list[list[str]]:
    tokenizer, rng = FastEnglishTokenizer(), random.Random(3)
    texts = web_texts()[:400]
    lists = [tokenizer.word_tokenize(text) for text in texts + [perturb(text, rng) for text in texts]]
    # Lists whose plain concatenations collide across word boundaries ("ab"+"c" == "a"+"bc"),
    # short ones, and heavy repeats.
    lists += [["ab", "c", "a", "bc", "d", "e", "f"] * 4, ["x"], [], ["a", "b"] * 40,
              # equal 6-gram concatenations whose 5-grams all differ (a prefix, not a repeat)
              ["a", "bc", "d", "e", "f", "gh", "zz", "ab", "c", "d", "e", "fg", "h"],
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


def test_no_repeats_from_five_grams_is_never_wrong() -> None:
    proved = 0
    for words in word_lists():
        if no_repeats_from(_NGrams(words, ""), 5):
            proved += 1
            assert all(find_all_duplicate(words, n) == 0 for n in range(5, 11)), words[:20]
    assert proved > 100  # and it does prove the common case
    collision = ["a", "bc", "d", "e", "f", "gh", "zz", "ab", "c", "d", "e", "fg", "h"]
    assert find_all_duplicate(collision, 6) > 0 and not no_repeats_from(_NGrams(collision, ""), 5)


C4_KINDS = {True, "too_few_sentences", "curly_bracket", "lorem_ipsum"}


@pytest.mark.parametrize("ours,stock,settings,expected", [
    (FastGopherRepetitionFilter, GopherRepetitionFilter, {}, {True, "top_2_gram", "dup_para_frac"}),
    (FastGopherQualityFilter, GopherQualityFilter, {}, {True, "gopher_short_doc", "gopher_below_alpha_threshold"}),
    (FastC4QualityFilter, C4QualityFilter, {}, C4_KINDS),
    (FastC4QualityFilter, C4QualityFilter, {"filter_no_terminal_punct": False}, C4_KINDS),
    (FastC4QualityFilter, C4QualityFilter, {"min_num_sentences": 0}, {True, "curly_bracket", "lorem_ipsum"}),
])
def test_every_decision_equals_the_stock_filter_on_the_same_words(ours, stock, settings, expected) -> None:
    tokenizer = FastEnglishTokenizer()
    mine, theirs = ours(language=tokenizer, **settings), stock(language=tokenizer, **settings)
    texts = decision_texts(4) + ["{ not prose }", "Lorem ipsum dolor sit amet, consectetur adipiscing elit."]
    outcomes = []
    for text in texts:
        ours_doc, stock_doc = DatatroveDocument(text=text, id="x"), DatatroveDocument(text=text, id="x")
        a, b = mine.filter(ours_doc), theirs.filter(stock_doc)
        assert (a, ours_doc.text) == (b, stock_doc.text), text[:200]  # C4 also rewrites the text
        outcomes.append(a if a is True else a[1])
    assert set(outcomes) >= expected
