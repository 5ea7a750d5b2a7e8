"""Fill-in-the-middle (FIM), after Bavarian et al. 2022, *Efficient Training of Language
Models to Fill in the Middle* (arXiv:2207.14255), at the paper's two levels.

A text is cut at two character positions drawn uniformly at random into
``prefix | middle | suffix``; each piece is tokenised on its own and the pieces are
rearranged so that a left-to-right model learns to produce the middle from both sides:

- PSM: ``<|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle``
- SPM: ``<|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle``
  (the paper's SPM variant that keeps the same sentinels as PSM, so both modes can be
  trained jointly)

Split points are characters (code points), so each piece is valid text and the byte-level
tokenizer decodes every piece back exactly. A source's ``fim.level`` picks where it happens:

**Document level** (``draw_split``, then ``fim_layout`` of the three pieces' ids): whole
documents are transformed before packing and the caller appends the end-of-document token,
as for any document. :mod:`mixer.build` gets the pieces' ids from
:class:`mixer.pieces.PieceEncoder`, which reuses the document's own ids; ``fim_token_ids``
encodes them from scratch (same ids). Packing may then cut a FIM document across two sequences.
The sentinels count toward the source's target, so its share stays exact.

**Context level** (:func:`fim_contexts`): applied after packing, to each document *fragment*
inside a packed sequence, then the sequence is trimmed back to its length, so every FIM
example a sequence holds is complete. The rules, per sequence (row) ``i``:

- its own generator ``np.random.default_rng([seed, first_row + i])``, so a row can be
  recomputed alone (a resumed stream needs only its row number);
- fragments are the maximal runs of one segment id (and source) in the row, padding
  (``PAD_SOURCE``) left out; fragments of sources outside ``fim_by_source`` are kept as they are;
- a FIM source's fragment, in row order: its body is its tokens less a final end-of-document
  token; its text is the body's exact bytes (:func:`mixer.tokenizer.token_bytes`) decoded as
  strict UTF-8. ``draw_split`` is drawn for every such fragment, so whether an earlier fragment
  was transformed, skipped or kept never shifts the later draws. When the split says transform, the fragment becomes
  ``fim_token_ids(text)`` plus its end token if it had one; a body whose bytes are not whole
  UTF-8 characters (packing cut a character at the row's edge) is counted ``skipped`` and kept;
  an empty body (a fragment that is only the end token) has nothing to fill and is kept;
- the new row is the fragments end to end (old padding removed): too long, it is cut at the
  end and the cut tokens are counted ``dropped`` by source (the tokens FIM added push real
  tokens out, as in the paper, so a FIM source's realised share grows by that overhead, about
  five tokens per transformed fragment); too short, it is padded at the end with ``<|pad|>``, source
  ``PAD_SOURCE``, as one more segment. Segments are renumbered 0, 1, ... per fragment;
- a row with no fragment transformed is left byte-identical.

Written by hand: ``tokenizers`` has no FIM transform, and the implementations in training
frameworks (Megatron-LM, bigcode's fork) are tied to their own dataset classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from tokenizers import Tokenizer

from mixer.pack import PAD_SOURCE, PackedPhase
from mixer.spec import FimSpec
from mixer.tokenizer import SpecialTokens, token_bytes


@dataclass(frozen=True)
class FimSplit:
    """Where to cut a document: ``text[:start]``, ``text[start:end]``, ``text[end:]``."""

    start: int
    end: int
    spm: bool


def draw_split(rng: np.random.Generator, n_chars: int, fim: FimSpec) -> FimSplit | None:
    """Whether to transform a document of ``n_chars`` characters, and how; None keeps it.

    Always draws the same number of values per document, so one document's outcome never
    shifts the draws of the next.
    """
    apply, spm = rng.random(size=2)
    start, end = sorted(int(point) for point in rng.integers(0, n_chars + 1, size=2))
    if apply >= fim.rate:
        return None
    return FimSplit(start=start, end=end, spm=bool(spm < fim.spm_rate))


def fim_token_ids(
    text: str, split: FimSplit, tokenizer: Tokenizer, special: SpecialTokens
) -> np.ndarray:
    """The FIM layout of ``text`` as uint32 token ids, without the end-of-document token; each
    piece encoded from scratch (a document whose ids are known has its pieces encoded by
    :class:`mixer.pieces.PieceEncoder` instead, for the same ids at a fraction of the cost)."""
    prefix, middle, suffix = (
        np.asarray(encoding.ids, dtype=np.uint32)
        for encoding in tokenizer.encode_batch_fast(
            [text[: split.start], text[split.start : split.end], text[split.end :]],
            add_special_tokens=False,
        )
    )
    return fim_layout(prefix, middle, suffix, split.spm, special)


def fim_layout(
    prefix: np.ndarray, middle: np.ndarray, suffix: np.ndarray, spm: bool, special: SpecialTokens
) -> np.ndarray:
    """The three pieces' ids with the sentinels, in PSM or SPM order."""

    def sentinel(token_id: int) -> np.ndarray:
        return np.asarray([token_id], dtype=np.uint32)

    if spm:
        parts = [
            sentinel(special.fim_prefix), sentinel(special.fim_suffix), suffix,
            sentinel(special.fim_middle), prefix, middle,
        ]
    else:
        parts = [
            sentinel(special.fim_prefix), prefix, sentinel(special.fim_suffix), suffix,
            sentinel(special.fim_middle), middle,
        ]
    return np.concatenate(parts).astype(np.uint32, copy=False)


@dataclass(frozen=True)
class ContextFimCounts:
    """What :func:`fim_contexts` did, per source (int64 arrays ``[n_sources]``)."""

    fragments: np.ndarray  # fragments transformed
    spm: np.ndarray  # of which SPM layout
    skipped: np.ndarray  # drawn for FIM but left alone: not whole UTF-8 characters on their own
    dropped: np.ndarray  # tokens cut off the context ends because FIM lengthened them

    @classmethod
    def zeros(cls, n_sources: int) -> "ContextFimCounts":
        return cls(*(np.zeros(n_sources, dtype=np.int64) for _ in range(4)))


@dataclass(frozen=True)
class _ContextFim:
    """What every row needs, built once per phase."""

    fim_by_source: Mapping[int, FimSpec]
    table: list[bytes]  # token id -> its raw bytes
    tokenizer: Tokenizer
    special: SpecialTokens


def _fragments(segments: np.ndarray, sources: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of one segment id and source, padding left out."""
    # a change of source also ends a run, so a pad run never merges into a document
    change = np.flatnonzero((segments[1:] != segments[:-1]) | (sources[1:] != sources[:-1])) + 1
    starts = [0, *change.tolist()]
    ends = [*change.tolist(), len(segments)]
    return [(start, end) for start, end in zip(starts, ends) if sources[start] != PAD_SOURCE]


def _fim_fragment(
    fragment: np.ndarray, fim: FimSpec, rng: np.random.Generator, context: _ContextFim
) -> tuple[np.ndarray | None, FimSplit | None, bool]:
    """``(new tokens or None to keep it, the split, whether it was skipped)``."""
    eod = context.special.eod
    has_eod = len(fragment) > 0 and int(fragment[-1]) == eod
    body = fragment[:-1] if has_eod else fragment
    data = b"".join(context.table[token] for token in body.tolist())
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:  # the row's edge cut a character in two
        text = None
    # drawn even for bytes that will be skipped, so skipping never shifts the next draws
    split = draw_split(rng, len(text) if text is not None else len(data), fim)
    if split is None or len(body) == 0:
        return None, None, False
    if text is None:
        return None, None, True
    tokens = fim_token_ids(text, split, context.tokenizer, context.special)
    if has_eod:
        tokens = np.append(tokens, np.uint32(eod))
    return tokens, split, False


def _fim_row(
    tokens: np.ndarray,
    segments: np.ndarray,
    sources: np.ndarray,
    rng: np.random.Generator,
    context: _ContextFim,
    counts: ContextFimCounts,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One row after context-level FIM, or None when no fragment changed; adds to ``counts``."""
    pieces: list[np.ndarray] = []
    piece_sources: list[int] = []
    changed = False
    for start, end in _fragments(segments, sources):
        fragment, source = tokens[start:end], int(sources[start])
        fim = context.fim_by_source.get(source)
        if fim is not None:
            new, split, skipped = _fim_fragment(fragment, fim, rng, context)
            counts.skipped[source] += skipped
            if new is not None and split is not None:
                fragment, changed = new, True
                counts.fragments[source] += 1
                counts.spm[source] += split.spm
        pieces.append(fragment)
        piece_sources.append(source)
    if not changed:
        return None
    seq_len = len(tokens)
    lengths = [len(piece) for piece in pieces]
    row_tokens = np.concatenate(pieces).astype(np.uint32)
    row_sources = np.repeat(np.asarray(piece_sources, dtype=np.uint8), lengths)
    row_segments = np.repeat(np.arange(len(pieces), dtype=np.uint32), lengths)
    if len(row_tokens) > seq_len:
        counts.dropped[:] += np.bincount(row_sources[seq_len:], minlength=len(counts.dropped))
        return row_tokens[:seq_len], row_segments[:seq_len], row_sources[:seq_len]
    pad = seq_len - len(row_tokens)
    return (
        np.concatenate([row_tokens, np.full(pad, context.special.pad, dtype=np.uint32)]),
        np.concatenate([row_segments, np.full(pad, len(pieces), dtype=np.uint32)]),
        np.concatenate([row_sources, np.full(pad, PAD_SOURCE, dtype=np.uint8)]),
    )


def fim_contexts(
    packed: PackedPhase,
    fim_by_source: Mapping[int, FimSpec],
    seed: int,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    *,
    first_row: int = 0,
) -> tuple[PackedPhase, ContextFimCounts]:
    """Context-level FIM of a packed phase: each fragment of a source in ``fim_by_source``
    (source index -> its spec) is transformed in place (rules in the module docstring).

    ``first_row`` is the number of ``packed``'s first row in the whole phase, so a slice of
    rows gives the same rows as the whole phase does. Returns the new phase, same shape, with
    ``written_by_source`` and ``padding`` recounted and the cut tokens added to
    ``dropped_by_source``, and the counts.
    """
    n_sources = len(packed.written_by_source)
    counts = ContextFimCounts.zeros(n_sources)
    tokens, segments, sources = packed.tokens.copy(), packed.segments.copy(), packed.sources.copy()
    # rows without a FIM source are never looked at, so they stay byte-identical
    fim_rows = np.flatnonzero(np.isin(packed.sources, list(fim_by_source)).any(axis=1))
    if len(fim_rows):
        context = _ContextFim(fim_by_source, token_bytes(tokenizer), tokenizer, special)
        for row in fim_rows.tolist():
            rng = np.random.default_rng([seed, first_row + row])
            new = _fim_row(tokens[row], segments[row], sources[row], rng, context, counts)
            if new is not None:
                tokens[row], segments[row], sources[row] = new
    real = sources != PAD_SOURCE
    return (
        PackedPhase(
            tokens=tokens,
            segments=segments,
            sources=sources,
            written_by_source=np.bincount(sources[real], minlength=n_sources).astype(np.int64),
            dropped_by_source=packed.dropped_by_source + counts.dropped,
            truncated_by_source=packed.truncated_by_source,
            padding=int((~real).sum()),
        ),
        counts,
    )
