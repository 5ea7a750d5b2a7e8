"""The mixer's public iterator: the only way trainer/ reads a mixture phase.

:class:`PhaseDataset` is a torch ``IterableDataset`` of whole batches over one phase, built
(memory-mapped shards) or built on the fly (the same arrays, in memory). Its order is fixed by
the phase's stored sequence order, so its whole state is a :class:`StreamState`: the phase, the
tokens consumed so far by all ranks together, and the seed and fingerprint of the mixture.

A global step takes ``world_size * batch_size`` consecutive sequences; rank ``r`` gets the
``r``-th block of ``batch_size`` of them (a contiguous slice, one read per batch). Under a
``DataLoader(dataset, batch_size=None, num_workers=W)``, loader worker ``w`` yields the steps
``w, w + W, ...``, and the loader's round-robin over workers puts them back in step order. So
ranks and workers read disjoint sequences, and restoring a state continues with the sequence
(and so the token) that would have come next, whatever the world size or worker count is after
the restart. The last global step that would be partial is not yielded, so every rank takes the
same number of steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mixer.stream import PAD_SOURCE, PhaseArrays, open_phase


class StreamStateError(ValueError):
    """A saved stream state that does not belong to this phase or mixture."""


@dataclass(frozen=True)
class StreamState:
    """Where a phase's stream is: what a checkpoint saves and a restart restores."""

    phase: str
    tokens_consumed: int  # by all ranks together; a whole number of sequences
    seed: int
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StreamState":
        return cls(**data)


@dataclass(frozen=True)
class PackedBatch:
    """``batch_size`` sequences of one phase, as int64 tensors ``[batch, seq_len]``."""

    tokens: torch.Tensor
    segments: torch.Tensor
    sources: torch.Tensor  # PAD_SOURCE on padding

    @property
    def padding(self) -> torch.Tensor:
        return self.sources == PAD_SOURCE


class PhaseDataset(IterableDataset):
    """Batches of one phase for one data-parallel rank, from ``state`` on (the phase's start
    when None). A state from another mixture (fingerprint) or seed is refused unless
    ``allow_mixture_change``: continuing a run on different data should be a decision."""

    def __init__(
        self,
        phase: PhaseArrays,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        state: StreamState | None = None,
        allow_mixture_change: bool = False,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.phase = phase
        self.info = phase.info
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.start = self.initial_state() if state is None else state
        self._check(self.start, allow_mixture_change)

    @classmethod
    def from_built(cls, mix_dir: str | Path, phase: str, batch_size: int, **options: Any) -> "PhaseDataset":
        return cls(open_phase(mix_dir, phase), batch_size, **options)

    def initial_state(self) -> StreamState:
        return StreamState(self.info.name, 0, self.info.seed, self.info.fingerprint)

    def _check(self, state: StreamState, allow_mixture_change: bool) -> None:
        info = self.info
        if state.phase != info.name:
            raise StreamStateError(f"stream state is for phase {state.phase!r}, not {info.name!r}")
        if not allow_mixture_change and (state.fingerprint, state.seed) != (info.fingerprint, info.seed):
            raise StreamStateError(
                f"phase {info.name!r}: stream state is from mixture {state.fingerprint[:12] or '?'} "
                f"seed {state.seed}, this is {info.fingerprint[:12] or '?'} seed {info.seed}; "
                "pass allow_mixture_change to continue on the new data"
            )
        sequences, remainder = divmod(state.tokens_consumed, info.seq_len)
        if remainder or not 0 <= sequences <= info.n_sequences:
            raise StreamStateError(
                f"phase {info.name!r}: tokens_consumed {state.tokens_consumed} is not a whole number "
                f"of {info.seq_len}-token sequences within the phase's {info.n_sequences}"
            )

    @property
    def sequences_per_step(self) -> int:
        """Sequences one global step takes across all ranks."""
        return self.world_size * self.batch_size

    def __len__(self) -> int:
        """Steps (batches for this rank) from the start state to the end of the phase."""
        left = self.info.n_sequences - self.start.tokens_consumed // self.info.seq_len
        return left // self.sequences_per_step

    def state_after(self, steps: int) -> StreamState:
        """The state once every rank has taken ``steps`` batches from the start state."""
        consumed = self.start.tokens_consumed + steps * self.sequences_per_step * self.info.seq_len
        return StreamState(self.info.name, consumed, self.start.seed, self.start.fingerprint)

    def batch(self, step: int) -> PackedBatch:
        """This rank's batch of global step ``step`` (counted from the start state)."""
        first = (
            self.start.tokens_consumed // self.info.seq_len
            + step * self.sequences_per_step
            + self.rank * self.batch_size
        )
        rows = slice(first, first + self.batch_size)
        return PackedBatch(*(
            torch.from_numpy(np.asarray(array[rows], dtype=np.int64))
            for array in (self.phase.tokens, self.phase.segments, self.phase.sources)
        ))

    def __iter__(self) -> Iterator[PackedBatch]:
        worker = get_worker_info()
        first, stride = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for step in range(first, len(self), stride):
            yield self.batch(step)
