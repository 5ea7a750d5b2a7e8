"""RoPE frequencies for context extension: one function per method, each returning
``(inv_freq, attention_scale)``.

``inv_freq[i]`` (``head_dim // 2`` values, float32) is the rotation speed of dimension pair i:
RoPE turns that pair by ``position * inv_freq[i]`` radians (Su et al. 2021), and the model pairs
dimension i with i + head_dim/2. ``attention_scale`` is how a method changes the softmax
temperature: the model multiplies cos and sin by it, so queries and keys are both scaled by it
and the attention logits by its square. That is exactly YaRN's rule (Peng et al. 2023: both
RoPE embeddings are scaled by ``sqrt(1/t) = 0.1 ln s + 1``, so the logits are divided by ``t``),
and the same place HF transformers applies its ``attention_factor`` (it multiplies cos and sin).

Methods (``s`` is the extension factor, ``b`` the base, ``d`` the head dimension, ``L`` the
original context):

- none: ``b^(-2i/d)``.
- abf: the same with a larger base ("adjusted base frequency", Xiong et al. 2023).
- pi: position interpolation, every frequency divided by s (Chen et al. 2023).
- ntk: NTK-aware, the base becomes ``b * s^(d/(d-2))`` (bloc97, 2023): the fastest pair is
  unchanged and the slowest is divided by exactly s.
- dynamic_ntk: ntk with ``s = max(1, seq_len / L)`` for the phase's sequence length (the
  "dynamic scaling" of Peng et al. 2023; HF's "dynamic" uses emozilla's
  ``factor * seq_len / L - (factor - 1)`` instead).
- ntk_by_parts: a pair that turns ``r = L * inv_freq / 2pi`` times over the original context
  keeps its frequency when ``r > beta``, is divided by s when ``r < alpha``, and in between
  takes ``(1 - g) * f / s + g * f`` with ``g = (r - alpha) / (beta - alpha)`` (Peng et al.
  2023; alpha = 1 and beta = 32 for Llama). HF computes the same ramp over whole
  dimension indices (floor/ceil of the band edges); this follows the paper's continuous form.
- yarn: ntk_by_parts plus the temperature above.
- llama3: Llama 3.1's band rule: wavelengths under ``L / high_freq_factor`` keep their
  frequency, over ``L / low_freq_factor`` are divided by s, smooth in between.
- longrope: per-pair rescale factors found by search (Ding et al. 2024), ``inv_freq / rescale``,
  with attention scale ``sqrt(1 + ln s / ln L)`` (Phi-3).

Each method may take a ``base`` of its own, so a base change and a scaling combine.
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
    return base_inv_freq(head_dim, base * factor ** (head_dim / (head_dim - 2))), 1.0


def rope_dynamic_ntk(head_dim: int, base: float, seq_len: int, original_context: int) -> Frequencies:
    return rope_ntk(head_dim, base, max(1.0, seq_len / original_context))


def rope_ntk_by_parts(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    alpha: float = 1.0,
    beta: float = 32.0,
) -> Frequencies:
    inv_freq = base_inv_freq(head_dim, base)
    turns = original_context * inv_freq / (2 * math.pi)
    keep = ((turns - alpha) / (beta - alpha)).clamp(0.0, 1.0)  # 1: keep, 0: interpolate by s
    return (1 - keep) * inv_freq / factor + keep * inv_freq, 1.0


def rope_yarn(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    alpha: float = 1.0,
    beta: float = 32.0,
    attention_factor: float | None = None,
) -> Frequencies:
    inv_freq, _ = rope_ntk_by_parts(head_dim, base, factor, original_context, alpha, beta)
    return inv_freq, attention_factor if attention_factor is not None else 0.1 * math.log(factor) + 1.0


def rope_llama3(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
) -> Frequencies:
    """Llama 3's smoothing is NTK-by-parts with its band edges named differently: its
    ``original_context / wavelength`` is the number of turns over the original context."""
    return rope_ntk_by_parts(
        head_dim, base, factor, original_context, alpha=low_freq_factor, beta=high_freq_factor
    )


def rope_longrope(
    head_dim: int,
    base: float,
    factor: float,
    original_context: int,
    rescale: list[float],
    attention_factor: float | None = None,
) -> Frequencies:
    if len(rescale) != head_dim // 2:
        raise ValueError(f"longrope needs {head_dim // 2} rescale factors, got {len(rescale)}")
    inv_freq = base_inv_freq(head_dim, base) / torch.tensor(rescale, dtype=torch.float64)
    if attention_factor is None:
        attention_factor = 1.0
        if factor > 1:
            attention_factor = math.sqrt(1 + math.log(factor) / math.log(original_context))
    return inv_freq, attention_factor


def rope_frequencies(head_dim: int, model_base: float, spec: RopeSpec, seq_len: int) -> Frequencies:
    """``(inv_freq, attention_scale)`` for a phase with RoPE spec ``spec`` and ``seq_len``."""
    base = getattr(spec, "base", None) or model_base
    if isinstance(spec, NoRope):
        inv_freq, scale = rope_none(head_dim, base)
    elif isinstance(spec, AbfRope):
        inv_freq, scale = rope_abf(head_dim, spec.base)
    elif isinstance(spec, PiRope):
        inv_freq, scale = rope_pi(head_dim, base, spec.factor)
    elif isinstance(spec, NtkRope):
        inv_freq, scale = rope_ntk(head_dim, base, spec.factor)
    elif isinstance(spec, DynamicNtkRope):
        inv_freq, scale = rope_dynamic_ntk(head_dim, base, seq_len, spec.original_context)
    elif isinstance(spec, YarnRope):
        inv_freq, scale = rope_yarn(
            head_dim, base, spec.factor, spec.original_context, spec.alpha, spec.beta,
            spec.attention_factor,
        )
    elif isinstance(spec, NtkByPartsRope):
        inv_freq, scale = rope_ntk_by_parts(
            head_dim, base, spec.factor, spec.original_context, spec.alpha, spec.beta
        )
    elif isinstance(spec, Llama3Rope):
        inv_freq, scale = rope_llama3(
            head_dim, base, spec.factor, spec.original_context, spec.low_freq_factor,
            spec.high_freq_factor,
        )
    elif isinstance(spec, LongRope):
        inv_freq, scale = rope_longrope(
            head_dim, base, spec.factor, spec.original_context, spec.rescale, spec.attention_factor
        )
    else:
        raise ValueError(f"unknown rope kind {spec!r}")
    return inv_freq.to(torch.float32), float(scale)
