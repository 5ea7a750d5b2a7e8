"""The mixer's public iterator: the only way trainer/ reads a built mixture.

A built phase lives in ``MIX/phases/<phase>/``:

- ``tokens.npy``   uint32 ``[n_seq, seq_len]``: packed token ids;
- ``segments.npy`` uint32 ``[n_seq, seq_len]``: document index within its sequence (0, 1, ...),
  so the trainer can mask attention within documents and reset positions;
- ``sources.npy``  uint8  ``[n_seq, seq_len]``: index into ``phase.json``'s ``sources``, so
  loss can be reported per source and domain;
- ``phase.json``: ``{name, seq_len, n_sequences, tokens, sources: [name], domains: [domain]}``.

Sequences are stored already in their seeded order; a stream reads them memory-mapped, so the
state of a reader is just how many sequences it has consumed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class PhaseInfo:
    name: str
    seq_len: int
    n_sequences: int
    tokens: int
    sources: list[str]
    domains: list[str]  # domains[i] is the domain of sources[i]


@dataclass(frozen=True)
class PackedBatch:
    tokens: np.ndarray  # int64 [batch, seq_len]
    segments: np.ndarray  # int64 [batch, seq_len]
    sources: np.ndarray  # int64 [batch, seq_len]


def phase_dir(mix_dir: str | Path, phase: str) -> Path:
    return Path(mix_dir) / "phases" / phase


def write_phase(
    mix_dir: str | Path,
    info: PhaseInfo,
    tokens: np.ndarray,
    segments: np.ndarray,
    sources: np.ndarray,
) -> Path:
    """Write a built phase; each file goes to a temporary name first and is renamed into
    place, with phase.json last, so a reader that finds phase.json finds whole arrays."""
    expected = (info.n_sequences, info.seq_len)
    for name, array in (("tokens", tokens), ("segments", segments), ("sources", sources)):
        if array.shape != expected:
            raise ValueError(f"{name} has shape {array.shape}, expected {expected}")
    directory = phase_dir(mix_dir, info.name)
    directory.mkdir(parents=True, exist_ok=True)
    for name, array, dtype in (
        ("tokens", tokens, np.uint32),
        ("segments", segments, np.uint32),
        ("sources", sources, np.uint8),
    ):
        tmp = directory / f"{name}.tmp.npy"
        np.save(tmp, np.ascontiguousarray(array, dtype=dtype))
        os.replace(tmp, directory / f"{name}.npy")
    meta = directory / "phase.json.tmp"
    meta.write_text(json.dumps(info.__dict__, indent=2) + "\n")
    os.replace(meta, directory / "phase.json")
    return directory


def read_phase_info(mix_dir: str | Path, phase: str) -> PhaseInfo:
    path = phase_dir(mix_dir, phase) / "phase.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: phase {phase!r} has not been built")
    return PhaseInfo(**json.loads(path.read_text()))


class PhaseStream:
    """Batches of whole sequences from one built phase, for one data-parallel rank.

    Rank ``r`` of ``world_size`` takes sequences ``r, r + world_size, ...``; ``start`` is the
    number of batches this rank has already consumed (the resume point). The last partial
    batch is dropped so every rank takes the same number of steps.
    """

    def __init__(
        self,
        mix_dir: str | Path,
        phase: str,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.info = read_phase_info(mix_dir, phase)
        directory = phase_dir(mix_dir, phase)
        self._tokens = np.load(directory / "tokens.npy", mmap_mode="r")
        self._segments = np.load(directory / "segments.npy", mmap_mode="r")
        self._sources = np.load(directory / "sources.npy", mmap_mode="r")
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.position = start  # batches consumed so far by this rank

    def __len__(self) -> int:
        """Batches this rank gets from the whole phase."""
        per_rank = self.info.n_sequences // self.world_size
        return per_rank // self.batch_size

    def __iter__(self) -> Iterator[PackedBatch]:
        while self.position < len(self):
            first = self.position * self.batch_size
            rows = [
                (first + offset) * self.world_size + self.rank for offset in range(self.batch_size)
            ]
            self.position += 1
            yield PackedBatch(
                tokens=np.asarray(self._tokens[rows], dtype=np.int64),
                segments=np.asarray(self._segments[rows], dtype=np.int64),
                sources=np.asarray(self._sources[rows], dtype=np.int64),
            )

    def state(self) -> dict[str, int | str]:
        return {"phase": self.info.name, "position": self.position}
