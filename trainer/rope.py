"""RoPE frequencies for context extension: one function per method, each returning
``(inv_freq, attention_scale)``.

``inv_freq[i]`` (``head_dim // 2`` values, float32) is the rotation speed of dimension pair i:
RoPE turns that pair by ``position * inv_freq[i]`` radians (Su et al. 2021), and the model pairs
dimension i with i + head_dim/2. ``attention_scale`` is how a method changes the softmax
temperature: the model multiplies cos and sin by it, so queries and keys are both scaled by it
and the attention logits by its square. That is exactly YaRN's rule (both RoPE embeddings are
scaled by ``sqrt(1/t)``, so the logits are divided by ``t``), and the same place HF transformers
applies its ``attention_factor``. Every method matches ``transformers.modeling_rope_utils`` to
float32 rounding (tests/test_trainer_rope.py gives the mapping for those it lacks).

Below ``s`` is the extension factor, ``b`` the base, ``d`` the head dimension, ``L`` the
original context and ``r = L * inv_freq / 2pi`` the number of turns a pair makes over ``L``.

- none: ``b^(-2i/d)`` (Su et al. 2021). HF "default".

- abf: the same with a larger base, "adjusted base frequency" (Xiong et al. 2023, Effective
  Long-Context Scaling of Foundation Models). HF "default" with the new ``rope_theta``.

- pi: position interpolation (Chen et al. 2023): positions are squeezed by s, i.e. every
  frequency is divided by s. HF "linear".

- ntk: NTK-aware scaling (bloc97, 2023): the base becomes ``b * s^(d/(d-2))``, so the fastest
  pair keeps its frequency and the slowest is divided by exactly s. HF has no static form; its
  "dynamic" at length ``s * L`` with factor 1 is this.

- dynamic_ntk: NTK-aware with s set by the sequence length (emozilla 2023; Peng et al. 2023
  sec. 3.3): the base is ``b * (k * l / L - (k - 1))^(d/(d-2))`` for length ``l >= L`` (and
  unchanged below L), k a factor that defaults to 1, giving ``s = l / L``. HF "dynamic", with
  its ``max_position_embeddings`` as L.

- ntk_by_parts: NTK-by-parts (Peng et al. 2023, YaRN sec. 3.2): pairs that turn more than beta
  times over L keep their frequency, those under alpha times are divided by s, and those between
  blend ``(1 - g) f / s + g f``. The paper writes g linearly in r; its reference code (which
  trained the YaRN models, and which HF and vLLM reproduce) ramps g linearly in the pair index
  between the (fractional) pairs where r = beta and r = alpha, i.e. linearly in ln r, with the
  edges floored/ceiled to whole pairs ("truncate"). This follows the code, so a model extended
  here sees the same frequencies at inference. alpha = 1, beta = 32 (HF's beta_slow/beta_fast).
  HF "yarn" with attention_factor 1.

- yarn: ntk_by_parts plus the attention temperature ``sqrt(1/t) = 0.1 ln s + 1`` on cos and
  sin (Peng et al. 2023, YaRN). HF "yarn".

- llama3: Llama 3.1's rule (Meta 2024): wavelengths under ``L / high_freq_factor`` keep their
  frequency, over ``L / low_freq_factor`` are divided by s, and in between blend with weight
  ``(r - low) / (high - low)``: the YaRN paper's by-parts g, linear in r, with alpha = low = 1
  and beta = high = 4. HF "llama3".

- longrope: per-pair rescale factors found by evolutionary search (Ding et al. 2024,
  LongRoPE), ``inv_freq / rescale``, with attention scale ``sqrt(1 + ln s / ln L)`` (Phi-3's
  default). Given separate short factors they apply up to L and the long ones beyond, as in
  Phi-3 and HF "longrope".

Each method may take a ``base`` of its own, so a base change and a scaling combine (HF's
``rope_theta``).
"""

from __future__ import annotations

import math

import torch

from trainer.spec import (
    AbfRope,
    DynamicNtkRope,
    Llama3Rope,
    LongRope,
    NoRope,
    NtkByPartsRope,
    NtkRope,
    PiRope,
    RopeSpec,
    YarnRope,
)

Frequencies = tuple[torch.Tensor, float]


def base_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """``base^(-2i/d)`` for i = 0 .. d/2 - 1, in float64 (cast once, at the end)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return base**-exponents


def rope_none(head_dim: int, base: float) -> Frequencies:
    return base_inv_freq(head_dim, base), 1.0


def rope_abf(head_dim: int, new_base: float) -> Frequencies:
    return base_inv_freq(head_dim, new_base), 1.0


def rope_pi(head_dim: int, base: float, factor: float) -> Frequencies:
    return base_inv_freq(head_dim, base) / factor, 1.0


def rope_ntk(head_dim: int, base: float, factor: float) -> Frequencies:
    # exponent d/(d-2): the slowest pair, base^(-(d-2)/d), is then divided by exactly s
    return base_inv_freq(head_dim, base * factor ** (head_dim / (head_dim - 2))), 1.0


def rope_dynamic_ntk(
    head_dim: int, base: float, seq_len: int, original_context: int, factor: float = 1.0
) -> Frequencies:
    # Below L nothing changes (short sequences keep full precision); beyond, s grows with l.
    length = max(seq_len, original_context)
    return rope_ntk(head_dim, base, factor * length / original_context - (factor - 1))


def _pair_turning(turns: float, head_dim: int, base: float, original_context: int) -> float:
    """The fractional pair index i whose frequency ``base^(-2i/d)`` turns ``turns`` times over
    ``original_context`` positions (YaRN's inverse dimension formula)."""
    return head_dim * math.log(original_context / (turns * 2 * math.pi)) / (2 * math.log(base))


def by_parts_ramp(
    head_dim: int,
    base: float,
    original_context: int,
    alpha: float = 1.0,
    beta: float = 32.0,
    truncate: bool = True,
) -> torch.Tensor:
    """The share g of its own frequency each pair keeps under NTK-by-parts (1: extrapolate,
    0: interpolate by s), as YaRN's reference code computes it: linear in the pair index from
    the pair turning beta times (g = 1) to the one turning alpha times (g = 0)."""
    fast = _pair_turning(beta, head_dim, base, original_context)
    slow = _pair_turning(alpha, head_dim, base, original_context)
    if truncate:  # whole pairs, widening the band so no pair past an edge is touched
        fast, slow = math.floor(fast), math.ceil(slow)
    # HF clamps the edges to [0, d - 1] (d, not d/2); clamping changes the slope when the edge
    # falls before pair 0, so do the same.
    low, high = max(fast, 0.0), min(slow, head_dim - 1.0)
    pairs = torch.arange(head_dim // 2, dtype=torch.float64)
    if high <= low:
        # The whole head is on one side of the band (L < ~2pi alpha, or L > ~2pi beta b^2):
        # interpolate every pair, or keep every pair. HF's clamped ramp gets both wrong (keeps
        # pair 0 in the first case, interpolates all in the second); no real model is there.
        return torch.full_like(pairs, 0.0 if slow <= 0 else 1.0)
    return 1 - ((pairs - low) / (high - low)).clamp(0.0, 1.0)


def rope_ntk_by_parts(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    alpha: float = 1.0,
    beta: float = 32.0,
    truncate: bool = True,
) -> Frequencies:
    inv_freq = base_inv_freq(head_dim, base)
    keep = by_parts_ramp(head_dim, base, original_context, alpha, beta, truncate)
    return (1 - keep) * inv_freq / factor + keep * inv_freq, 1.0


def yarn_attention_factor(factor: float) -> float:
    """YaRN's ``sqrt(1/t) = 0.1 ln s + 1``, fitted on LLaMA; no change without extension."""
    return 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0


def rope_yarn(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    alpha: float = 1.0,
    beta: float = 32.0,
    attention_factor: float | None = None,
    truncate: bool = True,
) -> Frequencies:
    inv_freq, _ = rope_ntk_by_parts(head_dim, base, factor, original_context, alpha, beta, truncate)
    return inv_freq, attention_factor if attention_factor is not None else yarn_attention_factor(factor)


def rope_llama3(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
) -> Frequencies:
    """Llama 3.1's smoothing: ``original_context / wavelength`` is the number of turns r over
    the original context, and the blend is linear in r between the two factors."""
    inv_freq = base_inv_freq(head_dim, base)
    turns = original_context * inv_freq / (2 * math.pi)
    keep = ((turns - low_freq_factor) / (high_freq_factor - low_freq_factor)).clamp(0.0, 1.0)
    return (1 - keep) * inv_freq / factor + keep * inv_freq, 1.0


def longrope_attention_factor(factor: float, original_context: int) -> float:
    """``sqrt(1 + ln s / ln L)``: keeps attention entropy as the context grows s-fold (Phi-3)."""
    return math.sqrt(1 + math.log(factor) / math.log(original_context)) if factor > 1 else 1.0


def rope_longrope(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    rescale: list[float],
    attention_factor: float | None = None,
    seq_len: int | None = None,
    short_rescale: list[float] | None = None,
) -> Frequencies:
    """``rescale`` are the (long) per-pair factors; ``short_rescale``, when given, replaces them
    for sequences up to ``original_context`` (LongRoPE's short-context recovery). The attention
    factor applies at every length, as in Phi-3."""
    use_short = short_rescale is not None and (seq_len is None or seq_len <= original_context)
    factors = short_rescale if use_short else rescale
    if len(factors) != head_dim // 2:
        raise ValueError(f"longrope needs {head_dim // 2} rescale factors, got {len(factors)}")
    inv_freq = base_inv_freq(head_dim, base) / torch.tensor(factors, dtype=torch.float64)
    if attention_factor is None:
        attention_factor = longrope_attention_factor(factor, original_context)
    return inv_freq, attention_factor


def rope_frequencies(head_dim: int, model_base: float, spec: RopeSpec, seq_len: int) -> Frequencies:
    """``(inv_freq, attention_scale)`` for a phase with RoPE spec ``spec`` and ``seq_len``."""
    base = getattr(spec, "base", None) or model_base  # abf's new base, or a scaled kind's own
    if isinstance(spec, NoRope):
        inv_freq, scale = rope_none(head_dim, base)
    elif isinstance(spec, AbfRope):
        inv_freq, scale = rope_abf(head_dim, spec.base)
    elif isinstance(spec, PiRope):
        inv_freq, scale = rope_pi(head_dim, base, spec.factor)
    elif isinstance(spec, NtkRope):
        inv_freq, scale = rope_ntk(head_dim, base, spec.factor)
    elif isinstance(spec, DynamicNtkRope):
        inv_freq, scale = rope_dynamic_ntk(
            head_dim, base, seq_len, spec.original_context, spec.factor
        )
    elif isinstance(spec, YarnRope):
        inv_freq, scale = rope_yarn(
            head_dim, base, spec.factor, spec.original_context, spec.alpha, spec.beta,
            spec.attention_factor, spec.truncate,
        )
    elif isinstance(spec, NtkByPartsRope):
        inv_freq, scale = rope_ntk_by_parts(
            head_dim, base, spec.factor, spec.original_context, spec.alpha, spec.beta, spec.truncate
        )
    elif isinstance(spec, Llama3Rope):
        inv_freq, scale = rope_llama3(
            head_dim, base, spec.factor, spec.original_context, spec.low_freq_factor,
            spec.high_freq_factor,
        )
    elif isinstance(spec, LongRope):
        inv_freq, scale = rope_longrope(
            head_dim, base, spec.factor, spec.original_context, spec.rescale, spec.attention_factor,
            seq_len, spec.short_rescale,
        )
    else:
        raise ValueError(f"unknown rope kind {spec!r}")
    return inv_freq.to(torch.float32), float(scale)
