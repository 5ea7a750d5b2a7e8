"""Learning-rate schedules as pure functions of the tokens seen across all phases.

``lr_at(tokens_seen, total_tokens, spec, peak_lr)`` is the LR for the step that starts after
``tokens_seen`` tokens of a run of ``total_tokens``. Being a function of tokens (not of steps or
of optimizer state) keeps it the same whatever the batch size of each phase, and lets a resumed
run recompute it from the checkpoint's token count alone.

Every kind starts with the same linear warmup: over the first ``warmup_tokens`` the LR rises to
the value the schedule has at the end of the warmup, from ``1/warmup_tokens`` of it (so the
first step is never a wasted zero-LR step). Fractions in the specs (``decay_fraction``,
``milestones``, ...) are fractions of ``total_tokens``; a decay never starts before the warmup
ends. A phase with ``rewarm`` multiplies the schedule by a second ramp of the same length from
the phase's first token (``rewarm_from``), as in continual pre-training (Gupta et al. 2023).
"""

from __future__ import annotations

import math

from trainer.spec import (
    ConstantSchedule,
    CosineSchedule,
    CyclicalSchedule,
    ExponentialSchedule,
    InfiniteSchedule,
    InverseSqrtSchedule,
    KneeSchedule,
    LinearSchedule,
    MultiStepSchedule,
    PowerSchedule,
    ScheduleSpec,
    WsdSchedule,
)


def decay(shape: str, fraction: float, floor: float) -> float:
    """A multiplier going from 1 at ``fraction`` 0 to ``floor`` at ``fraction`` 1."""
    if shape == "exponential":  # geometric: the same factor for every token
        if floor <= 0:
            raise ValueError("an exponential decay needs a floor above 0")
        return floor**fraction
    if shape == "linear":
        remaining = 1.0 - fraction
    elif shape == "cosine":
        remaining = 0.5 * (1.0 + math.cos(math.pi * fraction))
    elif shape == "1-sqrt":  # Hägele et al. 2024: a fast start, then a long gentle tail
        remaining = 1.0 - math.sqrt(fraction)
    else:
        raise ValueError(f"unknown decay shape {shape!r}")
    return floor + (1.0 - floor) * remaining


def through(tokens: float, start: float, end: float) -> float:
    """How far ``tokens`` is from ``start`` to ``end``, clamped to [0, 1]."""
    if end <= start:
        return 1.0 if tokens >= end else 0.0
    return min(1.0, max(0.0, (tokens - start) / (end - start)))


def ramp(tokens_since: float, length: int) -> float:
    """The warmup multiplier ``tokens_since`` tokens into a warmup of ``length``."""
    if length <= 0 or tokens_since >= length:
        return 1.0
    return (tokens_since + 1) / length


def _after_warmup(t: float, total: int, spec: ScheduleSpec, peak: float) -> float:
    """The schedule's LR at ``t`` with the warmup left out (``t`` is at least the warmup)."""
    warm = spec.warmup_tokens
    if isinstance(spec, ConstantSchedule):
        return peak
    if isinstance(spec, LinearSchedule):
        return peak * decay("linear", through(t, warm, total), spec.min_lr_ratio)
    if isinstance(spec, CosineSchedule):
        return peak * decay("cosine", through(t, warm, total), spec.min_lr_ratio)
    if isinstance(spec, ExponentialSchedule):
        return peak * decay("exponential", through(t, warm, total), spec.min_lr_ratio)
    if isinstance(spec, InverseSqrtSchedule):
        timescale = spec.timescale_tokens or warm
        return peak * max(spec.min_lr_ratio, min(1.0, math.sqrt(timescale / max(t, 1.0))))
    if isinstance(spec, KneeSchedule):
        knee = max(warm, spec.explore_fraction * total)
        return peak * decay("linear", through(t, knee, total), spec.min_lr_ratio)
    if isinstance(spec, CyclicalSchedule):
        return peak * _triangle(t - warm, spec)
    if isinstance(spec, WsdSchedule):
        start = max(warm, (1.0 - spec.decay_fraction) * total)
        return peak * decay(spec.decay_shape, through(t, start, total), spec.min_lr_ratio)
    if isinstance(spec, PowerSchedule):
        start = max(warm, (1.0 - spec.decay_fraction) * total)
        power = _power_lr(min(t, start), spec, peak)
        if t < start:
            return power
        return power * decay(spec.decay_shape, through(t, start, total), spec.min_lr_ratio)
    if isinstance(spec, MultiStepSchedule):
        passed = [factor for at, factor in zip(spec.milestones, spec.factors) if t >= at * total]
        return peak * (passed[-1] if passed else 1.0)
    if isinstance(spec, InfiniteSchedule):
        return peak * _infinite(t, total, spec)
    raise ValueError(f"unknown schedule {spec!r}")


def _triangle(t: float, spec: CyclicalSchedule) -> float:
    """Down from the peak to the floor over a half cycle and back up; triangular2 halves the
    swing every full cycle."""
    half_cycles = max(0.0, t) / spec.half_cycle_tokens
    cycle = math.floor(half_cycles / 2)
    height = abs(half_cycles - 2 * cycle - 1.0)  # 1 at a cycle's start and end, 0 in its middle
    swing = 0.5**cycle if spec.mode == "triangular2" else 1.0
    return spec.min_lr_ratio + (1.0 - spec.min_lr_ratio) * swing * height


def _power_lr(tokens: float, spec: PowerSchedule, peak: float) -> float:
    """Shen et al. 2024's power law, capped at the peak: ``min(peak, batch_size * a * tokens^b)``."""
    if tokens <= 0:
        return peak
    return min(peak, spec.batch_size * spec.a * tokens**spec.b)


def _infinite(t: float, total: int, spec: InfiniteSchedule) -> float:
    warm = spec.warmup_tokens
    cooled = min(float(total), warm + spec.cooldown_fraction * total)
    anneal = max(cooled, (1.0 - spec.anneal_fraction) * total)
    if t < cooled:
        cosine = 0.5 * (1.0 + math.cos(math.pi * through(t, warm, cooled)))
        return spec.constant_ratio + (1.0 - spec.constant_ratio) * cosine
    floor = spec.min_lr_ratio / spec.constant_ratio
    return spec.constant_ratio * decay(spec.anneal_shape, through(t, anneal, total), floor)


def lr_at(
    tokens_seen: int,
    total_tokens: int,
    spec: ScheduleSpec,
    peak_lr: float,
    rewarm_from: int | None = None,
) -> float:
    """The LR after ``tokens_seen`` of ``total_tokens`` tokens; ``peak_lr`` is the optimizer's
    LR. ``rewarm_from``: the first token of a phase that warms up again."""
    if total_tokens <= 0:
        raise ValueError("total_tokens must be positive")
    if tokens_seen < 0:
        raise ValueError("tokens_seen must not be negative")
    warm = spec.warmup_tokens
    lr = ramp(tokens_seen, warm) * _after_warmup(max(tokens_seen, warm), total_tokens, spec, peak_lr)
    if rewarm_from is not None and tokens_seen >= rewarm_from:
        lr *= ramp(tokens_seen - rewarm_from, warm)
    return lr
