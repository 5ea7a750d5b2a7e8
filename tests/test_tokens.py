"""The tokenizer-free reference count equals tokenizers' ByteLevel pre-token count exactly."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import pre_tokenizers

from api.demo import sample_texts
from filters.tokens import TokenCounter

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample"
TRICKY = ["", " ", "\n\n  \t", "don't won't I'm you're we've they'll he'd",
          "x = 3.14e-10 + f(y)  # c'est ça", "日本語のテキストと English 混在", "Привет, мир!  ",
          "tabs\tand  double  spaces \n trailing   ", "emoji 🙂🙂 and ZWJ 👩‍💻", "١٢٣ arabic digits ٤٥"]


def every_sample_text() -> list[str]:
    texts = list(TRICKY) + sample_texts("*/*.jsonl") + sample_texts("*/*.jsonl.gz")
    for path in sorted(SAMPLE.glob("*/*.parquet")):
        texts.extend(pq.read_table(path, columns=["content"])["content"].to_pylist())
    return texts


def test_pretoken_count_matches_bytelevel_on_every_sample_text():
    texts = every_sample_text()
    assert len(texts) > 3000
    reference = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    expected = [len(reference.pre_tokenize_str(text)) for text in texts]
    assert TokenCounter().count(texts) == expected
