"""Domain tagging into contract 1's domains, and the tags that follow from the domain.

A source's ``kind`` hint wins when given. For ``kind: auto`` a first rule-based tagger looks
at markers that are cheap and reliable on curated text (chat/QA templates, step-by-step
reasoning, LaTeX density, code-shaped lines); a trained classifier replaces it in a later
issue, and the signals it used are kept in ``scores`` either way.
"""

from __future__ import annotations

import re

from corpus.schema import DOMAINS
from filters.base import KEEP, Document, DocumentFilter, Verdict
from filters.signals import code_line_fraction, math_density

_INSTRUCTION = re.compile(
    r"^(###\s*(Instruction|Question|User)|Question:|Q:|User:|<\|user\|>)", re.MULTILINE | re.IGNORECASE
)
_REASONING = re.compile(
    r"(let'?s think step by step|step \d+[:.)]|first,.*then,|therefore,|so the answer is)",
    re.IGNORECASE,
)


def infer_domain(text: str, scores: dict[str, float]) -> str:
    """Rule-based domain for ``kind: auto``; records the signals it used in ``scores``."""
    scores["code_line_fraction"] = code_fraction = code_line_fraction(text)
    scores["math_density"] = math = math_density(text)
    if _INSTRUCTION.search(text[:2000]):
        return "instruction"
    if len(_REASONING.findall(text[:20_000])) >= 2:
        return "reasoning"
    if code_fraction >= 0.5:
        return "code"
    if math >= 0.5:
        return "math"
    return "web"


class DomainTagger(DocumentFilter):
    """Sets ``domain`` and the domain-derived tags; never drops."""

    name = "domain"
    needs = ('text', 'kind')
    adds = ('domain', 'tags', 'scores')

    def check(self, doc: Document) -> Verdict:
        if doc.kind in DOMAINS:
            doc.domain = doc.kind
            if doc.domain == "math":
                doc.scores["math_density"] = math_density(doc.text)
        else:
            doc.domain = infer_domain(doc.text, doc.scores)
        if doc.domain == "code":
            doc.add_tag("fim_eligible")
        if doc.domain == "synthetic":
            doc.add_tag("synthetic")
        return KEEP


class LongDocumentTagger(DocumentFilter):
    """Tags ``long_doc`` once ``n_tokens`` is known; the threshold is in reference tokens."""

    name = "long_doc"
    needs = ('n_tokens',)
    adds = ('tags',)

    def __init__(self, min_tokens: int = 8192) -> None:
        self.min_tokens = min_tokens

    def check(self, doc: Document) -> Verdict:
        if doc.n_tokens >= self.min_tokens:
            doc.add_tag("long_doc")
        return KEEP
