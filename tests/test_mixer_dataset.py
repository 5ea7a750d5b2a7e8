"""The public iterator: rank and worker sharding, resume, fingerprint checks, on-the-fly builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mixer_fixtures import corpus_dir, mixture, tokenizer_path  # noqa: F401
from torch.utils.data import DataLoader

from mixer.build import build_mixture, phase_on_the_fly
from mixer.dataset import PhaseDataset, StreamState, StreamStateError
from mixer.spec import MixtureSpec
from mixer.stream import PAD_SOURCE, open_phase

PHASES = [
    {
        "name": "concat",
        "tokens": 6_000,
        "seq_len": 32,
        "sources": [
            {"name": "web", "select": {"domain": "web"}, "weight": 0.6},
            {"name": "code", "select": {"domain": "code"}, "weight": 0.4, "fim": {"rate": 0.5}},
        ],
    },
    {
        "name": "best-fit",
        "tokens": 6_000,
        "seq_len": 128,
        "packing": {"method": "best_fit", "window": 8},
        "sources": [
            {"name": "web", "select": {"domain": "web"}, "weight": 0.5},
            {"name": "code", "select": {"domain": "code"}, "weight": 0.3,
             "fim": {"rate": 0.8, "level": "context"}},
            {"name": "math", "select": {"domain": "math"}, "weight": 0.2},
        ],
    },
]


@pytest.fixture(scope="module")
def spec(corpus_dir: Path, tokenizer_path: Path) -> MixtureSpec:
    return mixture(corpus_dir, tokenizer_path, PHASES)


@pytest.fixture(scope="module")
def mix(spec: MixtureSpec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mix") / "out"
    build_mixture(spec, str(out))
    return out


def rows(batches: list) -> np.ndarray:
    return np.concatenate([batch.tokens.numpy() for batch in batches]) if batches else np.zeros((0, 0))


def test_reads_the_phase_in_order_as_int64_tensors(mix: Path) -> None:
    phase = open_phase(mix, "concat")
    dataset = PhaseDataset(phase, batch_size=4)
    batches = list(dataset)
    assert len(batches) == len(dataset) == phase.info.n_sequences // 4
    assert batches[0].tokens.dtype == torch.int64 and batches[0].tokens.shape == (4, 32)
    assert np.array_equal(rows(batches), phase.tokens[: len(batches) * 4])
    assert np.array_equal(batches[1].segments.numpy(), phase.segments[4:8])
    assert np.array_equal(batches[1].sources.numpy(), phase.sources[4:8])


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_take_disjoint_blocks_of_each_step(mix: Path, world_size: int) -> None:
    phase = open_phase(mix, "concat")
    per_rank = [list(PhaseDataset(phase, 2, rank=rank, world_size=world_size)) for rank in range(world_size)]
    assert len({len(batches) for batches in per_rank}) == 1  # every rank takes the same steps
    steps = len(per_rank[0])
    # step k of all ranks, rank by rank, is the next world_size * 2 sequences
    merged = np.concatenate([rows([per_rank[rank][step]]) for step in range(steps) for rank in range(world_size)])
    assert np.array_equal(merged, phase.tokens[: steps * world_size * 2])


def test_loader_workers_split_steps_and_the_loader_keeps_their_order(mix: Path) -> None:
    dataset = PhaseDataset.from_built(mix, "concat", batch_size=3)
    plain = rows(list(dataset))
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    assert np.array_equal(rows(list(loader)), plain)


@pytest.mark.parametrize("stop", [0, 1, 5, 17])
def test_resume_continues_with_the_next_sequence(mix: Path, stop: int) -> None:
    phase = open_phase(mix, "concat")
    whole = rows(list(PhaseDataset(phase, 2)))
    first = PhaseDataset(phase, 2)
    before = [first.batch(step) for step in range(stop)]
    state = StreamState.from_dict(first.state_after(stop).to_dict())  # as a checkpoint would
    after = list(PhaseDataset(phase, 2, state=state))
    assert np.array_equal(rows(before + after), whole)


def test_resume_under_another_world_size_covers_the_rest_once(mix: Path) -> None:
    phase = open_phase(mix, "concat")
    state = PhaseDataset(phase, 2, rank=0, world_size=2).state_after(3)  # 12 sequences consumed
    assert state.tokens_consumed == 12 * 32
    ranks = [list(PhaseDataset(phase, 1, rank=rank, world_size=3, state=state)) for rank in range(3)]
    merged = np.concatenate([rows([ranks[rank][step]]) for step in range(len(ranks[0])) for rank in range(3)])
    assert np.array_equal(merged, phase.tokens[12: 12 + len(merged)])
    assert len(merged) == (phase.info.n_sequences - 12) // 3 * 3


def test_a_state_from_another_mixture_is_refused_unless_allowed(mix: Path) -> None:
    phase = open_phase(mix, "concat")
    good = PhaseDataset(phase, 2).state_after(2)
    other = StreamState(good.phase, good.tokens_consumed, good.seed, "f" * 64)
    with pytest.raises(StreamStateError, match="allow_mixture_change"):
        PhaseDataset(phase, 2, state=other)
    allowed = PhaseDataset(phase, 2, state=other, allow_mixture_change=True)
    assert np.array_equal(next(iter(allowed)).tokens.numpy(), phase.tokens[4:6])
    with pytest.raises(StreamStateError, match="not a whole number"):
        PhaseDataset(phase, 2, state=StreamState(good.phase, 33, good.seed, good.fingerprint))
    with pytest.raises(StreamStateError, match="for phase 'best-fit'"):
        PhaseDataset(phase, 2, state=StreamState("best-fit", 0, good.seed, good.fingerprint))


def test_the_fingerprint_and_seed_are_the_mixtures(spec: MixtureSpec, mix: Path) -> None:
    import json

    info = open_phase(mix, "concat").info
    assert info.fingerprint == json.loads((mix / "mixture.json").read_text())["fingerprint"]
    assert info.seed == spec.seed


@pytest.mark.parametrize("phase", ["concat", "best-fit"])
def test_on_the_fly_is_the_built_stream(spec: MixtureSpec, mix: Path, phase: str) -> None:
    built, fly = open_phase(mix, phase), phase_on_the_fly(spec, phase)
    assert fly.info == built.info
    for name in ("tokens", "segments", "sources"):
        assert np.array_equal(getattr(fly, name), getattr(built, name)), name
    state = PhaseDataset(built, 2).state_after(3)
    assert np.array_equal(rows(list(PhaseDataset(fly, 2, state=state))), rows(list(PhaseDataset(built, 2, state=state))))


def test_padding_is_flagged_and_alone_in_its_segment(mix: Path) -> None:
    phase = open_phase(mix, "best-fit")
    assert phase.info.padding == int((phase.sources == PAD_SOURCE).sum()) > 0
    batch = PhaseDataset(phase, 4).batch(0)
    pad = batch.padding
    # a padded row ends in one pad run, its own segment
    for row in range(pad.shape[0]):
        where = np.flatnonzero(pad[row].numpy())
        if len(where):
            assert where[-1] == pad.shape[1] - 1 and len(where) == where[-1] - where[0] + 1
            assert len(set(batch.segments[row][where].tolist())) == 1
            assert batch.segments[row][where[0]] != batch.segments[row][where[0] - 1]
