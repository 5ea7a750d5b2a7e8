"""The per-document contract of every filter: look at a document, keep it or drop it with a
named reason. The reason is the statistic: the pipeline counts drops by it, so a filter never
needs its own counters. Filters may also record the signals they computed in ``doc.scores``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One document as it moves through the per-document stages."""

    id: str
    text: str
    source: str
    kind: str = "auto"  # the source's kind hint from the curate config
    domain: str = ""
    lang: str = ""
    lang_score: float = 0.0
    quality: float = 0.0
    n_tokens: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add_tag(self, tag: str) -> None:
        if tag not in self.tags:
            self.tags.append(tag)


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str | None = None

    @staticmethod
    def drop(reason: str) -> "Verdict":
        return Verdict(keep=False, reason=reason)


KEEP = Verdict(keep=True)


class DocumentFilter(ABC):
    """Keep or drop one document. Subclasses set ``name`` and implement ``check``.

    ``needs`` and ``adds`` name the ``Document`` fields a filter reads and sets (a signal in
    ``scores`` is named ``scores.<key>``); the stage checks at start-up that every need is met
    by the input or an earlier filter, so a chain in the wrong order fails before any work."""

    name: str = "filter"
    needs: tuple[str, ...] = ("text",)
    adds: tuple[str, ...] = ()

    def applies_to(self, doc: Document) -> bool:
        """Whether this filter should look at ``doc`` at all (e.g. prose rules skip code)."""
        return True

    @abstractmethod
    def check(self, doc: Document) -> Verdict: ...
