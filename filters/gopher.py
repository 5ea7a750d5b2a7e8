"""Gopher quality and repetition (Rae et al. 2021) exactly as datatrove decides them, faster.

Why it exists: with spaCy out of the way (``filters.words``), datatrove's two Gopher filters
were the largest per-document cost of curation, in pure-Python loops over words. Two
subclasses keep datatrove's rules, thresholds (read from datatrove's own constructor), order
of checks and reasons, and change only how the statistics are computed:

- repetition: every n-gram is a slice of one string the words were joined into once, with the
  separator datatrove joins with, so the keys are the same strings; the top n-gram is counted
  in ``Counter``'s C loop; and the duplicate n-gram scans (n = 5..10) are skipped when the
  5-grams prove that no longer n-gram can repeat (``no_repeats_from``), since a scan only
  counts repeats.
- quality: a word's two properties (has a character outside punctuation, has a letter) depend
  on the word alone, so they are memoised per distinct word, and web text repeats its words.

tests/test_gopher.py checks the statistics string for string and every decision against the
stock filters; tests/test_prose.py checks the filters against datatrove with spaCy.
"""

from __future__ import annotations

from collections import Counter
from itertools import accumulate

from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import PUNCTUATION_SET, split_into_words


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


def no_repeats_from(ngrams: _NGrams, n: int) -> bool:
    """Whether no m-gram repeats for any m >= n, from the n-grams alone. If two m-grams are
    equal strings, the n-grams starting at the same two positions are both prefixes of that
    string, so they are equal, or one is a proper prefix of the other; and in sorted order a
    string that is a prefix of another is a prefix of the string right after it."""
    keys = ngrams.keys(n)
    if len(set(keys)) != len(keys):
        return False
    ordered = sorted(keys)
    return not any(following.startswith(key) for key, following in zip(ordered, ordered[1:]))


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
        if self.dup_n_grams and all(limit >= 0 for _, limit in self.dup_n_grams) and no_repeats_from(
            concatenated, min(n for n, _ in self.dup_n_grams)
        ):
            return True  # every duplicate n-gram fraction is 0, which no threshold exceeds
        for n, limit in self.dup_n_grams:
            if repeated_ngram_chars(concatenated, n) / len(text) > limit:
                return False, f"duplicated_{n}_n_grams"
        return True


class FastGopherQualityFilter(GopherQualityFilter):
    """datatrove's ``GopherQualityFilter`` with per-word properties memoised."""

    MEMO_WORDS = 1_000_000  # distinct words remembered before the memo starts over

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._memo: dict[str, tuple[bool, bool]] = {}

    def _properties(self, word: str) -> tuple[bool, bool]:
        """(has a character that is not punctuation, has an alphabetic character)."""
        found = self._memo.get(word)
        if found is None:
            if len(self._memo) >= self.MEMO_WORDS:
                self._memo.clear()
            found = self._memo[word] = (any(ch not in PUNCTUATION_SET for ch in word),
                                        any(ch.isalpha() for ch in word))
        return found

    def filter(self, doc: DatatroveDocument) -> bool | tuple[bool, str]:
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        lengths: list[int] = []  # of the words that are not only punctuation
        alpha_words = 0
        for word in words:
            not_symbol, alpha = self._properties(word)
            if not_symbol:
                lengths.append(len(word))
            alpha_words += alpha

        if self.min_doc_words and len(lengths) < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and len(lengths) > self.max_doc_words:
            return False, "gopher_long_doc"
        # The same IEEE value as datatrove's np.mean: an exact integer sum divided once.
        mean_length = sum(lengths) / len(lengths) if lengths else float("nan")
        if self.min_avg_word_length and mean_length < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and mean_length > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = text.splitlines()
        if self.max_bullet_lines_ratio and sum(
            line.lstrip().startswith(("•", "-")) for line in lines
        ) / len(lines) > self.max_bullet_lines_ratio:
            return False, "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio and sum(
            line.rstrip().endswith(("...", "…")) for line in lines
        ) / len(lines) > self.max_ellipsis_lines_ratio:
            return False, "gopher_too_many_end_ellipsis"
        if self.max_non_alpha_words_ratio and alpha_words / n_words < self.max_non_alpha_words_ratio:
            return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and len(self.stop_words.intersection(words)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True
