"""The tokenizer-free reference count equals tokenizers' ByteLevel pre-token count exactly."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import pre_tokenizers

from filters.tokens import TokenCounter

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample"
TRICKY = ["", " ", "\n\n  \t", "don't won't I'm you're we've they'll he'd",
          "x = 3.14e-10 + f(y)  # c'est ça", "日本語のテキストと English 混在", "Привет, мир!  ",
          "tabs\tand  double  spaces \n trailing   ", "emoji 🙂🙂 and ZWJ 👩‍💻", "١٢٣ arabic digits ٤٥"]


def sample_texts() -> list[str]:
    texts = list(TRICKY)
    for path in sorted(SAMPLE.rglob("*")):
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the sample's planted bad lines
                    if isinstance(record, dict) and isinstance(record.get("text"), str):
                        texts.append(record["text"])
        elif path.suffix == ".parquet":
            texts.extend(pq.read_table(path, columns=["content"])["content"].to_pylist())
    return texts


def test_pretoken_count_matches_bytelevel_on_every_sample_text():
    texts = sample_texts()
    assert len(texts) > 3000
    reference = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    expected = [len(reference.pre_tokenize_str(text)) for text in texts]
    assert TokenCounter().count(texts) == expected
