"""RoPE scaling methods for context extension, each a function of the head dimension, the
model's base and a phase's RopeSpec that returns ``(inv_freq, attention_scale)``.

``inv_freq[i]`` is the rotation speed of dimension pair i; ``attention_scale`` multiplies
cos and sin (so the attention logits by its square), which is how YaRN's temperature is
applied in its reference implementation and in HF transformers.

- none: ``base^(-2i/d)`` (Su et al. 2021).
- abf: the same with a larger base ("adjusted base frequency", Xiong et al. 2023).
- pi: position interpolation, every frequency divided by the factor s (Chen et al. 2023).
- ntk: NTK-aware scaling, base multiplied by ``s^(d/(d-2))`` (bloc97, 2023).
- yarn: NTK-by-parts interpolation plus temperature ``0.1 ln s + 1`` (Peng et al. 2023):
  dimensions that rotate more than ``beta_fast`` times over the original context keep their
  frequency, those under ``beta_slow`` are divided by s, a linear ramp in between.
"""

from __future__ import annotations

import math

import torch

from trainer.spec import RopeSpec


def base_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return base**-exponents


def _yarn(head_dim: int, base: float, spec: RopeSpec) -> tuple[torch.Tensor, float]:
    scale = float(spec.factor)
    inv_freq = base_inv_freq(head_dim, base)
    rotations = spec.original_context * inv_freq / (2 * math.pi)  # turns over the old context
    ramp = ((rotations - spec.beta_slow) / (spec.beta_fast - spec.beta_slow)).clamp(0.0, 1.0)
    # ramp = 1 keeps a fast dimension as it is; ramp = 0 interpolates a slow one by s.
    scaled = inv_freq / scale * (1 - ramp) + inv_freq * ramp
    return scaled, 0.1 * math.log(scale) + 1.0


def rope_frequencies(head_dim: int, base: float, spec: RopeSpec) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (float32, ``head_dim // 2``) and attention scale for a phase."""
    if spec.kind == "none":
        inv_freq, attention_scale = base_inv_freq(head_dim, base), 1.0
    elif spec.kind == "abf":
        inv_freq, attention_scale = base_inv_freq(head_dim, float(spec.base)), 1.0
    elif spec.kind == "pi":
        inv_freq, attention_scale = base_inv_freq(head_dim, base) / float(spec.factor), 1.0
    elif spec.kind == "ntk":
        scaled_base = base * float(spec.factor) ** (head_dim / (head_dim - 2))
        inv_freq, attention_scale = base_inv_freq(head_dim, scaled_base), 1.0
    elif spec.kind == "yarn":
        inv_freq, attention_scale = _yarn(head_dim, base, spec)
    else:  # the spec's Literal makes this unreachable; keep the error explicit
        raise ValueError(f"unknown rope kind {spec.kind!r}")
    return inv_freq.to(torch.float32), attention_scale
