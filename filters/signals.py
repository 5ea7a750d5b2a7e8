"""Cheap text statistics shared by the domain tagger and the quality scorer.

Each is a pure function of the text, in [0, 1] unless its name says it is a count.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
_LATEX_COMMAND = re.compile(r"\\(?:frac|sum|int|sqrt|alpha|beta|gamma|delta|pi|theta|lambda|sigma|"
                            r"infty|cdot|le|ge|neq|partial|mathbb|mathrm|left|right|prod|lim|log|exp|"
                            r"sin|cos|binom|begin|end)\b")
_INLINE_MATH = re.compile(r"\$[^$\n]{1,200}\$")
_FORMULA = re.compile(r"[A-Za-z0-9)\]]\s*[=<>≤≥]\s*[-A-Za-z0-9(\\]|\^|_\{|\b\d+\s*[+*/-]\s*\d+\b")
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|if .*:\s*$|for .*:\s*$|#include|"
    r"public |private |function\b|const |let |var |}|{$|@\w+)|[;{}]\s*$"
)
_ENGLISH_STOP_WORDS = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from "
    "they we say her she or an will my one all would there their what so up out if about who get "
    "which go me is are was were".split()
)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def saturate(value: float, full_at: float) -> float:
    """Map a non-negative rate onto [0, 1], reaching 1 at ``full_at``."""
    return max(0.0, min(1.0, value / full_at))


def math_density(text: str) -> float:
    """LaTeX commands, inline math and formula-like patterns per 100 words, saturating at 8."""
    n_words = max(1, len(words(text)))
    hits = (
        len(_LATEX_COMMAND.findall(text))
        + 2 * len(_INLINE_MATH.findall(text))
        + len(_FORMULA.findall(text))
    )
    return saturate(100.0 * hits / n_words, full_at=8.0)


def code_line_fraction(text: str) -> float:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return 0.0
    return sum(1 for line in lines if _CODE_LINE.search(line)) / len(lines)


def alphanumeric_fraction(text: str) -> float:
    if not text:
        return 0.0
    return sum(map(str.isalnum, text)) / len(text)


def stop_word_fraction(tokens: list[str]) -> float:
    if not tokens:
        return 0.0
    return sum(1 for token in tokens if token.lower() in _ENGLISH_STOP_WORDS) / len(tokens)


def alpha_word_fraction(tokens: list[str]) -> float:
    if not tokens:
        return 0.0
    # isalpha() first: most words are all letters, and the per-character scan is 6x slower.
    return sum(1 for token in tokens if token.isalpha() or any(map(str.isalpha, token))) / len(tokens)


def unique_word_fraction(tokens: list[str]) -> float:
    if not tokens:
        return 0.0
    return len({token.lower() for token in tokens}) / len(tokens)
