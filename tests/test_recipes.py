"""The survey's recipes as presets (recipes/*.yaml, api/recipes.py) and `midtrain recipe`."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from mixer_fixtures import code, document, prose, write_corpus

from api import recipes
from api.cli import main
from api.recipes import RecipeError, Settings, load_recipe, proportions, recipe_names, resolve

PRESETS = ["afm", "deepseek_v3", "llama3", "mimo", "minicpm", "olmo2", "qwen3", "smollm2"]
# SmolLM2 at a toy size: its 2k context becomes 32 tokens (8k: 128), 6T tokens become 20k.
RUN = ["--scale", "3.3e-9", "--seq-len", "32", "--batch-size", "4", "--eval-every", "1000",
       "--vocab-size", "400", "--no-ray"]


def rows(seed: int = 3, domains: tuple[str, ...] = ("web", "code", "math", "instruction", "reasoning", "synthetic")):
    """A few dozen documents of every domain in ``domains``, some web documents long_doc."""
    rng = random.Random(seed)
    out = []
    for i in range(40):
        if "web" in domains:
            long_doc = i % 4 == 0
            out.append(document(f"web-{i:03d}", prose(rng, 220 if long_doc else 50), "web",
                                quality=round(i / 39, 3), tags=["long_doc"] if long_doc else []))
        if "code" in domains:
            out.append(document(f"code-{i:03d}", code(rng), "code", tags=["fim_eligible"]))
        if "math" in domains:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            out.append(document(f"math-{i:03d}", f"Problem {i}: {a} + {b} = {a + b}. The answer is {a + b}.", "math"))
        for domain in ("instruction", "reasoning", "synthetic"):
            if domain in domains:
                out.append(document(f"{domain}-{i:03d}", f"{domain.capitalize()} {i}. " + prose(rng, 40), domain))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("recipe-corpus"), rows())


@pytest.fixture(scope="module")
def no_synthetic(tmp_path_factory) -> Path:
    kept = ("web", "code", "math", "instruction", "reasoning")
    return write_corpus(tmp_path_factory.mktemp("recipe-corpus-no-synthetic"), rows(domains=kept))


def test_there_are_the_eight_presets():
    assert set(PRESETS) <= set(recipe_names())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_validates_and_cites_its_source(name):
    recipe = load_recipe(name)  # validates the full-scale mixture and train specs too
    assert len(recipe.phases) >= 2
    assert "Table" in recipe.source and "arXiv" in recipe.source
    for phase in recipe.phases:
        assert sum(proportions(phase).values()) == pytest.approx(1.0, abs=1e-9), phase["name"]
    resolved = resolve(recipe, Settings())  # the default small scale validates as well
    assert [phase.name for phase in resolved.train.phases] == recipe.phase_names()


def test_scaling_keeps_the_context_ratios_and_every_budget_ratio():
    recipe = load_recipe("smollm2")
    resolved = resolve(recipe, Settings(scale=1e-7, seq_len=64, min_steps=1, eval_every=None))
    lengths = {phase.name: phase.seq_len for phase in resolved.mixture.phases}
    assert lengths["stable-1"] == 64 and lengths["long-context"] == 256  # 2k -> 8k stays 1:4
    tokens = {phase.name: phase.tokens for phase in resolved.mixture.phases}
    assert tokens["stable-1"] == 600_000 and tokens["decay"] == 100_000
    assert resolved.train.phases[-1].rope.kind == "abf" and resolved.train.phases[-1].rope.base == 130_000
    # tokens per step stay the same at the longer context
    batches = {phase.name: phase.batch_size * phase.seq_len for phase in resolved.train.phases}
    assert batches["long-context"] == batches["stable-1"]
    # the WSD decay starts where the decay phase does
    trained = [phase.tokens for phase in resolved.train.phases]
    assert resolved.train.schedule.decay_fraction == pytest.approx(sum(trained[3:]) / sum(trained))
    # YaRN's original context scales with the lengths
    deepseek = resolve(load_recipe("deepseek_v3"), Settings(seq_len=128))
    assert deepseek.train.phases[1].rope.original_context == 128 and deepseek.train.phases[1].seq_len == 1024


def test_a_too_small_phase_is_floored_and_said_so():
    resolved = resolve(load_recipe("minicpm"), Settings(scale=1e-10, seq_len=32, batch_size=4))
    assert set(resolved.floored) == {"stable", "decay"}
    assert all(phase.tokens >= 2 * phase.batch_size * phase.seq_len for phase in resolved.train.phases)


def test_a_bad_recipe_file_is_refused_naming_the_phase(tmp_path):
    data = json.loads(json.dumps(load_recipe("olmo2").model_dump(exclude={"path"})))
    data["phases"][1]["sources"][0]["weight"] = 0.5
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="phase 'mid-training': proportions .* sum to 0.9"):
        load_recipe(path)


def test_list_and_show(capsys):
    assert main(["recipe", "list"]) == 0
    listed = capsys.readouterr().out
    for name in PRESETS:
        assert name in listed
    assert "stable-1 (2k) → stable-2 (2k) → stable-3 (2k) → decay (2k) → long-context (8k)" in listed
    assert main(["recipe", "show", "smollm2"]) == 0
    shown = capsys.readouterr().out
    assert "decay: 1T tokens, seq_len 2048, rope none; web 0.58, code 0.24, math 0.14, synthetic 0.04" in shown
    assert "long-context: 75B tokens, seq_len 8192, rope abf (base 130000); long 0.4, replay:decay 0.6" in shown
    assert "Table II" in shown and "approximations:" in shown
    assert main(["recipe", "show", "no-such-recipe"]) == 2
    assert "no recipe 'no-such-recipe'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smollm2_run(corpus, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    assert main(["recipe", "run", "smollm2", "--corpus", str(corpus), "--output", str(runs), *RUN]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_run_leaves_the_run_layout_with_finite_losses(smollm2_run, corpus):
    assert smollm2_run.name.startswith("smollm2-") and len(smollm2_run.name) == len("smollm2-") + 8
    record = json.loads((smollm2_run / "recipe.json").read_text())
    assert {"recipe", "scale", "corpus", "mixture", "train", "created_at"} <= set(record)
    assert record["recipe"] == "smollm2" and record["scale"] == 3.3e-9 and record["corpus"] == str(corpus)
    assert [phase["name"] for phase in record["mixture"]["phases"]] == load_recipe("smollm2").phase_names()
    assert record["train"]["mixture"] == str(smollm2_run / "mixture")
    assert record["floored"] and record["status"] == "succeeded"
    assert (smollm2_run / "mixture" / "report.json").is_file()
    train = smollm2_run / "train"
    losses = [line["loss"] for line in map(json.loads, (train / "metrics.jsonl").read_text().splitlines())
              if "loss" in line]
    assert losses and all(math.isfinite(loss) for loss in losses)
    summary = json.loads((train / "summary.json").read_text())
    assert [phase["name"] for phase in summary["phases"]][-1] == "long-context"
    assert [phase["seq_len"] for phase in summary["phases"]] == [32, 32, 32, 32, 128]
    assert "RoPE frequencies" in (smollm2_run / "report.html").read_text()  # the run's report, written at its end


def test_a_missing_domain_is_an_error_naming_phase_source_and_domain(no_synthetic, tmp_path, capsys):
    status = main(["recipe", "run", "smollm2", "--corpus", str(no_synthetic), "--output", str(tmp_path), *RUN])
    assert status == 2
    error = capsys.readouterr().err
    assert "phase 'decay' source 'synthetic' needs domain synthetic" in error
    assert "--drop-missing" in error
    assert not any(tmp_path.iterdir())  # nothing was built


def test_drop_missing_drops_and_renormalises_out_loud(no_synthetic, tmp_path, monkeypatch):
    from api import service

    built = {}

    def stop(spec, output, progress=print):
        built["mixture"] = spec
        raise RecipeError("stopped before building")

    monkeypatch.setattr(service, "mix_build", stop)
    lines: list[str] = []
    with pytest.raises(RecipeError, match="stopped"):
        recipes.run_recipe("smollm2", no_synthetic, Settings(scale=3.3e-9, seq_len=32, batch_size=4),
                           output=tmp_path, vocab_size=400, drop_missing=True, progress=lines.append)
    (said,) = [line for line in lines if "dropped source" in line]
    assert "phase 'decay': dropped source 'synthetic' (weight 0.04" in said and "web 0.58→0.604167" in said
    decay = built["mixture"].phase("decay")
    assert [source.name for source in decay.sources] == ["web", "code", "math"]
    assert sum(source.weight for source in decay.sources) == pytest.approx(1.0)
    record = json.loads(next(tmp_path.glob("*/recipe.json")).read_text())
    assert record["dropped"][0]["source"] == "synthetic" and record["dropped"][0]["missing"] == "domain synthetic"
    assert record["status"] == "failed" and record["error"] == "stopped before building"
