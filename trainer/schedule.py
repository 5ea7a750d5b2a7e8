"""Learning-rate schedules as pure functions of tokens seen across all phases.

``lr_multiplier(tokens_seen, total_tokens, spec)`` is in [0, 1]; the optimizer's LR is the
peak LR times it. Every kind starts with a linear warmup over ``warmup_tokens``; after warmup,
``progress`` runs from 0 to 1 over the remaining tokens and each kind shapes the multiplier
from 1 down to ``min_lr_ratio``.
"""

from __future__ import annotations

import math

from trainer.spec import (
    ConstantSchedule,
    CosineSchedule,
    InverseSqrtSchedule,
    LinearSchedule,
    MultiStepSchedule,
    ScheduleSpec,
    WsdSchedule,
)


def _decay(shape: str, fraction: float, floor: float) -> float:
    """From 1 at fraction 0 to ``floor`` at fraction 1."""
    if shape == "linear":
        value = 1.0 - fraction
    elif shape == "cosine":
        value = 0.5 * (1.0 + math.cos(math.pi * fraction))
    elif shape == "1-sqrt":  # Hägele et al. 2024
        value = 1.0 - math.sqrt(fraction)
    elif shape == "exponential":  # geometric; a floor of 0 cannot be reached, so 1e-3 stands in
        return max(floor, 1e-3) ** fraction
    else:
        raise ValueError(f"unknown decay shape {shape!r}")
    return floor + (1.0 - floor) * value


def lr_multiplier(tokens_seen: int, total_tokens: int, spec: ScheduleSpec) -> float:
    if total_tokens <= 0:
        raise ValueError("total_tokens must be positive")
    if spec.warmup_tokens and tokens_seen < spec.warmup_tokens:
        return (tokens_seen + 1) / spec.warmup_tokens
    span = max(1, total_tokens - spec.warmup_tokens)
    progress = min(1.0, max(0.0, (tokens_seen - spec.warmup_tokens) / span))
    floor = spec.min_lr_ratio
    if isinstance(spec, ConstantSchedule):
        return 1.0
    if isinstance(spec, LinearSchedule):
        return _decay("linear", progress, floor)
    if isinstance(spec, CosineSchedule):
        return _decay("cosine", progress, floor)
    if isinstance(spec, InverseSqrtSchedule):
        # 1/sqrt(t) normalised to 1 at the end of warmup, in units of the warmup length.
        unit = max(1, spec.warmup_tokens)
        return max(floor, math.sqrt(unit / max(unit, tokens_seen)))
    if isinstance(spec, WsdSchedule):
        stable = 1.0 - spec.decay_fraction
        if progress <= stable:
            return 1.0
        return _decay(spec.decay_shape, (progress - stable) / spec.decay_fraction, floor)
    if isinstance(spec, MultiStepSchedule):
        multiplier = 1.0
        for milestone, factor in zip(spec.milestones, spec.factors):
            if progress >= milestone:
                multiplier = factor
        return multiplier
    raise ValueError(f"unknown schedule {spec!r}")
