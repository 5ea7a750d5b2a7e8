"""RoPE scaling methods, first against hand-computed frequencies from each method's paper (d = 8
unless said: the unscaled inverse frequencies at base 10^4 are then exactly 1, 0.1, 0.01, 0.001),
then against ``transformers.modeling_rope_utils`` to 1e-6 over a grid of head dims, bases,
factors, original contexts and sequence lengths."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter

from trainer.model import Decoder, rotate
from trainer.rope import (
    by_parts_ramp,
    rope_dynamic_ntk,
    rope_frequencies,
    rope_longrope,
    rope_ntk,
    rope_ntk_by_parts,
    rope_yarn,
)
from trainer.spec import ModelSpec, RopeSpec

D, BASE = 8, 10_000.0
PLAIN = torch.tensor([1.0, 0.1, 0.01, 0.001])
ROPES = TypeAdapter(RopeSpec)


def frequencies(seq_len: int = 64, head_dim: int = D, **fields: Any) -> tuple[torch.Tensor, float]:
    return rope_frequencies(head_dim, BASE, ROPES.validate_python(fields), seq_len)


def close(actual: torch.Tensor, expected: Any) -> bool:
    return torch.allclose(actual.double(), torch.as_tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)


def plain(head_dim: int, base: float = BASE) -> torch.Tensor:
    return torch.tensor([base ** (-2 * i / head_dim) for i in range(head_dim // 2)], dtype=torch.float64)


def turns(head_dim: int, base: float, original_context: int) -> torch.Tensor:
    """How many times each pair turns over the original context, L / wavelength (YaRN's r)."""
    return original_context * plain(head_dim, base) / (2 * math.pi)


# ---------------------------------------------------------------------------------------------
# The papers' formulas


def test_none_is_base_to_the_minus_2i_over_d():
    inv_freq, scale = frequencies(kind="none")
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (D // 2,)
    assert close(inv_freq, PLAIN) and scale == 1.0


def test_abf_uses_the_new_base():
    inv_freq, scale = frequencies(kind="abf", base=1e6)
    assert close(inv_freq, [1.0, 10**-1.5, 1e-3, 10**-4.5]) and scale == 1.0
    wide, _ = frequencies(head_dim=64, kind="abf", base=5e5)
    assert close(wide, plain(64, 5e5))


def test_pi_divides_every_frequency_by_s():
    inv_freq, scale = frequencies(kind="pi", factor=2.0)
    assert close(inv_freq, PLAIN / 2) and scale == 1.0
    assert close(frequencies(head_dim=128, kind="pi", factor=2.5)[0], plain(128) / 2.5)


@pytest.mark.parametrize("head_dim", [8, 64, 128])
def test_ntk_keeps_the_fastest_and_divides_the_slowest_by_s(head_dim):
    inv_freq, scale = frequencies(head_dim=head_dim, kind="ntk", factor=4.0)
    new_base = BASE * 4.0 ** (head_dim / (head_dim - 2))
    assert close(inv_freq, plain(head_dim, new_base)) and scale == 1.0
    assert inv_freq[0] == 1.0 and close(inv_freq[-1:], plain(head_dim)[-1:] / 4)


def test_dynamic_ntk_scales_by_the_phase_length_over_the_original():
    assert close(frequencies(seq_len=512, kind="dynamic_ntk", original_context=1024)[0], PLAIN)
    assert close(frequencies(seq_len=1024, kind="dynamic_ntk", original_context=1024)[0], PLAIN)
    dynamic, scale = frequencies(seq_len=4096, kind="dynamic_ntk", original_context=1024)
    assert close(dynamic, frequencies(kind="ntk", factor=4.0)[0]) and scale == 1.0


def test_dynamic_ntk_with_a_factor_is_emozillas_rule():
    # base * (s * l / L - (s - 1))^(d / (d - 2)): no change up to L, then growing with slope s.
    assert torch.equal(rope_dynamic_ntk(D, BASE, 1000, 1024, factor=2.0)[0], plain(D))
    inv_freq, _ = rope_dynamic_ntk(D, BASE, 3 * 1024, 1024, factor=2.0)  # 2 * 3 - 1 = 5
    assert close(inv_freq, rope_ntk(D, BASE, 5.0)[0])
    assert close(inv_freq, plain(D, BASE * 5.0 ** (D / (D - 2))))


def test_ntk_by_parts_keeps_fast_pairs_interpolates_slow_ones_and_ramps_between():
    # Over L = 2048 the pairs turn L f / 2pi = 325.9, 32.6, 3.26, 0.326 times. r = 32 falls at
    # pair 1.008 and r = 1 at pair 2.513; the reference code ramps linearly in the pair index
    # between floor(1.008) = 1 and ceil(2.513) = 3, so pair 2 keeps half its frequency.
    inv_freq, scale = frequencies(kind="ntk_by_parts", factor=4.0, original_context=2048)
    assert close(inv_freq, [1.0, 0.1, 0.01 * (0.5 / 4 + 0.5), 0.001 / 4]) and scale == 1.0


def test_untruncated_ramp_is_the_papers_gamma_in_log_turns():
    # Without floor/ceil, a ramp linear in the pair index is gamma = ln(r / alpha) / ln(beta / alpha).
    r = turns(D, BASE, 2048)
    gamma = (torch.log(r) / math.log(32)).clamp(0, 1)
    assert close(by_parts_ramp(D, BASE, 2048, 1.0, 32.0, truncate=False), gamma)
    inv_freq, _ = rope_ntk_by_parts(D, BASE, 4.0, 2048, truncate=False)
    assert close(inv_freq, (1 - gamma) * plain(D) / 4 + gamma * plain(D))


@pytest.mark.parametrize(
    "head_dim, base, factor, original_context, alpha, beta, truncate",
    [
        (64, 1e4, 8.0, 256, 1.0, 32.0, True),
        (64, 1e4, 8.0, 256, 1.0, 32.0, False),
        (128, 5e5, 4.0, 8192, 1.0, 32.0, True),
        (128, 1e4, 16.0, 4096, 2.0, 16.0, True),
        (128, 1e6, 2.0, 32768, 1.0, 32.0, False),
        (96, 1e4, 3.0, 2000, 0.5, 64.0, True),
    ],
)
def test_by_parts_bands_follow_the_paper(head_dim, base, factor, original_context, alpha, beta, truncate):
    """Pairs turning more than beta times keep their frequency, fewer than alpha times are divided
    by s, and those between lie strictly between, slower pairs interpolated more."""
    inv_freq, _ = rope_ntk_by_parts(head_dim, base, factor, original_context, alpha, beta, truncate)
    original, r = plain(head_dim, base), turns(head_dim, base, original_context)
    fast, slow = r > beta, r < alpha
    assert fast.sum() >= 1 and slow.sum() >= 1
    assert close(inv_freq[fast], original[fast]) and close(inv_freq[slow], original[slow] / factor)
    kept = inv_freq / original  # 1 for fast pairs, 1/s for slow ones
    middle = ~fast & ~slow
    assert torch.all((kept[middle] <= 1) & (kept[middle] >= 1 / factor))
    assert torch.all(kept[1:] <= kept[:-1] + 1e-12)


def test_by_parts_when_the_whole_head_is_on_one_side_of_the_band():
    # L = 4 < 2pi: every pair turns less than once, so all are interpolated; L = 10^12 at base
    # 100: every pair turns over 32 times, so none is. Here alone we differ from transformers,
    # whose clamped band edges keep pair 0 in the first case and interpolate all in the second.
    assert close(rope_ntk_by_parts(D, BASE, 4.0, 4)[0], plain(D) / 4)
    assert close(rope_ntk_by_parts(D, 100.0, 4.0, 10**12)[0], plain(D, 100.0))


def test_yarn_is_ntk_by_parts_plus_the_attention_temperature():
    yarn, scale = frequencies(kind="yarn", factor=4.0, original_context=2048)
    by_parts, by_parts_scale = frequencies(kind="ntk_by_parts", factor=4.0, original_context=2048)
    assert torch.equal(yarn, by_parts) and by_parts_scale == 1.0
    assert scale == pytest.approx(0.1 * math.log(4.0) + 1)  # 1.1386: sqrt(1/t), on cos and sin
    assert frequencies(kind="yarn", factor=4.0, original_context=2048, attention_factor=1.0)[1] == 1.0
    assert frequencies(kind="yarn", factor=1.0, original_context=2048)[1] == 1.0


def test_yarn_defaults_are_the_papers_alpha_1_and_beta_32():
    spec = ROPES.validate_python({"kind": "yarn", "factor": 4.0, "original_context": 2048})
    assert (spec.alpha, spec.beta) == (1.0, 32.0)
    assert torch.equal(rope_yarn(64, BASE, 4.0, 2048)[0], rope_yarn(64, BASE, 4.0, 2048, 1.0, 32.0)[0])


def test_yarn_at_head_dim_64_keeps_high_and_divides_low_frequencies():
    spec = ROPES.validate_python({"kind": "yarn", "factor": 8.0, "original_context": 256})
    inv_freq, _ = rope_frequencies(64, BASE, spec, 2048)
    original, r = plain(64), turns(64, BASE, 256)
    fast, slow = r > 32, r < 1
    assert fast.sum() >= 1 and slow.sum() >= 10
    assert close(inv_freq[fast], original[fast])
    assert close(inv_freq[slow], original[slow] / 8)
    middle = ~fast & ~slow
    assert torch.all((inv_freq[middle] < original[middle]) & (inv_freq[middle] > original[middle] / 8))


def test_llama3_bands():
    # Wavelengths 2pi / f: 6.3, 63, 628, 6283; L/4 = 2048 and L/1 = 8192 bound the smooth band,
    # where the weight is linear in L / wavelength (unlike YaRN's reference ramp).
    inv_freq, scale = frequencies(kind="llama3", factor=8.0, original_context=8192)
    smooth = (8192 / (2 * math.pi / 0.001) - 1) / (4 - 1)
    assert close(inv_freq, [1.0, 0.1, 0.01, 0.001 * ((1 - smooth) / 8 + smooth)]) and scale == 1.0
    slow, _ = frequencies(kind="llama3", factor=8.0, original_context=2048)  # 6283 > 2048: divided
    assert close(slow[-1:], [0.001 / 8])


def test_llama3_31_at_head_dim_128():
    # Llama 3.1: base 5e5, s = 8, L = 8192, low/high 1/4: 'wavelength < 2048 kept, > 8192 / 8'.
    inv_freq, _ = frequencies(head_dim=128, kind="llama3", factor=8.0, original_context=8192, base=5e5)
    original = plain(128, 5e5)
    wavelength = 2 * math.pi / original
    short, long = wavelength < 2048, wavelength > 8192
    assert short.sum() >= 1 and long.sum() >= 1
    assert close(inv_freq[short], original[short]) and close(inv_freq[long], original[long] / 8)
    middle = ~short & ~long
    smooth = (8192 / wavelength[middle] - 1) / 3
    assert close(inv_freq[middle], (1 - smooth) * original[middle] / 8 + smooth * original[middle])


def test_longrope_rescales_each_pair_and_sets_its_attention_factor():
    inv_freq, scale = frequencies(kind="longrope", factor=4.0, original_context=4096, rescale=[1, 2, 4, 8])
    assert close(inv_freq, [1.0, 0.05, 0.0025, 0.000125])
    assert scale == pytest.approx(math.sqrt(1 + math.log(4) / math.log(4096)))  # sqrt(7/6)
    assert frequencies(kind="longrope", factor=1.0, original_context=4096, rescale=[1, 2, 4, 8])[1] == 1.0
    explicit = frequencies(kind="longrope", factor=4.0, original_context=4096, rescale=[1] * 4, attention_factor=1.2)
    assert explicit[1] == pytest.approx(1.2)


def test_longrope_uses_short_factors_up_to_the_original_context():
    short, long = [1.0, 1.0, 1.5, 2.0], [1.0, 2.0, 4.0, 8.0]
    at_original, scale = rope_longrope(D, BASE, 4.0, 4096, long, seq_len=4096, short_rescale=short)
    assert close(at_original, plain(D) / torch.tensor(short, dtype=torch.float64))
    assert scale == pytest.approx(math.sqrt(1 + math.log(4) / math.log(4096)))  # either way
    beyond, _ = rope_longrope(D, BASE, 4.0, 4096, long, seq_len=4097, short_rescale=short)
    assert close(beyond, plain(D) / torch.tensor(long, dtype=torch.float64))
    # without short factors the spec's factors apply at every length
    assert torch.equal(rope_longrope(D, BASE, 4.0, 4096, long, seq_len=100)[0], beyond)


def test_a_method_may_start_from_its_own_base():
    combined, _ = frequencies(kind="pi", factor=2.0, base=1e6)
    assert close(combined, [1.0 / 2, 10**-1.5 / 2, 1e-3 / 2, 10**-4.5 / 2])


def test_attention_scale_multiplies_the_logits_by_its_square():
    model = Decoder(ModelSpec(vocab_size=16, d_model=16, n_heads=2, n_layers=1), 16)
    segments = torch.zeros(1, 5, dtype=torch.long)
    q, k = torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    model.set_rope(*frequencies(kind="none"))
    unscaled = rotate(q, *model.rope_tables(segments)) @ rotate(k, *model.rope_tables(segments)).transpose(-1, -2)
    model.set_rope(PLAIN.clone(), 1.3)
    scaled = rotate(q, *model.rope_tables(segments)) @ rotate(k, *model.rope_tables(segments)).transpose(-1, -2)
    assert torch.allclose(scaled, unscaled * 1.3**2, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Against transformers.modeling_rope_utils (a Llama config per case; transformers works in
# float32, so agreement is to float32 rounding, well inside 1e-6)

TOLERANCE = 1e-6
HEAD_DIMS = (8, 64, 128)
BASES = (10_000.0, 500_000.0)
# (s, L): integer and fractional factors, contexts short enough that HF clamps YaRN's band edge
# at pair 0 (256) and long ones (8192)
EXTENSIONS = ((2.0, 4096), (4.0, 2048), (8.0, 8192), (16.0, 256), (2.5, 1000))
GRID = list(itertools.product(HEAD_DIMS, BASES, EXTENSIONS))
GRID_IDS = [f"d{d}-b{int(b)}-s{s}-L{n}" for d, b, (s, n) in GRID]


@pytest.fixture
def hf():
    """``hf(rope_type, head_dim, max_position_embeddings, seq_len=None, **rope_parameters)``:
    transformers' ``(inv_freq, attention_factor)`` for a Llama config built from those."""
    pytest.importorskip("transformers")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from transformers.utils import logging

    logging.set_verbosity_error()  # its validation warns about e.g. fractional implicit factors

    def compute(
        rope_type: str, head_dim: int, max_position_embeddings: int, seq_len: float | None = None,
        **parameters: Any,
    ) -> tuple[torch.Tensor, float]:
        config = LlamaConfig(
            hidden_size=2 * head_dim, num_attention_heads=2, head_dim=head_dim,
            max_position_embeddings=max_position_embeddings,
            rope_parameters={"rope_type": rope_type, **parameters},
        )
        # 'default' is no longer in ROPE_INIT_FUNCTIONS in transformers 5; the model class has it
        init = LlamaRotaryEmbedding.compute_default_rope_parameters if rope_type == "default" else ROPE_INIT_FUNCTIONS[rope_type]
        inv_freq, attention_factor = init(config, seq_len=seq_len)
        return inv_freq, float(attention_factor)

    return compute


def assert_matches(ours: tuple[torch.Tensor, float], theirs: tuple[torch.Tensor, float]) -> None:
    (inv_freq, scale), (hf_inv_freq, hf_scale) = ours, theirs
    assert inv_freq.shape == hf_inv_freq.shape
    difference = (inv_freq.double() - hf_inv_freq.double()).abs().max().item()
    assert difference < TOLERANCE, f"inv_freq differs by {difference:.3g}"
    assert abs(scale - hf_scale) < TOLERANCE, f"attention scale {scale} vs transformers' {hf_scale}"


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("base", (*BASES, 1e6))
def test_none_and_abf_match_transformers_default(hf, head_dim, base):
    # ABF is not a scaling type in transformers: it is 'default' with the new rope_theta.
    assert_matches(rope_frequencies(head_dim, base, ROPES.validate_python({"kind": "none"}), 64),
                   hf("default", head_dim, 2048, rope_theta=base))
    abf = ROPES.validate_python({"kind": "abf", "base": base})
    assert_matches(rope_frequencies(head_dim, 10_000.0, abf, 64), hf("default", head_dim, 2048, rope_theta=base))


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
def test_pi_matches_transformers_linear(hf, head_dim, base, extension):
    factor, original = extension
    spec = ROPES.validate_python({"kind": "pi", "factor": factor})
    assert_matches(rope_frequencies(head_dim, base, spec, original),
                   hf("linear", head_dim, original, rope_theta=base, factor=factor))


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
def test_ntk_matches_transformers_dynamic_at_the_extended_length(hf, head_dim, base, extension):
    # transformers has no static NTK-aware type. Its 'dynamic' with factor 1 raises the base by
    # (l / L)^(d / (d - 2)) at length l, so at l = s L it is exactly our base * s^(d / (d - 2)).
    factor, original = extension
    spec = ROPES.validate_python({"kind": "ntk", "factor": factor})
    assert_matches(rope_frequencies(head_dim, base, spec, original),
                   hf("dynamic", head_dim, original, seq_len=factor * original, rope_theta=base, factor=1.0))


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("original", (256, 2048, 4096))
@pytest.mark.parametrize("seq_len", (128, 2048, 4096, 10_000, 32_768))
def test_dynamic_ntk_matches_transformers_dynamic(hf, head_dim, base, original, seq_len):
    # Our spec's s is seq_len / L: transformers' 'dynamic' with factor 1 and
    # max_position_embeddings = L (it reads L from there, not from original_max_position_embeddings).
    spec = ROPES.validate_python({"kind": "dynamic_ntk", "original_context": original})
    assert_matches(rope_frequencies(head_dim, base, spec, seq_len),
                   hf("dynamic", head_dim, original, seq_len=seq_len, rope_theta=base, factor=1.0))
    # and emozilla's rule with a factor, as transformers takes it
    for factor in (2.0, 4.0, 8.0):
        assert_matches(rope_dynamic_ntk(head_dim, base, seq_len, original, factor),
                       hf("dynamic", head_dim, original, seq_len=seq_len, rope_theta=base, factor=factor))


def yarn_parameters(base: float, factor: float, original: int, **more: Any) -> dict[str, Any]:
    return {"rope_theta": base, "factor": factor, "original_max_position_embeddings": original, **more}


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
def test_yarn_matches_transformers_yarn(hf, head_dim, base, extension):
    factor, original = extension
    spec = ROPES.validate_python({"kind": "yarn", "factor": factor, "original_context": original})
    extended = math.ceil(factor * original)
    assert_matches(rope_frequencies(head_dim, base, spec, extended),
                   hf("yarn", head_dim, extended, **yarn_parameters(base, factor, original)))
    # transformers' beta_fast is our beta (keep above), its beta_slow our alpha (interpolate below)
    spec = ROPES.validate_python({"kind": "yarn", "factor": factor, "original_context": original,
                                  "alpha": 2.0, "beta": 16.0, "attention_factor": 1.25})
    assert_matches(rope_frequencies(head_dim, base, spec, extended),
                   hf("yarn", head_dim, extended, **yarn_parameters(base, factor, original, beta_fast=16.0,
                                                                    beta_slow=2.0, attention_factor=1.25)))


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
def test_yarn_without_truncation_matches_transformers(hf, head_dim, base, extension):
    # transformers' truncate=False (gpt-oss) skips the floor/ceil of the band edges.
    factor, original = extension
    extended = math.ceil(factor * original)
    assert_matches(rope_yarn(head_dim, base, factor, original, truncate=False),
                   hf("yarn", head_dim, extended, **yarn_parameters(base, factor, original, truncate=False)))


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
def test_ntk_by_parts_matches_transformers_yarn_without_its_temperature(hf, head_dim, base, extension):
    # NTK-by-parts is YaRN's frequencies without the attention temperature; transformers has no
    # type of its own for it, so it is 'yarn' with attention_factor 1.
    factor, original = extension
    spec = ROPES.validate_python({"kind": "ntk_by_parts", "factor": factor, "original_context": original})
    extended = math.ceil(factor * original)
    assert_matches(rope_frequencies(head_dim, base, spec, extended),
                   hf("yarn", head_dim, extended, **yarn_parameters(base, factor, original, attention_factor=1.0)))


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
@pytest.mark.parametrize("band", [(1.0, 4.0), (2.0, 8.0), (0.5, 2.0)])
def test_llama3_matches_transformers_llama3(hf, head_dim, base, extension, band):
    factor, original = extension
    low, high = band
    spec = ROPES.validate_python({"kind": "llama3", "factor": factor, "original_context": original,
                                  "low_freq_factor": low, "high_freq_factor": high})
    extended = math.ceil(factor * original)
    assert_matches(rope_frequencies(head_dim, base, spec, extended),
                   hf("llama3", head_dim, extended, rope_theta=base, factor=factor, low_freq_factor=low,
                      high_freq_factor=high, original_max_position_embeddings=original))


def some_factors(head_dim: int, seed: int, top: float) -> list[float]:
    """Rising per-pair factors from 1 to about ``top``, jittered like a searched set."""
    generator = torch.Generator().manual_seed(seed)
    rising = torch.linspace(0, 1, head_dim // 2, dtype=torch.float64) ** 2
    jitter = 1 + 0.1 * torch.rand(head_dim // 2, generator=generator, dtype=torch.float64)
    return (1 + (top - 1) * rising * jitter).tolist()


@pytest.mark.parametrize("head_dim, base, extension", GRID, ids=GRID_IDS)
def test_longrope_matches_transformers_longrope(hf, head_dim, base, extension):
    # Our spec gives one set of factors, used at every length: transformers' longrope with the
    # same set as short_factor and long_factor, on either side of L.
    factor, original = extension
    rescale = some_factors(head_dim, 0, factor)
    spec = ROPES.validate_python({"kind": "longrope", "factor": factor, "original_context": original,
                                  "rescale": rescale})
    extended = math.ceil(factor * original)
    parameters = {"rope_theta": base, "factor": factor, "original_max_position_embeddings": original,
                  "short_factor": rescale, "long_factor": rescale}
    for seq_len in (original // 2, original, original + 1, extended):
        assert_matches(rope_frequencies(head_dim, base, spec, seq_len),
                       hf("longrope", head_dim, extended, seq_len=seq_len, **parameters))
    # separate short factors are picked up to L and the long ones beyond, as transformers does
    short = some_factors(head_dim, 1, 1.5)
    parameters = {**parameters, "short_factor": short, "attention_factor": 1.1}
    for seq_len in (original // 2, original, original + 1, extended):
        assert_matches(rope_longrope(head_dim, base, factor, original, rescale, 1.1, seq_len, short),
                       hf("longrope", head_dim, extended, seq_len=seq_len, **parameters))


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_a_base_of_its_own_is_transformers_rope_theta(hf, head_dim):
    yarn = ROPES.validate_python({"kind": "yarn", "factor": 4.0, "original_context": 8192, "base": 1e6})
    assert_matches(rope_frequencies(head_dim, BASE, yarn, 32_768),
                   hf("yarn", head_dim, 32_768, **yarn_parameters(1e6, 4.0, 8192)))
    pi = ROPES.validate_python({"kind": "pi", "factor": 2.0, "base": 5e5})
    assert_matches(rope_frequencies(head_dim, BASE, pi, 4096), hf("linear", head_dim, 4096, rope_theta=5e5, factor=2.0))
