"""Prose quality rules from datatrove: Gopher quality and Gopher repetition (Rae et al. 2021),
with datatrove's published defaults.

They apply to English web prose only: their stop-word list is English, and their length and
symbol rules would wrongly drop instruction pairs, short reasoning traces, math and code.
"""

from __future__ import annotations

from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

from filters.base import KEEP, Document, DocumentFilter, Verdict

PROSE_DOMAINS = frozenset({"web"})


class _DatatroveRule(DocumentFilter):
    """Adapts one datatrove filter: its (False, reason) becomes our drop reason."""

    reason_prefix = ""

    def __init__(self, rule) -> None:
        self.rule = rule

    def applies_to(self, doc: Document) -> bool:
        return doc.domain in PROSE_DOMAINS and doc.lang == "en"

    def check(self, doc: Document) -> Verdict:
        result = self.rule.filter(DatatroveDocument(text=doc.text, id=doc.id))
        passed = result is True or (isinstance(result, tuple) and result[0])
        doc.scores[f"{self.name}_pass"] = 1.0 if passed else 0.0
        if passed:
            return KEEP
        reason = result[1] if isinstance(result, tuple) and len(result) > 1 else self.name
        if not reason.startswith(self.reason_prefix):
            reason = self.reason_prefix + reason
        return Verdict.drop(reason)


class GopherQuality(_DatatroveRule):
    name = "gopher_quality"
    reason_prefix = "gopher_"

    def __init__(self, **overrides: float) -> None:
        super().__init__(GopherQualityFilter(**overrides))


class GopherRepetition(_DatatroveRule):
    name = "gopher_repetition"
    reason_prefix = "gopher_rep_"

    def __init__(self, **overrides: float) -> None:
        super().__init__(GopherRepetitionFilter(**overrides))
