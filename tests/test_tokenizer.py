"""The mixture tokenizer: byte-level BPE trained on curated shards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mixer_fixtures import TEST_VOCAB_SIZE, corpus_dir, tokenizer_path  # noqa: F401
from tokenizers import Tokenizer

from mixer.corpora import CorpusError
from mixer.tokenizer import (
    SPECIAL_TOKENS,
    SpecialTokens,
    TokenizerError,
    iter_shard_texts,
    load_tokenizer,
    new_tokenizer,
    train_tokenizer,
)


def test_training_is_deterministic(corpus_dir: Path, tokenizer_path: Path, tmp_path: Path) -> None:
    again = train_tokenizer([str(corpus_dir)], str(tmp_path / "again.json"), TEST_VOCAB_SIZE)
    assert again.read_bytes() == tokenizer_path.read_bytes()
    # and in another process, where Rust's and Python's hash seeds differ
    script = (
        "import sys; from mixer.tokenizer import train_tokenizer as train; "
        "train([sys.argv[1]], sys.argv[2], int(sys.argv[3]))"
    )
    other = tmp_path / "other.json"
    command = [sys.executable, "-c", script, str(corpus_dir), str(other), str(TEST_VOCAB_SIZE)]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONHASHSEED": "99"})
    assert other.read_bytes() == tokenizer_path.read_bytes()


def test_vocabulary_and_special_tokens(tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_path)
    assert tokenizer.get_vocab_size() == TEST_VOCAB_SIZE
    special = SpecialTokens.from_tokenizer(tokenizer)
    ids = [special.eod, special.pad, special.fim_prefix, special.fim_middle, special.fim_suffix]
    assert ids == [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    assert len(set(ids)) == 5


def test_missing_special_token_is_a_clear_error() -> None:
    with pytest.raises(TokenizerError, match=r"lacks special token\(s\) <\|endoftext\|>"):
        SpecialTokens.from_tokenizer(new_tokenizer())


@pytest.mark.parametrize(
    "text",
    ["Le café coûte 3 €.", "def f(x):\n\treturn x  # ok\n", "数学 🙂 \x00 end", "  spaces  "],
)
def test_byte_level_round_trip(tokenizer_path: Path, text: str) -> None:
    tokenizer = load_tokenizer(tokenizer_path)
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_literal_special_token_in_a_document_stays_text(tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_path)
    eod = tokenizer.token_to_id("<|endoftext|>")
    ids = tokenizer.encode("before <|endoftext|> after").ids
    assert eod not in ids
    assert tokenizer.decode(ids) == "before <|endoftext|> after"


def test_sample_docs_is_seeded(corpus_dir: Path) -> None:
    everything = list(iter_shard_texts([str(corpus_dir)]))
    first = list(iter_shard_texts([str(corpus_dir)], sample_docs=10, seed=1))
    assert first == list(iter_shard_texts([str(corpus_dir)], sample_docs=10, seed=1))
    assert first != list(iter_shard_texts([str(corpus_dir)], sample_docs=10, seed=2))
    assert len(first) == 10 and set(first) <= set(everything)
    assert len(everything) == 61


def test_no_shards_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no shards"):
        train_tokenizer([str(tmp_path)], str(tmp_path / "tok.json"), TEST_VOCAB_SIZE)
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TokenizerError, match="not a tokenizers JSON file"):
        load_tokenizer(tmp_path / "bad.json")


def test_saved_file_loads_with_plain_tokenizers(tokenizer_path: Path) -> None:
    assert Tokenizer.from_file(str(tokenizer_path)).token_to_id("<|pad|>") is not None
