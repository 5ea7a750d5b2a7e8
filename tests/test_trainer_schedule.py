"""LR schedules: warmup, endpoints, shapes, monotonicity and purity, for every kind."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError

from trainer.schedule import lr_at
from trainer.spec import ScheduleSpec

PEAK = 1e-3
TOTAL = 10_000
SCHEDULES = TypeAdapter(ScheduleSpec)


def schedule(**fields) -> ScheduleSpec:
    return SCHEDULES.validate_python(fields)


def lr(spec: ScheduleSpec, tokens: float, total: int = TOTAL, **kwargs) -> float:
    return lr_at(tokens, total, spec, PEAK, **kwargs)


EVERY_KIND = {
    "constant": {},
    "linear": {"min_lr_ratio": 0.1},
    "cosine": {"min_lr_ratio": 0.1},
    "exponential": {"min_lr_ratio": 0.01},
    "inverse_sqrt": {},
    "knee": {"explore_fraction": 0.5},
    "cyclical": {"half_cycle_tokens": 2_000},
    "wsd": {"decay_fraction": 0.2, "min_lr_ratio": 0.05},
    "power": {"batch_size": 8, "a": 4.6, "b": -0.51},
    "multi_step": {},
    "infinite": {},
}
DECAYING = [kind for kind in EVERY_KIND if kind not in ("constant", "cyclical")]


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_every_kind_warms_up_linearly_to_its_post_warmup_value(kind):
    spec = schedule(kind=kind, warmup_tokens=1_000, **EVERY_KIND[kind])
    target = lr(spec, 1_000)
    assert target > 0
    ramp = [lr(spec, t) for t in range(0, 1_000, 100)]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(target / 1_000)
    assert lr(spec, 499) == pytest.approx(target * 0.5)
    assert lr(spec, 999) == pytest.approx(target)


@pytest.mark.parametrize("kind", DECAYING)
def test_decaying_kinds_never_rise_after_warmup(kind):
    spec = schedule(kind=kind, warmup_tokens=500, **EVERY_KIND[kind])
    values = [lr(spec, t) for t in range(500, TOTAL + 1, 50)]
    assert all(later <= earlier + 1e-15 for earlier, later in zip(values, values[1:]))
    assert values[-1] < values[0]


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_a_schedule_is_a_pure_function_of_tokens(kind):
    spec = schedule(kind=kind, warmup_tokens=300, **EVERY_KIND[kind])
    points = list(range(0, TOTAL, 137))
    forward = [lr(spec, t) for t in points]
    backward = [lr(spec, t) for t in reversed(points)]
    assert forward == backward[::-1] == [lr(spec, t) for t in points]


def test_constant():
    spec = schedule(kind="constant")
    assert {lr(spec, t) for t in (0, 1, 5_000, TOTAL)} == {PEAK}


def test_linear_and_cosine_endpoints():
    linear = schedule(kind="linear", min_lr_ratio=0.1)
    assert lr(linear, 0) == PEAK and lr(linear, TOTAL) == pytest.approx(0.1 * PEAK)
    assert lr(linear, TOTAL / 2) == pytest.approx(0.55 * PEAK)
    cosine = schedule(kind="cosine", min_lr_ratio=0.1, warmup_tokens=1_000)
    assert lr(cosine, 1_000) == pytest.approx(PEAK)
    assert lr(cosine, 5_500) == pytest.approx(0.55 * PEAK)  # halfway through the decay
    assert lr(cosine, TOTAL) == pytest.approx(0.1 * PEAK)
    assert lr(schedule(kind="cosine"), TOTAL) == pytest.approx(0.0, abs=1e-18)


def test_exponential_is_geometric():
    spec = schedule(kind="exponential", min_lr_ratio=0.01)
    assert lr(spec, TOTAL / 2) == pytest.approx(0.1 * PEAK)
    assert lr(spec, TOTAL) == pytest.approx(0.01 * PEAK)
    ratios = [lr(spec, t + 1_000) / lr(spec, t) for t in (0, 3_000, 6_000)]
    assert ratios == pytest.approx([ratios[0]] * 3)


def test_inverse_sqrt():
    spec = schedule(kind="inverse_sqrt", warmup_tokens=1_000)
    assert lr(spec, 1_000) == pytest.approx(PEAK)
    assert lr(spec, 4_000) == pytest.approx(PEAK / 2)
    assert lr(spec, 9_000) == pytest.approx(PEAK / 3)
    no_warmup = schedule(kind="inverse_sqrt", timescale_tokens=100)
    assert lr(no_warmup, 50) == PEAK and lr(no_warmup, 400) == pytest.approx(PEAK / 2)


def test_knee_explores_at_the_peak_then_decays_linearly():
    spec = schedule(kind="knee", explore_fraction=0.6)
    assert lr(spec, 0) == lr(spec, 6_000) == PEAK
    assert lr(spec, 8_000) == pytest.approx(PEAK / 2)
    assert lr(spec, TOTAL) == pytest.approx(0.0, abs=1e-18)


def test_cyclical_triangle_and_triangular2():
    spec = schedule(kind="cyclical", half_cycle_tokens=1_000, min_lr_ratio=0.2)
    assert lr(spec, 0) == PEAK
    assert lr(spec, 500) == pytest.approx(0.6 * PEAK)
    assert lr(spec, 1_000) == pytest.approx(0.2 * PEAK)
    assert lr(spec, 2_000) == pytest.approx(PEAK) and lr(spec, 4_000) == pytest.approx(PEAK)
    halving = schedule(kind="cyclical", half_cycle_tokens=1_000, min_lr_ratio=0.2, mode="triangular2")
    assert lr(halving, 2_000) == pytest.approx((0.2 + 0.8 / 2) * PEAK)
    assert lr(halving, 4_000) == pytest.approx((0.2 + 0.8 / 4) * PEAK)
    assert lr(halving, 3_000) == pytest.approx(0.2 * PEAK)


def test_wsd_is_flat_then_decays_to_the_floor_at_the_end():
    spec = schedule(kind="wsd", warmup_tokens=500, decay_fraction=0.2, min_lr_ratio=0.1)
    assert {lr(spec, t) for t in range(500, 8_001, 250)} == {PEAK}
    assert lr(spec, 9_000) == pytest.approx(0.55 * PEAK)
    assert lr(spec, TOTAL) == pytest.approx(0.1 * PEAK)
    for shape in ("linear", "cosine", "1-sqrt", "exponential"):
        shaped = schedule(kind="wsd", decay_fraction=0.5, decay_shape=shape, min_lr_ratio=0.01)
        assert lr(shaped, 5_000) == pytest.approx(PEAK)
        assert lr(shaped, TOTAL) == pytest.approx(0.01 * PEAK)
    one_minus_sqrt = schedule(kind="wsd", decay_fraction=1.0, decay_shape="1-sqrt")
    assert lr(one_minus_sqrt, TOTAL / 4) == pytest.approx(PEAK / 2)
    cosine = schedule(kind="wsd", decay_fraction=0.5, decay_shape="cosine")
    assert lr(cosine, 7_500) == pytest.approx(PEAK / 2)


def test_power_follows_the_power_law_under_its_cap_then_decays():
    spec = schedule(kind="power", batch_size=8, a=4.6, b=-0.51, decay_fraction=0.1, min_lr_ratio=0.01)
    peak = 0.02
    law = lambda n: 8 * 4.6 * n**-0.51  # noqa: E731 - the paper's eq. 3 written out
    assert lr_at(100, 10**8, spec, peak) == peak  # the law exceeds the cap early on
    for tokens in (10**7, 5 * 10**7, 8 * 10**7):
        assert law(tokens) < peak
        assert lr_at(tokens, 10**8, spec, peak) == pytest.approx(law(tokens))
    start = law(9 * 10**7)
    assert lr_at(95 * 10**6, 10**8, spec, peak) == pytest.approx(start * 0.1)  # geometric halfway
    assert lr_at(10**8, 10**8, spec, peak) == pytest.approx(start * 0.01)


def test_multi_step_drops_at_deepseek_fractions():
    spec = schedule(kind="multi_step")  # DeepSeek LLM: 31.6% of the peak at 80%, 10% at 90%
    values = [lr(spec, t) / PEAK for t in (0, 7_999, 8_000, 8_999, 9_000, TOTAL)]
    assert values == pytest.approx([1.0, 1.0, 0.316, 0.316, 0.1, 0.1])
    custom = schedule(kind="multi_step", milestones=[0.5], factors=[0.25])
    assert lr(custom, 4_999) == PEAK and lr(custom, 5_000) == pytest.approx(0.25 * PEAK)


def test_infinite_cools_down_holds_then_anneals():
    spec = schedule(kind="infinite", warmup_tokens=1_000, cooldown_fraction=0.2, constant_ratio=0.5,
                    anneal_fraction=0.1, anneal_shape="linear", min_lr_ratio=0.0)
    assert lr(spec, 1_000) == pytest.approx(PEAK)
    assert lr(spec, 2_000) == pytest.approx(0.75 * PEAK)  # halfway down the cosine cooldown
    assert {round(lr(spec, t) / PEAK, 12) for t in range(3_000, 9_001, 500)} == {0.5}
    assert lr(spec, 9_500) == pytest.approx(0.25 * PEAK)
    assert lr(spec, TOTAL) == pytest.approx(0.0, abs=1e-18)


def test_rewarm_ramps_again_from_the_phase_start():
    spec = schedule(kind="wsd", warmup_tokens=1_000, decay_fraction=0.5, min_lr_ratio=0.0)
    phase_start = 6_000
    plain = lr(spec, 6_499)
    assert lr(spec, 6_499, rewarm_from=phase_start) == pytest.approx(plain * 0.5)
    assert lr(spec, 6_000, rewarm_from=phase_start) == pytest.approx(lr(spec, 6_000) / 1_000)
    assert lr(spec, 7_000, rewarm_from=phase_start) == lr(spec, 7_000)
    assert lr(spec, 5_999, rewarm_from=phase_start) == lr(spec, 5_999)


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "wsd", "decay_shape": "exponential"}, "exponential decay never reaches 0"),
    ({"kind": "multi_step", "milestones": [0.9, 0.8], "factors": [0.3, 0.1]}, "strictly increasing"),
    ({"kind": "multi_step", "milestones": [0.8], "factors": [0.3, 0.1]}, "same length"),
    ({"kind": "inverse_sqrt"}, "timescale_tokens or warmup_tokens"),
    ({"kind": "cosine", "min_lr_ratio": 1.5}, "less than or equal to 1"),
    ({"kind": "constant", "min_lr_ratio": 0.1}, "Extra inputs are not permitted"),
    ({"kind": "power"}, "batch_size"),
    ({"kind": "warmup-stable"}, "does not match any of the expected tags"),
])
def test_bad_schedules_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        schedule(**fields)


def test_lr_at_refuses_nonsense_totals():
    with pytest.raises(ValueError, match="total_tokens"):
        lr_at(0, 0, schedule(kind="constant"), PEAK)
    assert math.isfinite(lr_at(TOTAL * 2, TOTAL, schedule(kind="cosine"), PEAK))  # past the end: the floor
