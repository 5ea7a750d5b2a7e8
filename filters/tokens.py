"""The reference token count of contract 1's ``n_tokens``.

With a tokenizer file (HF tokenizers JSON) the count is exact under it. Without one, curation
counts GPT-2-style byte-level pre-tokens (words, punctuation runs, whitespace-led pieces), a
tokenizer-free lower bound of a byte-level BPE's count; the manifest names which was used, and
the mixer recounts under the mixture's own tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import regex

PRETOKEN_REFERENCE = "bytelevel-pretokens"
# GPT-2's pre-tokenisation pattern, the one tokenizers' ByteLevel(use_regex=True) applies.
# Counting its matches gives the same number as ``pre_tokenize_str`` without building a
# (piece, offsets) tuple per pre-token, which made counting the slowest step of curation.
_GPT2_PRETOKENS = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


class TokenCounter:
    def __init__(self, tokenizer_path: str | Path | None = None) -> None:
        from tokenizers import Tokenizer

        if tokenizer_path:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
            self.reference = f"tokenizer:{Path(tokenizer_path).name}"
        else:
            self._tokenizer = None
            self.reference = PRETOKEN_REFERENCE

    def count(self, texts: list[str]) -> list[int]:
        if self._tokenizer is not None:
            return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(texts)]
        return [sum(1 for _ in _GPT2_PRETOKENS.finditer(text)) for text in texts]
