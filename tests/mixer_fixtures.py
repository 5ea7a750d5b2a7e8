"""Small curated corpora (contract 1 shards written directly, no Ray) and a tiny tokenizer for
the mixer and tokenizer tests. Import the fixtures into a test module by name."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from corpus.schema import SHARD_SCHEMA
from mixer.spec import MixtureSpec
from mixer.tokenizer import SpecialTokens, load_tokenizer, train_tokenizer

TEST_VOCAB_SIZE = 400

WORDS = (
    "river field bridge market library storm quarry summer children garden council teacher "
    "farmer museum student village harbour mountain forest winter letter window kitchen"
).split()
CODE_NAMES = ["total", "count", "items", "value", "result", "index", "buffer", "node"]


def document(
    doc_id: str,
    text: str,
    domain: str,
    source: str = "src",
    lang: str = "en",
    quality: float = 0.5,
    tags: list[str] | None = None,
) -> dict:
    """One shard row; ``n_tokens`` stands in for the reference tokenizer (whitespace words)."""
    return {
        "id": doc_id,
        "text": text,
        "source": source,
        "domain": domain,
        "lang": lang,
        "lang_score": 0.99,
        "quality": quality,
        "scores": [("quality", quality)],
        "tags": tags or [],
        "n_chars": len(text),
        "n_tokens": len(text.split()),
        "dup_cluster": None,
        "meta": json.dumps({"id": doc_id}),
    }


def write_corpus(out: Path, rows: list[dict]) -> Path:
    """Write rows as ``out/shards/domain=<d>/part-0.parquet`` with the contract's schema."""
    by_domain: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_domain[row["domain"]].append(row)
    for domain, domain_rows in by_domain.items():
        directory = out / "shards" / f"domain={domain}"
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(domain_rows, schema=SHARD_SCHEMA)
        pq.write_table(table, directory / "part-0.parquet", compression="zstd")
    return out


def prose(rng: random.Random, words: int) -> str:
    sentences = []
    while sum(len(sentence.split()) for sentence in sentences) < words:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12)))
        sentences.append(sentence.capitalize() + ".")
    return " ".join(sentences)


def code(rng: random.Random) -> str:
    name, other = rng.sample(CODE_NAMES, 2)
    return (
        f"def {name}_of({other}):\n"
        f"    {name} = 0\n"
        f"    for x in {other}:\n"
        f"        {name} += x * {rng.randint(2, 9)}\n"
        f"    return {name}\n"
    )


def sample_rows(seed: int = 7) -> list[dict]:
    """30 web (6 long, quality 0..1, 5 in French), 20 code, 10 math documents, plus one web
    document from a source named ``o'brien``; ids sort in a known order."""
    rng = random.Random(seed)
    rows = []
    for i in range(30):
        long_doc = i % 5 == 0
        rows.append(
            document(
                f"web-{i:03d}",
                prose(rng, 200 if long_doc else 40),
                "web",
                source="webcrawl",
                lang="fr" if i % 6 == 1 else "en",
                quality=round(i / 29, 3),
                tags=["long_doc"] if long_doc else [],
            )
        )
    for i in range(20):
        rows.append(
            document(f"code-{i:03d}", code(rng), "code", source="github", tags=["fim_eligible"])
        )
    for i in range(10):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        text = f"Problem {i}: compute {a} + {b}. Solution: {a} + {b} = {a + b}, answer {a + b}."
        rows.append(document(f"math-{i:03d}", text, "math", source="mathset", quality=0.8))
    rows.append(document("web-obrien", prose(rng, 30), "web", source="o'brien", quality=0.9))
    return rows


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("curated"), sample_rows())


@pytest.fixture(scope="module")
def tokenizer_path(corpus_dir: Path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("tok") / "tok.json"
    return train_tokenizer([str(corpus_dir)], str(output), TEST_VOCAB_SIZE)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_path: Path) -> Tokenizer:
    return load_tokenizer(tokenizer_path)


@pytest.fixture(scope="module")
def special(tokenizer: Tokenizer) -> SpecialTokens:
    return SpecialTokens.from_tokenizer(tokenizer)


def mixture(
    corpus_dir: Path, tokenizer_path: Path, phases: list[dict], seed: int = 1234
) -> MixtureSpec:
    return MixtureSpec.model_validate(
        {
            "name": "test-mix",
            "corpus": [str(corpus_dir)],
            "tokenizer": str(tokenizer_path),
            "seed": seed,
            "phases": phases,
        }
    )
