"""The reference token count of contract 1's ``n_tokens``.

With a tokenizer file (HF tokenizers JSON) the count is exact under it. Without one, curation
counts GPT-2-style byte-level pre-tokens (words, punctuation runs, whitespace-led pieces), a
tokenizer-free lower bound of a byte-level BPE's count; the manifest names which was used, and
the mixer recounts under the mixture's own tokenizer.
"""

from __future__ import annotations

from pathlib import Path

PRETOKEN_REFERENCE = "bytelevel-pretokens"


class TokenCounter:
    def __init__(self, tokenizer_path: str | Path | None = None) -> None:
        from tokenizers import Tokenizer, pre_tokenizers

        if tokenizer_path:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
            self._pre_tokenizer = None
            self.reference = f"tokenizer:{Path(tokenizer_path).name}"
        else:
            self._tokenizer = None
            self._pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            self.reference = PRETOKEN_REFERENCE

    def count(self, texts: list[str]) -> list[int]:
        if self._tokenizer is not None:
            return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(texts)]
        return [len(self._pre_tokenizer.pre_tokenize_str(text)) for text in texts]
