"""RoPE scaling methods against hand-computed frequencies (d = 8 unless said: the unscaled
inverse frequencies at base 10^4 are then exactly 1, 0.1, 0.01, 0.001)."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import TypeAdapter

from trainer.model import Decoder, rotate
from trainer.rope import rope_frequencies
from trainer.spec import ModelSpec, RopeSpec

D, BASE = 8, 10_000.0
PLAIN = torch.tensor([1.0, 0.1, 0.01, 0.001])
ROPES = TypeAdapter(RopeSpec)


def frequencies(seq_len: int = 64, **fields) -> tuple[torch.Tensor, float]:
    return rope_frequencies(D, BASE, ROPES.validate_python(fields), seq_len)


def close(actual: torch.Tensor, expected) -> bool:
    return torch.allclose(actual.double(), torch.as_tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)


def test_none_is_base_to_the_minus_2i_over_d():
    inv_freq, scale = frequencies(kind="none")
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (D // 2,)
    assert close(inv_freq, PLAIN) and scale == 1.0


def test_abf_uses_the_new_base():
    inv_freq, scale = frequencies(kind="abf", base=1e6)
    assert close(inv_freq, [1.0, 10**-1.5, 1e-3, 10**-4.5]) and scale == 1.0
    wide, _ = rope_frequencies(64, BASE, ROPES.validate_python({"kind": "abf", "base": 5e5}), 64)
    assert close(wide, [5e5 ** (-2 * i / 64) for i in range(32)])


def test_pi_halves_every_frequency_at_factor_2():
    inv_freq, scale = frequencies(kind="pi", factor=2.0)
    assert close(inv_freq, PLAIN / 2) and scale == 1.0


def test_ntk_keeps_the_fastest_and_divides_the_slowest_by_s():
    inv_freq, scale = frequencies(kind="ntk", factor=4.0)
    new_base = BASE * 4.0 ** (D / (D - 2))
    assert close(inv_freq, [new_base ** (-2 * i / D) for i in range(D // 2)]) and scale == 1.0
    assert inv_freq[0] == 1.0 and close(inv_freq[-1:], [0.001 / 4])


def test_dynamic_ntk_scales_by_the_phase_length_over_the_original():
    assert close(frequencies(seq_len=512, kind="dynamic_ntk", original_context=1024)[0], PLAIN)
    dynamic, _ = frequencies(seq_len=4096, kind="dynamic_ntk", original_context=1024)
    assert close(dynamic, frequencies(kind="ntk", factor=4.0)[0])


def test_ntk_by_parts_keeps_fast_dims_interpolates_slow_ones_and_ramps_between():
    # Over L = 2048 tokens the pairs turn L * f / 2pi = 325.9, 32.6, 3.26, 0.326 times.
    inv_freq, scale = frequencies(kind="ntk_by_parts", factor=4.0, original_context=2048)
    ramp = (2048 * 0.01 / (2 * math.pi) - 1) / (32 - 1)
    assert close(inv_freq, [1.0, 0.1, 0.01 * ((1 - ramp) / 4 + ramp), 0.001 / 4]) and scale == 1.0


def test_yarn_is_ntk_by_parts_plus_the_attention_temperature():
    yarn, scale = frequencies(kind="yarn", factor=4.0, original_context=2048)
    by_parts, _ = frequencies(kind="ntk_by_parts", factor=4.0, original_context=2048)
    assert torch.equal(yarn, by_parts)
    assert scale == pytest.approx(0.1 * math.log(4.0) + 1)  # 1.1386
    assert frequencies(kind="yarn", factor=4.0, original_context=2048, attention_factor=1.0)[1] == 1.0


def test_yarn_at_head_dim_64_keeps_high_and_divides_low_frequencies():
    spec = ROPES.validate_python({"kind": "yarn", "factor": 8.0, "original_context": 256})
    inv_freq, _ = rope_frequencies(64, BASE, spec, 2048)
    original = torch.tensor([BASE ** (-2 * i / 64) for i in range(32)], dtype=torch.float64)
    turns = 256 * original / (2 * math.pi)
    fast, slow = turns > 32, turns < 1
    assert fast.sum() >= 1 and slow.sum() >= 10
    assert close(inv_freq[fast], original[fast])
    assert close(inv_freq[slow], original[slow] / 8)
    middle = ~fast & ~slow
    assert torch.all((inv_freq[middle] < original[middle]) & (inv_freq[middle] > original[middle] / 8))


def test_llama3_bands():
    # Wavelengths 2pi / f: 6.3, 63, 628, 6283; L/4 = 2048 and L/1 = 8192 bound the smooth band.
    inv_freq, scale = frequencies(kind="llama3", factor=8.0, original_context=8192)
    smooth = (8192 / (2 * math.pi / 0.001) - 1) / (4 - 1)
    assert close(inv_freq, [1.0, 0.1, 0.01, 0.001 * ((1 - smooth) / 8 + smooth)]) and scale == 1.0
    slow, _ = frequencies(kind="llama3", factor=8.0, original_context=2048)  # 6283 > 2048: divided
    assert close(slow[-1:], [0.001 / 8])


def test_longrope_rescales_each_pair_and_sets_its_attention_factor():
    inv_freq, scale = frequencies(kind="longrope", factor=4.0, original_context=4096, rescale=[1, 2, 4, 8])
    assert close(inv_freq, [1.0, 0.05, 0.0025, 0.000125])
    assert scale == pytest.approx(math.sqrt(1 + math.log(4) / math.log(4096)))  # sqrt(7/6)


def test_a_method_may_start_from_its_own_base():
    combined, _ = frequencies(kind="pi", factor=2.0, base=1e6)
    assert close(combined, [1.0 / 2, 10**-1.5 / 2, 1e-3 / 2, 10**-4.5 / 2])


def test_attention_scale_multiplies_the_logits_by_its_square():
    model = Decoder(ModelSpec(vocab_size=16, d_model=16, n_heads=2, n_layers=1), 16)
    segments = torch.zeros(1, 5, dtype=torch.long)
    q, k = torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    model.set_rope(*frequencies(kind="none"))
    plain = rotate(q, *model.rope_tables(segments)) @ rotate(k, *model.rope_tables(segments)).transpose(-1, -2)
    model.set_rope(PLAIN.clone(), 1.3)
    scaled = rotate(q, *model.rope_tables(segments)) @ rotate(k, *model.rope_tables(segments)).transpose(-1, -2)
    assert torch.allclose(scaled, plain * 1.3**2, atol=1e-5)
