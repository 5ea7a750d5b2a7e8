"""Gopher repetition (Rae et al. 2021, table A1) exactly as datatrove decides it, with its
n-gram statistics computed faster.

Why it exists: with spaCy out of the way (``filters.words``), datatrove's repetition filter
was the largest per-document cost of curation. For every n it builds each n-gram by joining a
list slice of words, and counts the top n-grams in a Python loop. Here every n-gram is a slice
of one string the words were joined into once, with the same separator datatrove uses, so the
keys are the same strings; counting runs in ``Counter``'s C loop; and the duplicate-n-gram scan
is skipped when a set shows no n-gram repeats at all, which is the common case, since the scan
can only count a repeat. The line and paragraph rules, the thresholds, the order of checks and
the reasons are datatrove's (the class reads its own constructor's settings), and
tests/test_prose.py checks every decision against datatrove's stock filter with spaCy.
"""

from __future__ import annotations

from collections import Counter
from itertools import accumulate

from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import split_into_words


class _NGrams:
    """The n-grams of one word list as slices of the words joined by ``separator``."""

    def __init__(self, words: list[str], separator: str) -> None:
        self.joined = separator.join(words)
        self.count = len(words)
        # starts[i]: where word i begins; one past the end for i == len(words).
        self.starts = [0, *accumulate(len(word) + len(separator) for word in words)]
        self.gap = len(separator)

    def keys(self, n: int) -> list[str]:
        """Every n-gram, in order: what datatrove gets from ``separator.join(words[i:i+n])``."""
        joined, starts, gap = self.joined, self.starts, self.gap
        return [joined[starts[i] : starts[i + n] - gap] for i in range(self.count - n + 1)]


def top_ngram_chars(ngrams: _NGrams, n: int) -> int:
    """Characters covered by the most frequent n-gram (first seen wins a tie), or -1 if the
    text has fewer than n words."""
    keys = ngrams.keys(n)
    if not keys:
        return -1
    gram, count = Counter(keys).most_common(1)[0]
    return len(gram) * count


def repeated_ngram_chars(ngrams: _NGrams, n: int) -> int:
    """Characters in n-grams that repeat an earlier one, scanning left to right and jumping
    past each repeat (datatrove's ``find_all_duplicate``)."""
    keys = ngrams.keys(n)
    if len(set(keys)) == len(keys):
        return 0  # no n-gram occurs twice, so the scan cannot find a repeat
    seen: set[str] = set()
    repeated, index = 0, 0
    while index < len(keys):
        key = keys[index]
        if key in seen:
            repeated += len(key)
            index += n
        else:
            seen.add(key)
            index += 1
    return repeated


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """datatrove's ``GopherRepetitionFilter`` with the n-gram statistics above."""

    def filter(self, doc: DatatroveDocument) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        for parts, (count_frac, char_frac), label in (
            (self.paragraph_exp.split(text.strip()), (self.dup_para_frac, self.dup_para_char_frac), "para"),
            (self._line_splitter.split(text), (self.dup_line_frac, self.dup_line_char_frac), "line"),
        ):
            duplicates, duplicate_chars = find_duplicates(parts)
            if count_frac and duplicates / len(parts) > count_frac:
                return False, f"dup_{label}_frac"
            if char_frac and duplicate_chars / len(text) > char_frac:
                return False, f"dup_{label}_char_frac"

        words = split_into_words(text, self.language)
        spaced = _NGrams(words, " ")
        for n, limit in self.top_n_grams:
            covered = top_ngram_chars(spaced, n)
            if covered >= 0 and covered / len(text) > limit:
                return False, f"top_{n}_gram"
        concatenated = _NGrams(words, "")
        for n, limit in self.dup_n_grams:
            if repeated_ngram_chars(concatenated, n) / len(text) > limit:
                return False, f"duplicated_{n}_n_grams"
        return True
