"""The mixer's view of curated outputs (contract 1 directories): where their shards are, and
the manifest hash that goes into a built mixture's fingerprint.

Every reader in mixer/ (tokenizer training, selectors) finds shards through here, so "this
directory has no shards" is reported the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from corpus.manifest import manifest_path, sha256_file
from corpus.schema import shard_glob, shards_dir


class CorpusError(FileNotFoundError):
    """A corpus directory that is not a finished curation output."""


def shard_files(corpus_dir: str | Path) -> list[Path]:
    """The shards of one curated output, sorted by path (so readers see a stable order)."""
    files = sorted(shards_dir(corpus_dir).glob("domain=*/*.parquet"))
    if not files:
        raise CorpusError(
            f"{shards_dir(corpus_dir)}: no shards (domain=*/*.parquet); "
            "is this a finished curation output?"
        )
    return files


def all_shard_files(corpus_dirs: Sequence[str | Path]) -> list[Path]:
    """Shards of every corpus, corpus by corpus in the order given."""
    if not corpus_dirs:
        raise CorpusError("no corpus directories given")
    return [path for corpus_dir in corpus_dirs for path in shard_files(corpus_dir)]


def shard_globs(corpus_dirs: Sequence[str | Path]) -> list[str]:
    """One ``read_parquet`` glob per corpus, after checking that each has shards."""
    all_shard_files(corpus_dirs)
    return [shard_glob(corpus_dir) for corpus_dir in corpus_dirs]


def manifest_sha256(corpus_dir: str | Path) -> str | None:
    """sha256 of ``OUT/manifest.json``, or None for a corpus written without one."""
    path = manifest_path(corpus_dir)
    return sha256_file(path) if path.is_file() else None
