"""A per-domain quality score in [0, 1], comparable within a domain.

The heuristic part is the mean of a few signals that separate fluent text from junk in each
domain (``_QUALITY_INPUTS``), recorded as ``scores["quality_heuristic"]``. Where the run has a
fastText quality classifier for the document's domain (``quality.classifiers`` in the curate
config; ``filters/classifier.py``), its P(hq) is in ``scores["quality_classifier"]`` and

    quality = (1 - w) * quality_heuristic + w * quality_classifier,   w = classifier_weight

(default 0.5: neither signal alone decides). Without a classifier, ``quality`` is the
heuristic mean as before. Every input signal stays in ``scores`` so a score can be recomputed
with other weights. A classifier is configured per domain, so every document of a domain is
scored the same way and ``quality`` stays comparable within it.
"""

from __future__ import annotations

from filters.base import KEEP, Document, DocumentFilter, Verdict
from filters.classifier import SCORE_KEY as CLASSIFIER_KEY
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


HEURISTIC_KEY = "quality_heuristic"


class HeuristicQuality(DocumentFilter):
    """Sets ``quality`` from the heuristic signals and, where present, the classifier's
    probability; never drops (thresholds belong in the mixture's selectors)."""

    name = "quality"
    needs = ("text", "domain", "lang", "lang_score")
    adds = ("quality", "scores", f"scores.{HEURISTIC_KEY}")

    def __init__(self, classifier_weight: float = 0.5) -> None:
        if not 0.0 <= classifier_weight <= 1.0:
            raise ValueError(f"classifier_weight must be in [0, 1], got {classifier_weight}")
        self.classifier_weight = classifier_weight

    def check(self, doc: Document) -> Verdict:
        signals = _code_signals(doc) if doc.domain == "code" else _prose_signals(doc)
        doc.scores.update(signals)
        inputs = [
            doc.scores[name]
            for name in _QUALITY_INPUTS.get(doc.domain, _DEFAULT_INPUTS)
            if name in doc.scores
        ]
        heuristic = sum(inputs) / len(inputs) if inputs else 0.0
        doc.scores[HEURISTIC_KEY] = round(heuristic, 6)
        classifier = doc.scores.get(CLASSIFIER_KEY)
        if classifier is None:
            doc.quality = round(heuristic, 6)
        else:
            weight = self.classifier_weight
            doc.quality = round((1.0 - weight) * heuristic + weight * classifier, 6)
        return KEEP
