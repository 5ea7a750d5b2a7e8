"""Prose quality rules from datatrove: Gopher repetition and Gopher quality (Rae et al. 2021),
C4 quality (Raffel et al. 2020) and FineWeb quality (Penedo et al. 2024).

Each filter runs datatrove's own class (for Gopher and C4 a subclass that reaches the same
decisions with less work, ``filters.gopher`` and ``filters.c4``), so the rules and thresholds are datatrove's; the
word and sentence splitting is swapped for ``filters.words.FastEnglishTokenizer``, which gives
spaCy's tokens several times faster (tests/test_prose.py measures agreement with stock
datatrove). Settings and order are FineWeb's published recipe (datatrove's
``examples/fineweb.py``): Gopher repetition → Gopher quality → C4 quality with
``filter_no_terminal_punct=False`` → FineWeb quality, every other argument at datatrove's
default. We follow FineWeb rather than C4's own defaults because C4's rule that drops every
line without terminal punctuation removes headings, list items and captions that FineWeb's
ablations showed are worth keeping; FineWeb's own line-punctuation rule then judges the
document as a whole. ``build_chain`` in ``pipelines/stages.py`` uses this order.

C4 quality edits the text as well as judging it: it strips each line, removes citation marks
such as "[1]" and "[edit]", and drops lines that are too short, mention javascript or cookie
and privacy policies, or hold a word over 1000 characters. The edited text replaces the
document's text, and ``c4_lines_removed``/``c4_chars_removed`` record what went.

They apply to English web prose only: their stop-word list and tokenizer are English, and
their length and symbol rules would wrongly drop instruction pairs, short reasoning traces,
math and code.
"""

from __future__ import annotations

from typing import Any

from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import (
    FineWebQualityFilter,
)
from datatrove.utils.word_tokenizers import WordTokenizer

from filters.base import KEEP, Document, DocumentFilter, Verdict
from filters.c4 import FastC4QualityFilter
from filters.gopher import FastGopherQualityFilter, FastGopherRepetitionFilter
from filters.words import FastEnglishTokenizer

PROSE_DOMAINS = frozenset({"web"})

# One tokenizer for every prose filter in a process: its memo of recent texts is what lets
# Gopher repetition and Gopher quality share one tokenisation of the same document.
_SHARED_TOKENIZER = FastEnglishTokenizer()


def shared_tokenizer() -> FastEnglishTokenizer:
    return _SHARED_TOKENIZER


class _DatatroveRule(DocumentFilter):
    """Adapts one datatrove filter: its (False, reason) becomes our drop reason, and any text
    it rewrote becomes our document's text."""

    reason_prefix = ""
    needs = ("text", "domain", "lang")
    rule_class: type = object  # the datatrove filter class (or our faster subclass of it)
    settings: dict[str, Any] = {}  # our defaults where they differ from datatrove's

    def __init__(self, tokenizer: WordTokenizer | None = None, **overrides: Any) -> None:
        """``tokenizer`` defaults to the process's shared one; ``overrides`` go to the rule."""
        language = tokenizer if tokenizer is not None else shared_tokenizer()
        self.rule = self.rule_class(language=language, **{**self.settings, **overrides})

    def applies_to(self, doc: Document) -> bool:
        return doc.domain in PROSE_DOMAINS and doc.lang == "en"

    def check(self, doc: Document) -> Verdict:
        theirs = DatatroveDocument(text=doc.text, id=doc.id)
        result = self.rule.filter(theirs)
        passed = result is True or (isinstance(result, tuple) and result[0])
        doc.scores[f"{self.name}_pass"] = 1.0 if passed else 0.0
        if not passed:
            reason = result[1] if isinstance(result, tuple) and len(result) > 1 else self.name
            if not reason.startswith(self.reason_prefix):
                reason = self.reason_prefix + reason
            return Verdict.drop(reason)
        if theirs.text != doc.text:
            self.record_edit(doc, theirs.text)
            doc.text = theirs.text
        return KEEP

    def record_edit(self, doc: Document, new_text: str) -> None:
        """Called before a rule's rewritten text replaces ``doc.text``."""


class GopherRepetition(_DatatroveRule):
    name = "gopher_repetition"
    reason_prefix = "gopher_rep_"
    adds = ("scores.gopher_repetition_pass",)
    rule_class = FastGopherRepetitionFilter


class GopherQuality(_DatatroveRule):
    name = "gopher_quality"
    reason_prefix = "gopher_"
    adds = ("scores.gopher_quality_pass",)
    rule_class = FastGopherQualityFilter


# FineWeb's setting for C4: judge lines by FineWeb's own punctuation rule instead.
FINEWEB_C4_SETTINGS: dict[str, Any] = {"filter_no_terminal_punct": False}


class C4Quality(_DatatroveRule):
    name = "c4_quality"
    reason_prefix = "c4_"
    adds = ("text", "scores.c4_quality_pass", "scores.c4_lines_removed", "scores.c4_chars_removed")
    rule_class = FastC4QualityFilter
    settings = FINEWEB_C4_SETTINGS

    def check(self, doc: Document) -> Verdict:
        doc.scores["c4_lines_removed"] = 0.0
        doc.scores["c4_chars_removed"] = 0.0
        return super().check(doc)

    def record_edit(self, doc: Document, new_text: str) -> None:
        # Lines C4 kept come back stripped and joined by single newlines, so count the
        # non-blank lines that went and the characters that went overall.
        before = sum(1 for line in doc.text.splitlines() if line.strip())
        after = sum(1 for line in new_text.splitlines() if line.strip())
        doc.scores["c4_lines_removed"] = float(before - after)
        doc.scores["c4_chars_removed"] = float(len(doc.text) - len(new_text))


class FineWebQuality(_DatatroveRule):
    name = "fineweb_quality"
    reason_prefix = "fineweb_"
    adds = ("scores.fineweb_quality_pass",)
    rule_class = FineWebQualityFilter


def fineweb_prose_chain(tokenizer: WordTokenizer | None = None) -> list[DocumentFilter]:
    """The four prose filters in FineWeb's order with FineWeb's settings."""
    return [GopherRepetition(tokenizer), GopherQuality(tokenizer), C4Quality(tokenizer), FineWebQuality(tokenizer)]
