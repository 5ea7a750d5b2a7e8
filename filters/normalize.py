"""Text normalisation before any other stage: Unicode NFC, one newline convention, no control
characters, no trailing whitespace, at most two consecutive blank lines."""

from __future__ import annotations

import re
import unicodedata

from filters.base import KEEP, Document, DocumentFilter, Verdict

# C0/C1 control characters except tab and newline; NUL bytes from broken crawls land here.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{4,}")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_RUN.sub("\n\n\n", text)
    return text.strip()


class Normalizer(DocumentFilter):
    """Rewrites the text in place; drops documents that normalise to nothing."""

    name = "normalize"
    needs = ('text',)
    adds = ('text',)

    def check(self, doc: Document) -> Verdict:
        doc.text = normalize_text(doc.text)
        if not doc.text:
            return Verdict.drop("empty_text")
        return KEEP
