"""A per-domain quality score in [0, 1], comparable within a domain.

Version 0 is heuristic: the mean of a few signals that separate fluent text from junk in each
domain. The fastText quality classifiers of the curation issue will feed the same ``quality``
column; every signal used here is kept in ``scores`` so a later score can be compared.
"""

from __future__ import annotations

from filters.base import KEEP, Document, DocumentFilter, Verdict
from filters.signals import (
    alpha_word_fraction,
    alphanumeric_fraction,
    saturate,
    stop_word_fraction,
    unique_word_fraction,
    words,
)


def _prose_signals(doc: Document) -> dict[str, float]:
    tokens = words(doc.text)
    signals = {
        "alpha_word_fraction": alpha_word_fraction(tokens),
        "unique_word_fraction": unique_word_fraction(tokens[:2000]),
        "lang_score": doc.lang_score,
    }
    if doc.lang == "en":
        # Fluent English has roughly 40-50% stop words; junk and lists have few.
        signals["stop_word_fraction"] = stop_word_fraction(tokens)
        signals["stop_word_signal"] = saturate(signals["stop_word_fraction"], full_at=0.35)
    return signals


def _code_signals(doc: Document) -> dict[str, float]:
    lines = [line for line in doc.text.splitlines() if line.strip()]
    comments = sum(1 for line in lines if line.lstrip().startswith(("#", "//", "/*", "*", '"""')))
    return {
        "alphanumeric_fraction": alphanumeric_fraction(doc.text),
        "comment_signal": saturate(comments / max(1, len(lines)), full_at=0.15),
    }


# Which computed signals are averaged into ``quality``, per domain.
_QUALITY_INPUTS: dict[str, tuple[str, ...]] = {
    "web": ("alpha_word_fraction", "unique_word_fraction", "lang_score", "stop_word_signal"),
    "code": ("alphanumeric_fraction", "comment_signal"),
    "math": ("math_density", "alpha_word_fraction", "lang_score"),
}
_DEFAULT_INPUTS = ("alpha_word_fraction", "unique_word_fraction", "lang_score")


class HeuristicQuality(DocumentFilter):
    """Sets ``quality``; never drops (thresholds belong in the mixture's selectors)."""

    name = "quality"

    def check(self, doc: Document) -> Verdict:
        signals = _code_signals(doc) if doc.domain == "code" else _prose_signals(doc)
        doc.scores.update(signals)
        inputs = [
            doc.scores[name]
            for name in _QUALITY_INPUTS.get(doc.domain, _DEFAULT_INPUTS)
            if name in doc.scores
        ]
        doc.quality = round(sum(inputs) / len(inputs), 6) if inputs else 0.0
        return KEEP
