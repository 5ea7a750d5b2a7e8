"""The stream format of a built phase, and reading and writing it.

A built phase lives in ``MIX/phases/<phase>/``:

- ``tokens.npy``   uint32 ``[n_seq, seq_len]``: packed token ids;
- ``segments.npy`` uint32 ``[n_seq, seq_len]``: document index within its sequence (0, 1, ...),
  so the trainer can mask attention within documents and reset positions;
- ``sources.npy``  uint8  ``[n_seq, seq_len]``: index into ``phase.json``'s ``sources``, so
  loss can be reported per source and domain; ``PAD_SOURCE`` (255) marks padding, which the
  trainer leaves out of the loss (a trailing pad run is one segment of its own);
- ``phase.json``: :class:`PhaseInfo`.

Sequences are stored already in their seeded order, so a reader's state is just how many it
has consumed (:mod:`mixer.dataset` reads them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixer.pack import PAD_SOURCE  # noqa: F401  (part of the format; readers import it from here)


@dataclass(frozen=True)
class PhaseInfo:
    name: str
    seq_len: int
    n_sequences: int
    tokens: int
    sources: list[str]
    domains: list[str]  # domains[i] is the domain of sources[i]
    fingerprint: str = ""  # the mixture's (mixer.build.mixture_record); "" when unknown
    seed: int = 0
    padding: int = 0  # pad tokens among ``tokens``


@dataclass(frozen=True)
class PhaseArrays:
    """A phase's description and its three arrays: memory-mapped from a build, or in memory
    when built on the fly (``mixer.build.phase_on_the_fly``)."""

    info: PhaseInfo
    tokens: np.ndarray
    segments: np.ndarray
    sources: np.ndarray


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


def open_phase(mix_dir: str | Path, phase: str) -> PhaseArrays:
    """A built phase with its arrays memory-mapped (nothing is read until it is sliced)."""
    info = read_phase_info(mix_dir, phase)
    directory = phase_dir(mix_dir, phase)
    arrays = [np.load(directory / f"{name}.npy", mmap_mode="r") for name in ("tokens", "segments", "sources")]
    return PhaseArrays(info, *arrays)
