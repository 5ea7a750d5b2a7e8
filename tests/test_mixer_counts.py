"""The planner's token counts (mixer/counts.py): exactly the tokenised documents' counts, kept on
disk per (shard content, tokenizer content), never reused for changed content."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from mixer_fixtures import document, mixture, sample_rows, write_corpus

from mixer.counts import TokenCountStore, count_cache
from mixer.documents import DocumentCache, encode_texts
from mixer.plan import plan_mixture
from mixer.tokenizer import EOD, load_tokenizer, train_tokenizer

PHASES = [
    {"name": "general", "tokens": 5_003, "seq_len": 64,
     "sources": [{"name": "web", "select": {"domain": "web", "min_quality": 0.3}, "weight": 0.55},
                 {"name": "code", "select": {"domain": "code"}, "weight": 0.3},
                 {"name": "math", "select": {"domain": "math"}, "weight": 0.15}]},
    {"name": "long", "tokens": 2_000, "seq_len": 128,
     "sources": [{"name": "long", "select": {"tags_any": ["long_doc"]}, "weight": 1},
                 {"name": "replay", "select": {"domain": ["web", "code"]}, "weight": 1}]},
]


def rows_with_special_text() -> list[dict]:
    """The sample, plus documents whose text holds special tokens' text (encoded as text)."""
    return [*sample_rows(), document("web-special", f"before {EOD} after <|pad|> end", "web", quality=0.9),
            document("code-special", f"x = '{EOD}'\n", "code")]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "curated", rows_with_special_text())


@pytest.fixture()
def tokenizer_file(corpus: Path, tmp_path: Path) -> Path:
    return train_tokenizer([str(corpus)], str(tmp_path / "tok.json"), 400)


def uncached_plan(spec):
    """The plan from documents tokenised in full (what a build plans with): the reference."""
    return plan_mixture(spec, DocumentCache(list(spec.corpus), load_tokenizer(spec.tokenizer)))


def test_counted_plan_equals_the_tokenised_plan(corpus: Path, tokenizer_file: Path, tmp_path: Path) -> None:
    spec = mixture(corpus, tokenizer_file, PHASES)
    store = TokenCountStore(tmp_path / "cache")
    counted = plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, store))
    assert counted == uncached_plan(spec)
    assert store.computed == 3  # one per shard: web, code, math
    # a new store on the same folder (another process) reads the counts instead of tokenising
    again = TokenCountStore(tmp_path / "cache")
    assert plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, again)) == counted
    assert again.computed == 0


def test_shard_counts_are_the_mixers_encoding(corpus: Path, tokenizer_file: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_file)
    store = TokenCountStore(tmp_path / "cache")
    cache = count_cache([corpus], tokenizer_file, store)
    shard = corpus / "shards" / "domain=web" / "part-0.parquet"
    import pyarrow.parquet as pq

    texts = pq.read_table(shard, columns=["text"]).column("text").to_pylist()
    _, offsets, _ = encode_texts(tokenizer, texts)
    assert np.array_equal(store.counts(shard, tokenizer, cache.tokenizer_key), np.diff(offsets))
    special = texts.index(f"before {EOD} after <|pad|> end")
    assert np.diff(offsets)[special] > 6  # the special token's text is several tokens here


def test_a_changed_shard_changes_the_plan(corpus: Path, tokenizer_file: Path, tmp_path: Path) -> None:
    spec = mixture(corpus, tokenizer_file, PHASES)
    store = TokenCountStore(tmp_path / "cache")
    before = plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, store))
    rows = [row if row["id"] != "math-003" else document("math-003", "a much longer problem " * 40, "math")
            for row in rows_with_special_text()]
    shutil.rmtree(corpus / "shards")
    write_corpus(corpus, rows)
    after = plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, store))
    assert after != before
    assert after.phases[0].sources[2].tokens_available > before.phases[0].sources[2].tokens_available
    assert after == uncached_plan(spec)
    assert store.computed == 4  # only the math shard changed


def test_a_changed_tokenizer_is_counted_again(corpus: Path, tokenizer_file: Path, tmp_path: Path) -> None:
    spec = mixture(corpus, tokenizer_file, PHASES)
    store = TokenCountStore(tmp_path / "cache")
    before = plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, store))
    train_tokenizer([str(corpus)], str(tokenizer_file), 300)  # same path, other content
    after = plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, store))
    assert after != before and after == uncached_plan(spec)
    assert store.computed == 6


def test_an_unusable_cache_file_is_recomputed(corpus: Path, tokenizer_file: Path, tmp_path: Path) -> None:
    spec = mixture(corpus, tokenizer_file, PHASES)
    plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, TokenCountStore(tmp_path / "cache")))
    for path in (tmp_path / "cache").rglob("*.npy"):
        np.save(path, np.zeros(3, dtype=np.int64))  # the wrong number of rows
    store = TokenCountStore(tmp_path / "cache")
    assert plan_mixture(spec, count_cache(spec.corpus, spec.tokenizer, store)) == uncached_plan(spec)
    assert store.computed == 3


def test_the_default_cache_is_outside_the_corpus(corpus: Path, tokenizer_file: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDTRAIN_CACHE", str(tmp_path / "elsewhere"))
    before = sorted(os.walk(corpus))
    plan_mixture(mixture(corpus, tokenizer_file, PHASES))
    assert sorted(os.walk(corpus)) == before
    assert list((tmp_path / "elsewhere" / "token-counts").rglob("*.npy"))
