"""The trainer: schedules, RoPE scaling, document masking, determinism and resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from corpus.specfile import SpecError
from mixer.stream import PhaseInfo, write_phase
from trainer.model import Decoder, document_mask, document_positions
from trainer.rope import base_inv_freq, rope_frequencies
from trainer.schedule import lr_multiplier
from trainer.spec import ModelSpec, RopeSpec, TrainSpec, load_train_spec
from trainer.train import run_training

VOCAB = 64


def schedule(**fields):
    return TrainSpec.model_validate(
        {"name": "s", "mixture": "m", "output": "o", "schedule": fields,
         "phases": [{"name": "p", "mixture_phase": "p", "seq_len": 8, "batch_size": 1}]}
    ).schedule


def test_warmup_then_constant():
    spec = schedule(kind="constant", warmup_tokens=100)
    assert lr_multiplier(0, 1000, spec) == pytest.approx(0.01)
    assert lr_multiplier(49, 1000, spec) == pytest.approx(0.5)
    assert lr_multiplier(100, 1000, spec) == lr_multiplier(999, 1000, spec) == 1.0


def test_wsd_is_flat_then_decays_to_the_floor():
    spec = schedule(kind="wsd", decay_fraction=0.2, decay_shape="linear", min_lr_ratio=0.1)
    assert lr_multiplier(0, 1000, spec) == 1.0 and lr_multiplier(800, 1000, spec) == 1.0
    assert lr_multiplier(900, 1000, spec) == pytest.approx(0.55)
    assert lr_multiplier(1000, 1000, spec) == pytest.approx(0.1)
    decay = [lr_multiplier(t, 1000, spec) for t in range(800, 1001, 10)]
    assert decay == sorted(decay, reverse=True)
    for shape in ("cosine", "1-sqrt", "exponential"):
        shaped = schedule(kind="wsd", decay_fraction=0.5, decay_shape=shape, min_lr_ratio=0.01)
        assert lr_multiplier(500, 1000, shaped) == pytest.approx(1.0)
        assert lr_multiplier(1000, 1000, shaped) == pytest.approx(0.01)
    sqrt_shape = schedule(kind="wsd", decay_fraction=1.0, decay_shape="1-sqrt")
    assert lr_multiplier(250, 1000, sqrt_shape) == pytest.approx(0.5)


def test_cosine_linear_inverse_sqrt_and_multi_step():
    cosine = schedule(kind="cosine", min_lr_ratio=0.1)
    assert lr_multiplier(0, 1000, cosine) == 1.0
    assert lr_multiplier(500, 1000, cosine) == pytest.approx(0.55)
    assert lr_multiplier(1000, 1000, cosine) == pytest.approx(0.1)
    assert lr_multiplier(500, 1000, schedule(kind="linear")) == pytest.approx(0.5)
    inverse = schedule(kind="inverse_sqrt", warmup_tokens=100)
    assert lr_multiplier(400, 1000, inverse) == pytest.approx(0.5)
    steps = schedule(kind="multi_step")  # DeepSeek LLM: 31.6% at 80%, 10% at 90%
    assert [lr_multiplier(t, 1000, steps) for t in (799, 800, 899, 900, 1000)] == [1.0, 0.316, 0.316, 0.1, 0.1]


def test_schedule_is_a_pure_function():
    spec = schedule(kind="wsd", warmup_tokens=10, decay_fraction=0.3, decay_shape="cosine")
    assert [lr_multiplier(t, 500, spec) for t in range(0, 500, 7)] == [
        lr_multiplier(t, 500, spec) for t in range(0, 500, 7)
    ]


def test_rope_none_abf_pi_ntk():
    d = 16
    inv, scale = rope_frequencies(d, 10_000.0, RopeSpec(kind="none"))
    expected = torch.tensor([10_000.0 ** (-2 * i / d) for i in range(d // 2)])
    assert torch.allclose(inv, expected) and scale == 1.0
    abf, _ = rope_frequencies(d, 10_000.0, RopeSpec(kind="abf", base=500_000.0))
    assert torch.allclose(abf, torch.tensor([500_000.0 ** (-2 * i / d) for i in range(d // 2)]))
    pi, _ = rope_frequencies(d, 10_000.0, RopeSpec(kind="pi", factor=2.0))
    assert torch.allclose(pi, expected / 2)
    ntk, _ = rope_frequencies(d, 10_000.0, RopeSpec(kind="ntk", factor=4.0))
    new_base = 10_000.0 * 4.0 ** (d / (d - 2))
    assert torch.allclose(ntk, torch.tensor([new_base ** (-2 * i / d) for i in range(d // 2)]))
    assert ntk[0] == 1.0 and torch.isclose(ntk[-1], expected[-1] / 4, rtol=1e-5)  # lowest freq ~ PI


def test_rope_yarn_by_parts_and_temperature():
    d, base, factor, context = 64, 10_000.0, 4.0, 256
    inv, scale = rope_frequencies(d, base, RopeSpec(kind="yarn", factor=factor, original_context=context))
    original = base_inv_freq(d, base).float()
    rotations = context * original / (2 * math.pi)
    fast, slow = rotations > 32, rotations < 1
    assert fast.any() and slow.any()
    assert torch.allclose(inv[fast], original[fast])
    assert torch.allclose(inv[slow], original[slow] / factor)
    middle = ~fast & ~slow
    assert torch.all((inv[middle] < original[middle]) & (inv[middle] > original[middle] / factor))
    assert scale == pytest.approx(0.1 * math.log(factor) + 1)


def test_document_positions_and_mask():
    segments = torch.tensor([[0, 0, 0, 1, 1, 2]])
    assert document_positions(segments).tolist() == [[0, 1, 2, 0, 1, 0]]
    mask = document_mask(segments)[0, 0]
    assert mask[4].tolist() == [False, False, False, True, True, False]
    assert mask[2].tolist() == [True, True, True, False, False, False]


def test_attention_never_crosses_documents():
    torch.manual_seed(0)
    model = Decoder(ModelSpec(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64), VOCAB)
    model.set_rope(*rope_frequencies(8, 10_000.0, RopeSpec()))
    segments = torch.tensor([[0] * 6 + [1] * 6])
    tokens = torch.randint(0, VOCAB, (1, 12))
    changed = tokens.clone()
    changed[0, :6] = (changed[0, :6] + 1) % VOCAB  # a different first document
    with torch.no_grad():
        a, b = model(tokens, segments), model(changed, segments)
    assert torch.allclose(a[0, 6:], b[0, 6:], atol=1e-6)
    assert not torch.allclose(a[0, :6], b[0, :6])


def make_mixture(root, phases: dict[str, int]) -> str:
    """A learnable synthetic mixture: each document counts up modulo VOCAB from a random start."""
    rng = np.random.default_rng(0)
    for name, seq_len in phases.items():
        n = 48
        starts = rng.integers(0, VOCAB, size=(n, 1))
        tokens = (starts + np.arange(seq_len)) % VOCAB
        segments = np.repeat(np.arange(seq_len // 16), 16)[None].repeat(n, axis=0)
        sources = (segments % 2).astype(np.uint8)
        info = PhaseInfo(name, seq_len, n, n * seq_len, ["a", "b"], ["web", "code"])
        write_phase(root, info, tokens, segments, sources)
    return str(root)


def train_spec(tmp_path, output: str, **overrides) -> TrainSpec:
    mixture = make_mixture(tmp_path / "mix", {"short": 32, "long": 64})
    data = {
        "name": "t", "mixture": mixture, "output": str(tmp_path / output), "seed": 3,
        "model": {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                  "ffn_hidden": 64},
        "optimizer": {"lr": 0.01},
        "schedule": {"kind": "wsd", "warmup_tokens": 256, "decay_fraction": 0.3},
        "phases": [
            {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4},
            {"name": "long", "mixture_phase": "long", "seq_len": 64, "batch_size": 4,
             "rope": {"kind": "abf", "base": 100_000.0}},
        ],
        "checkpoint_every": 5, "device": "cpu",
    }
    data.update(overrides)
    return TrainSpec.model_validate(data)


def losses(spec: TrainSpec) -> list[float]:
    lines = open(f"{spec.output}/metrics.jsonl").read().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_training_learns_and_is_deterministic(tmp_path):
    first = run_training(train_spec(tmp_path, "a"))
    second = run_training(train_spec(tmp_path, "b"))
    a, b = losses(train_spec(tmp_path, "a")), losses(train_spec(tmp_path, "b"))
    assert a == b and len(a) == 24
    assert first == {**second, "wall_seconds": first["wall_seconds"]}
    assert a[-1] < a[0] - 1.0
    phases = {phase["name"]: phase for phase in first["phases"]}
    assert phases["long"]["seq_len"] == 64 and phases["long"]["rope"] == "abf"
    record = json.loads(open(f"{tmp_path}/a/metrics.jsonl").readline())
    assert set(record["loss_by_domain"]) == {"web", "code"}


def test_resume_gives_the_same_losses(tmp_path):
    run_training(train_spec(tmp_path, "whole"))
    spec = train_spec(tmp_path, "cut")
    run_training(spec)
    checkpoints = tmp_path / "cut" / "checkpoints"
    (checkpoints / "latest").write_text("step-0000015.pt\n")  # back into the second phase
    run_training(spec, resume=True)
    assert losses(spec) == losses(train_spec(tmp_path, "whole"))


def test_each_phase_sets_its_rope(tmp_path, monkeypatch):
    applied: list[torch.Tensor] = []
    original = Decoder.set_rope

    def record(model, inv_freq, attention_scale):
        applied.append(inv_freq.clone())
        original(model, inv_freq, attention_scale)

    monkeypatch.setattr(Decoder, "set_rope", record)
    run_training(train_spec(tmp_path, "rope"))
    head_dim = 8
    assert len(applied) == 2
    assert torch.allclose(applied[0], torch.tensor([10_000.0 ** (-2 * i / head_dim) for i in range(4)]))
    assert torch.allclose(applied[1], torch.tensor([100_000.0 ** (-2 * i / head_dim) for i in range(4)]))


def test_seq_len_must_match_the_built_phase(tmp_path):
    spec = train_spec(tmp_path, "bad", phases=[
        {"name": "short", "mixture_phase": "short", "seq_len": 64, "batch_size": 4}])
    with pytest.raises(ValueError, match="seq_len 64 but mixture phase 'short' was packed to 32"):
        run_training(spec)


def test_bad_spec_names_the_field(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("name: t\nmixture: m\noutput: o\nmodel: {d_model: 30, n_heads: 4}\n"
                    "phases: [{name: p, mixture_phase: p, seq_len: 8, batch_size: 1}]\n")
    with pytest.raises(SpecError, match=r"train.yaml: field model: .*not divisible by n_heads"):
        load_train_spec(path)
    path.write_text("name: t\nmixture: m\noutput: o\n"
                    "phases: [{name: p, mixture_phase: p, seq_len: 8, batch_size: 1, rope: {kind: yarn, factor: 2}}]\n")
    with pytest.raises(SpecError, match="needs 'original_context'"):
        load_train_spec(path)
