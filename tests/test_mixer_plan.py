"""Mixture plans: exact token targets, exact availability, impossible mixtures refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mixer_fixtures import corpus_dir, mixture, sample_rows, tokenizer_path  # noqa: F401

from mixer.plan import PlanError, effective_weights, format_plan_table, largest_remainder, plan_mixture, write_plan
from mixer.spec import Weighting
from pydantic import ValidationError
from mixer.tokenizer import load_tokenizer


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1, 1], [4, 3, 3]),  # remainders tie: the earliest source gets the extra token
        (100, [0.6, 0.3, 0.1], [60, 30, 10]),
        (7, [0.5, 0.25, 0.25], [3, 2, 2]),  # 3.5, 1.75, 1.75: the larger remainders win
        (1001, [0.55, 0.25, 0.1, 0.1], [551, 250, 100, 100]),
        (5, [0.0, 2.0, 1.0], [0, 3, 2]),
        (3, [1e-9, 1.0, 1.0], [0, 2, 1]),
    ],
)
def test_largest_remainder(total: int, weights: list[float], expected: list[int]) -> None:
    assert largest_remainder(total, weights) == expected


@pytest.mark.parametrize("total", [1, 999, 123_457])
def test_largest_remainder_sums_exactly(total: int) -> None:
    weights = [0.1, 0.2, 0.3, 0.15, 0.25]
    counts = largest_remainder(total, weights)
    assert sum(counts) == total
    assert all(abs(count - total * weight) < 1 for count, weight in zip(counts, weights))


def two_phases() -> list[dict]:
    return [
        {
            "name": "general",
            "tokens": 5_003,
            "seq_len": 64,
            "sources": [
                {"name": "web", "select": {"domain": "web"}, "weight": 0.55},
                {"name": "code", "select": {"domain": "code"}, "weight": 0.3, "fim": {"rate": 0.5}},
                {"name": "math", "select": {"domain": "math"}, "weight": 0.15},
            ],
        },
        {
            "name": "long",
            "tokens": 2_000,
            "seq_len": 128,
            "sources": [
                {"name": "long", "select": {"tags_any": ["long_doc"]}, "weight": 1},
                {"name": "replay", "select": {"domain": ["web", "code"]}, "weight": 1},
                {"name": "off", "select": {"domain": "reasoning"}, "weight": 0},
            ],
        },
    ]


def test_plan_is_exact(corpus_dir: Path, tokenizer_path: Path) -> None:
    plan = plan_mixture(mixture(corpus_dir, tokenizer_path, two_phases()))
    tokenizer = load_tokenizer(tokenizer_path)
    rows = sample_rows()

    def available(predicate) -> int:
        texts = [row["text"] for row in rows if predicate(row)]
        return sum(len(tokenizer.encode(text).ids) + 1 for text in texts)  # + end of document

    general, long = plan.phases
    assert [source.tokens_target for source in general.sources] == [2752, 1501, 750]
    assert sum(source.tokens_target for source in general.sources) == 5_003
    assert (general.sequences, general.tokens_dropped) == (78, 11)
    web = general.sources[0]
    assert web.documents == 31 and web.domain == "web"
    assert web.tokens_available == available(lambda row: row["domain"] == "web")
    assert web.epochs == pytest.approx(2752 / web.tokens_available)
    assert general.sources[1].fim_rate == 0.5
    assert [source.tokens_target for source in long.sources] == [1000, 1000, 0]
    assert long.sources[1].domain == "code+web"
    assert long.sources[2].documents == 0  # weight 0: an empty selection is no problem


def test_max_epochs_too_small_names_phase_source_share_and_repetition(
    corpus_dir: Path, tokenizer_path: Path
) -> None:
    phases = two_phases()
    phases[0]["sources"][2]["max_epochs"] = 1.1
    spec = mixture(corpus_dir, tokenizer_path, phases)
    with pytest.raises(PlanError) as raised:
        plan_mixture(spec)
    message = str(raised.value)
    assert "phase 'general', source 'math': needs" in message
    assert "max_epochs is 1.1; best achievable share" in message
    assert "of target 0.1500" in message
    assert len(raised.value.problems) == 1

    phases[0]["sources"][2]["max_epochs"] = 100
    plan = plan_mixture(mixture(corpus_dir, tokenizer_path, phases))
    assert plan.phases[0].sources[2].epochs > 1.1


def test_selector_that_matches_nothing(corpus_dir: Path, tokenizer_path: Path) -> None:
    phases = two_phases()
    phases[1]["sources"][1]["select"] = {"domain": "reasoning"}
    phases[0]["sources"][0]["select"] = {"source": "nobody"}
    with pytest.raises(PlanError) as raised:
        plan_mixture(mixture(corpus_dir, tokenizer_path, phases))
    assert raised.value.problems[0].startswith(
        "phase 'general', source 'web': the selector matches no documents; best achievable share 0"
    )
    assert raised.value.problems[1].startswith("phase 'long', source 'replay': the selector")


def test_budget_smaller_than_a_sequence(corpus_dir: Path, tokenizer_path: Path) -> None:
    phases = two_phases()[:1]
    phases[0]["tokens"] = 63
    with pytest.raises(PlanError, match="do not fill one 64-token sequence"):
        plan_mixture(mixture(corpus_dir, tokenizer_path, phases))


def test_plan_table_and_json(corpus_dir: Path, tokenizer_path: Path, tmp_path: Path) -> None:
    plan = plan_mixture(mixture(corpus_dir, tokenizer_path, two_phases()))
    table = format_plan_table(plan)
    assert "general" in table and "replay" in table and "78 x 64 + 11 dropped" in table
    data = json.loads(write_plan(plan, tmp_path / "plan.json").read_text())
    assert data["phases"][0]["sources"][0]["tokens_target"] == 2752
    assert data["mixture"] == "test-mix"


# --- weighting from source sizes -----------------------------------------------------------


def test_temperature_weighting_flattens_sizes() -> None:
    sizes, weights = [100, 400, 1600], [1.0, 1.0, 1.0]
    proportional = effective_weights(Weighting(scheme="temperature", temperature=1), 1000, weights, sizes, [None] * 3)
    assert [float(w / sum(proportional)) for w in proportional] == pytest.approx([1 / 21, 4 / 21, 16 / 21])
    square_root = effective_weights(Weighting(scheme="temperature", temperature=2), 1000, weights, sizes, [None] * 3)
    assert [float(w / sum(square_root)) for w in square_root] == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    # A weight still scales its source, and 0 still leaves it out.
    weighted = effective_weights(Weighting(scheme="temperature", temperature=2), 1000, [2.0, 1.0, 0.0], sizes, [None] * 3)
    assert [float(w / sum(weighted)) for w in weighted] == pytest.approx([0.5, 0.5, 0.0])


def test_unimax_spreads_the_budget_evenly_within_the_epoch_caps() -> None:
    # Smallest first: 10 tokens can give 2 epochs (20), 100 can give 200, the largest takes the rest.
    shares = effective_weights(Weighting(scheme="unimax", max_epochs=2), 600, [1, 1, 1], [1000, 10, 100], [None] * 3)
    assert shares == [380, 20, 200] and sum(shares) == 600
    # Uncapped, UniMax is uniform; a source's own max_epochs overrides the phase's.
    assert effective_weights(Weighting(scheme="unimax"), 600, [1, 1, 1], [1000, 10, 100], [None] * 3) == [200, 200, 200]
    assert effective_weights(Weighting(scheme="unimax", max_epochs=2), 600, [1, 1, 1], [1000, 10, 100],
                             [None, 5, None]) == [350, 50, 200]
    # Weights tilt the spread.
    assert effective_weights(Weighting(scheme="unimax"), 600, [2, 1, 0], [1000, 1000, 1000], [None] * 3) == [400, 200, 0]


def test_weighting_options_belong_to_their_scheme() -> None:
    with pytest.raises(ValidationError, match="temperature applies to scheme temperature"):
        Weighting(scheme="unimax", temperature=2)
    with pytest.raises(ValidationError, match="max_epochs applies to scheme unimax"):
        Weighting(scheme="weights", max_epochs=3)


def test_unimax_plan_meets_the_caps_and_sums_to_the_budget(corpus_dir: Path, tokenizer_path: Path) -> None:
    phases = two_phases()[:1]
    phases[0]["weighting"] = {"scheme": "unimax", "max_epochs": 1}
    phases[0]["tokens"] = 4_000
    plan = plan_mixture(mixture(corpus_dir, tokenizer_path, phases))
    general = plan.phases[0]
    assert sum(source.tokens_target for source in general.sources) == 4_000
    assert all(source.epochs <= 1 + 1e-9 for source in general.sources[:-1] if source.tokens_available < 1333)
    by_size = sorted(general.sources, key=lambda source: source.tokens_available)
    smallest = by_size[0]
    assert smallest.tokens_target == min(smallest.tokens_available, round(4_000 / 3))
    assert sum(source.target_share for source in general.sources) == pytest.approx(1.0)
    # Too small a cap for the budget: the planner says which source would need more passes.
    phases[0]["tokens"] = 50_000
    with pytest.raises(PlanError, match="max_epochs is 1"):
        plan_mixture(mixture(corpus_dir, tokenizer_path, phases))


def test_replay_draws_a_share_from_an_earlier_phases_mix(corpus_dir: Path, tokenizer_path: Path) -> None:
    phases = two_phases()
    phases[1]["replay"] = {"phase": "general", "share": 0.25}
    plan = plan_mixture(mixture(corpus_dir, tokenizer_path, phases))
    general, long = plan.phases
    names = [source.name for source in long.sources]
    assert names == ["long", "replay", "off", "general.web", "general.code", "general.math"]
    replayed = {source.name: source for source in long.sources[3:]}
    assert sum(source.tokens_target for source in long.sources) == 2_000
    assert sum(source.tokens_target for source in replayed.values()) == 500  # 25% of the budget
    for source in general.sources:  # in the earlier phase's proportions
        assert replayed[f"general.{source.name}"].target_share == pytest.approx(0.25 * source.tokens_target / general.tokens)
    assert long.sources[0].target_share == pytest.approx(0.375)  # the rest by the phase's own weights


def test_replay_must_name_an_earlier_phase(corpus_dir: Path, tokenizer_path: Path) -> None:
    phases = two_phases()
    phases[0]["replay"] = {"phase": "long", "share": 0.1}
    with pytest.raises(ValidationError, match="replay.phase 'long' is not an earlier phase"):
        mixture(corpus_dir, tokenizer_path, phases)
    phases = two_phases()
    phases[1]["replay"] = {"phase": "general", "share": 1.0}
    with pytest.raises(ValidationError, match="less than 1"):
        mixture(corpus_dir, tokenizer_path, phases)
