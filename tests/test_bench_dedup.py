"""bench/dedup.py's ground truth and scoring (the benchmark itself is run by hand)."""

from __future__ import annotations

import pytest

from bench.dedup import (
    components,
    exact_recall,
    generate_corpus,
    ground_truth,
    jaccard,
    score_removal,
    shingles,
)


def test_shingles_are_lowercased_word_5grams_and_a_short_text_is_one():
    assert shingles("One, two three! four five SIX") == {("one", "two", "three", "four", "five"),
                                                          ("two", "three", "four", "five", "six")}
    assert shingles("Too short here.") == {("too", "short", "here")}
    assert jaccard(shingles("a b c d e f"), shingles("a b c d e g")) == pytest.approx(1 / 3)


def test_components_join_pairs_at_the_threshold_transitively():
    def substituted(text: str, *positions: int) -> str:
        return " ".join("x" if f"w{i}" in {f"w{p}" for p in positions} else word
                        for i, word in enumerate(text.split()))

    base = " ".join(f"w{i}" for i in range(100))  # 96 shingles; a word inside changes 5 of them
    near = substituted(base, 20)  # Jaccard with base 91/101 = 0.90
    nearer = substituted(near, 50, 80)  # with near 86/106 = 0.81, with base 81/111 = 0.73
    far = substituted(base, 30, 60, 90)  # 0.73 with base and less with the others: alone
    texts = [base, base, near, nearer, far, "something else entirely here now"]
    assert components(list("abcdef"), texts) == [["a", "b", "c", "d"]]


def test_score_removal_counts_precision_recall_and_emptied_components():
    truth = [["a", "b", "c"], ["d", "e"]]
    assert score_removal({"a", "b", "d", "x"}, truth) | {} == {
        "removed": 4, "should_remove": 3, "removed_in_components": 3, "removed_outside_components": 1,
        "recall_hits": 3, "components_emptied": 0, "precision": 0.75, "recall": 1.0, "f1": 0.85714}
    everything = score_removal({"a", "b", "c", "d", "e"}, truth)
    assert (everything["precision"], everything["recall"], everything["components_emptied"]) == (1.0, 1.0, 2)
    assert score_removal({"d"}, truth)["recall"] == pytest.approx(1 / 3, abs=1e-5)
    assert score_removal(set(), truth)["f1"] == 0.0
    assert exact_recall({"a", "b"}, [["a", "b", "c"], ["x", "y"]]) == {
        "copies_planted": 3, "copies_removed": 2, "recall": 0.66667}


def test_generated_corpus_is_seeded_and_plants_families_on_both_sides_of_the_threshold():
    corpus = generate_corpus(400, seed=3, min_words=50, max_words=120, exact_fraction=0.05,
                             near_fraction=0.2, copies_per_family=2.0)
    again = generate_corpus(400, seed=3, min_words=50, max_words=120, exact_fraction=0.05,
                            near_fraction=0.2, copies_per_family=2.0)
    assert corpus.texts == again.texts and len(set(corpus.ids)) == 400
    assert corpus.planted["exact_copies"] == 20 and corpus.planted["near_duplicates"] == 80
    assert min(corpus.edit_jaccards) < 0.8 <= max(corpus.edit_jaccards)
    truth = ground_truth(corpus)
    assert sum(len(group) - 1 for group in truth.exact) == 20
    exact_members = {doc_id for group in truth.exact for doc_id in group}
    in_components = {doc_id for component in truth.near for doc_id in component}
    assert exact_members <= in_components
