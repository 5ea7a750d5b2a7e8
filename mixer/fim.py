"""Fill-in-the-middle (FIM) transform of one document, after Bavarian et al. 2022,
*Efficient Training of Language Models to Fill in the Middle* (arXiv:2207.14255).

A document is cut at two character positions drawn uniformly at random into
``prefix | middle | suffix``; each piece is tokenised on its own and the pieces are
rearranged so that a left-to-right model learns to produce the middle from both sides:

- PSM: ``<|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle``
- SPM: ``<|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle``
  (the paper's SPM variant that keeps the same sentinels as PSM, so both modes can be
  trained jointly)

The caller appends the end-of-document token, as for any document (document-level FIM,
applied before packing, as in the paper). Split points are characters (code points), so each
piece is valid text and the byte-level tokenizer decodes every piece back exactly.

Written by hand: ``tokenizers`` has no FIM transform, and the implementations in training
frameworks (Megatron-LM, bigcode's fork) are tied to their own dataset classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from mixer.spec import FimSpec
from mixer.tokenizer import SpecialTokens


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
    """The FIM layout of ``text`` as uint32 token ids, without the end-of-document token."""
    prefix, middle, suffix = (
        np.asarray(encoding.ids, dtype=np.uint32)
        for encoding in tokenizer.encode_batch_fast(
            [text[: split.start], text[split.start : split.end], text[split.end :]],
            add_special_tokens=False,
        )
    )

    def sentinel(token_id: int) -> np.ndarray:
        return np.asarray([token_id], dtype=np.uint32)

    if split.spm:
        parts = [
            sentinel(special.fim_prefix), sentinel(special.fim_suffix), suffix,
            sentinel(special.fim_middle), prefix, middle,
        ]
    else:
        parts = [
            sentinel(special.fim_prefix), prefix, sentinel(special.fim_suffix), suffix,
            sentinel(special.fim_middle), middle,
        ]
    return np.concatenate(parts)
