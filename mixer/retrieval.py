"""Synthetic long-context retrieval: key-value facts ("needles") hidden in a real document, and
questions about them at its end.

A long-context phase teaches a model to use distant context only when its data needs it; most
long documents rarely do. Recipes therefore mix synthetic long-context tasks into that phase
(AFM's synthetic long QA, the key-value retrieval tasks of Qwen2.5's long-context training).
For a source with ``retrieval`` (:class:`mixer.spec.RetrievalSpec`) a share of its documents
become such tasks, each drawn afresh every time the document is taken (so repeated epochs never
repeat a key)::

    <document ... The harbor number is 48213. ... The lantern code is 90177. ...>
     What is the lantern code? The lantern code is 90177. What is the harbor number? ...

The needles go in at word starts of the document (its own tokens are kept, none is split) at
seeded uniform depths; the questions come in a seeded order. The task fits ``max_tokens`` (one
packed sequence), so every answer is within reach of its fact: a longer document gives a window
of its words from a seeded word start, so its repetitions differ in their text too. The template differs from the passkey evaluation's (:mod:`trainer.evals`: a key in a
filler of repeated sentences) on purpose: that one measures whether the skill carries over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixer.pieces import PieceEncoder, TokenisedText
from mixer.spec import RetrievalSpec

KEY_NAMES: tuple[str, ...] = (
    "anchor", "badge", "barrel", "beacon", "bridge", "cabin", "canal", "candle", "castle",
    "cellar", "chapel", "compass", "crater", "desert", "engine", "falcon", "ferry", "forest",
    "fountain", "garden", "glacier", "hangar", "harbor", "helmet", "island", "jacket", "kettle",
    "ladder", "lantern", "locker", "magnet", "marble", "meadow", "mirror", "museum", "orchard",
    "parcel", "pepper", "pillar", "planet", "pocket", "quarry", "rabbit", "ribbon", "river",
    "rocket", "saddle", "shelter", "signal", "silver", "summit", "tablet", "temple", "ticket",
    "timber", "tower", "tunnel", "valley", "velvet", "violin", "wagon", "window", "winter",
    "yacht",
)
# What the value is called varies, so that what is learned is to look the key's words up, not
# one phrase; "pass" is no key name, so the passkey evaluation's phrase is never trained.
VALUE_NOUNS: tuple[str, ...] = ("number", "code", "key", "pin", "id", "password")
VALUE_RANGE = (10_000, 100_000)  # five-digit values, as the passkey evaluation draws


@dataclass(frozen=True)
class Needle:
    name: str
    noun: str
    value: int
    depth: float  # where in the kept window, as a fraction of its word starts

    @property
    def fact(self) -> str:
        return f" The {self.name} {self.noun} is {self.value}."

    @property
    def question(self) -> str:
        key = f"{self.name} {self.noun}"
        return f" What is the {key}? The {key} is {self.value}."


@dataclass(frozen=True)
class RetrievalDraw:
    needles: list[Needle]
    order: np.ndarray  # the needles' indices in the order their questions are asked
    start: float  # where the window begins, as a fraction of the word starts it may begin at


def draw_needles(rng: np.random.Generator, spec: RetrievalSpec) -> RetrievalDraw | None:
    """The needles of one document, the order of its questions and where its window starts;
    None leaves the document alone.

    Always draws the same number of values per document, so one document's outcome never
    shifts the draws of the next."""
    apply = rng.random()
    names = rng.choice(len(KEY_NAMES), size=spec.needles, replace=False)
    nouns = rng.integers(len(VALUE_NOUNS), size=spec.needles)
    values = rng.integers(*VALUE_RANGE, size=spec.needles)
    depths = rng.random(size=spec.needles)
    order = rng.permutation(spec.needles)
    start = rng.random()
    if apply >= spec.rate:
        return None
    needles = [Needle(KEY_NAMES[name], VALUE_NOUNS[noun], int(value), float(depth))
               for name, noun, value, depth in zip(names, nouns, values, depths)]
    return RetrievalDraw(needles, order, float(start))


def retrieval_document(
    document: TokenisedText, draw: RetrievalDraw, pieces: PieceEncoder, max_tokens: int
) -> np.ndarray | None:
    """A window of the document with the drawn needles inside and their questions after it, as
    uint32 ids of at most ``max_tokens``; None when the needles and questions alone leave no
    room for any of the document."""
    needles = draw.needles
    facts = [pieces.encode(needle.fact) for needle in needles]
    questions = [pieces.encode(needles[index].question) for index in draw.order]
    room = max_tokens - sum(map(len, facts)) - sum(map(len, questions))
    if room < 1:
        return None
    # The window starts at a word start among those that leave it whole (the first one always may).
    openings = np.flatnonzero(document.word_starts[: max(1, len(document.ids) - room + 1)])
    first = int(openings[int(draw.start * len(openings))]) if len(openings) else 0
    ids = document.ids[first:first + room]
    starts = document.word_starts[first:first + room]
    # A needle goes before a word start (or at the very end): no word of the document is split.
    slots = np.append(np.flatnonzero(starts), len(ids))
    at = [int(slots[min(int(needle.depth * len(slots)), len(slots) - 1)]) for needle in needles]
    parts: list[np.ndarray] = []
    previous = 0
    for position, fact in sorted(zip(at, facts), key=lambda pair: pair[0]):
        parts += [ids[previous:position], fact]
        previous = position
    parts += [ids[previous:], *questions]
    return np.concatenate(parts).astype(np.uint32)
