"""The math domain's quality gate: a math-density score instead of the prose rules.

Gopher's and C4's rules would wrongly drop mathematical text: formulas are symbol-dense, their
"words" are short, LaTeX lines rarely end in terminal punctuation and displays contain curly
brackets. What makes a math document worth keeping is that it actually contains mathematics,
so we score LaTeX commands, inline ``$...$`` math and formula-shaped patterns per 100 words
(``filters.signals.math_density``) and drop a math document only when it has almost none:
such text is usually prose or boilerplate that a source labelled math by mistake.

The default threshold is deliberately low (0.05, i.e. under one math marker per 200 words);
every math document of ``examples/sample/`` scores at least 0.07.
"""

from __future__ import annotations

from filters.base import KEEP, Document, DocumentFilter, Verdict
from filters.signals import math_density

DEFAULT_MIN_DENSITY = 0.05


class MathDensity(DocumentFilter):
    """Drops math-domain documents whose math density is below ``min_density``."""

    name = "math_density"
    needs = ("text", "domain")
    adds = ("scores.math_density",)

    def __init__(self, min_density: float = DEFAULT_MIN_DENSITY) -> None:
        if not 0.0 <= min_density <= 1.0:
            raise ValueError(f"min_density must be in [0, 1], got {min_density}")
        self.min_density = min_density

    def applies_to(self, doc: Document) -> bool:
        return doc.domain == "math"

    def check(self, doc: Document) -> Verdict:
        # Recomputed rather than read from the domain tagger: an earlier stage may have
        # changed the text since.
        doc.scores["math_density"] = density = math_density(doc.text)
        if density < self.min_density:
            return Verdict.drop("math_low_density")
        return KEEP
