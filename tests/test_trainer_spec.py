"""The train spec (contract 4): the example loads, and a bad spec fails at the door with one
line that names the file and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from corpus.specfile import SpecError
from trainer.spec import AbfRope, NoRope, TrainSpec, WsdSchedule, load_train_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train.yaml"

BASE = {
    "name": "t", "mixture": "mix", "output": "out",
    "model": {"vocab_size": 64, "d_model": 32, "n_heads": 4},
    "phases": [{"name": "p", "mixture_phase": "p", "seq_len": 16, "batch_size": 2}],
}


def merged(base: dict, patch: dict) -> dict:
    out = dict(base)
    for key, value in patch.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def test_the_example_spec_loads():
    spec = load_train_spec(EXAMPLE)
    assert spec.model.vocab_size is None  # taken from the mixture's tokenizer at run time
    assert isinstance(spec.schedule, WsdSchedule) and spec.schedule.decay_shape == "1-sqrt"
    assert isinstance(spec.phases[0].rope, NoRope)
    assert isinstance(spec.phases[-1].rope, AbfRope) and spec.phases[-1].rope.base == 100_000


def test_defaults_and_a_json_spec(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(yaml.safe_dump(BASE, default_flow_style=True))  # flow-style YAML is JSON-like
    spec = load_train_spec(path)
    assert spec.schedule.kind == "constant" and spec.phases[0].rope.kind == "none"
    assert spec.model.kv_heads == 4 and spec.model.head_dim == 8 and spec.optimizer.kind == "adamw"
    assert spec.eval_every is None and not spec.phases[0].rewarm


PHASE = BASE["phases"][0]


@pytest.mark.parametrize(("patch", "field", "message"), [
    ({"model": {"d_model": 30}}, "model", "d_model 30 is not divisible by n_heads 4"),
    ({"model": {"n_kv_heads": 3}}, "model", "n_heads 4 is not divisible by n_kv_heads 3"),
    ({"model": {"d_model": 12, "n_heads": 4}}, "model", "head dimension .* must be even"),
    ({"model": {"vocab_size": 0}}, "model.vocab_size", "greater than 0"),
    ({"model": {"layers": 2}}, "model.layers", "Extra inputs are not permitted"),
    ({"device": "tpu"}, "device", "'auto', 'cpu' or 'cuda'"),
    ({"optimizer": {"lr": -1}}, "optimizer.lr", "greater than 0"),
    ({"optimizer": {"betas": [0.9, 1.5]}}, "optimizer.betas.1", "less than 1"),
    ({"schedule": {"kind": "wsd", "decay": 0.2}}, "schedule.wsd.decay", "Extra inputs"),
    ({"schedule": {"kind": "cosine", "min_lr_ratio": 2}}, "schedule.cosine.min_lr_ratio", "less than or equal to 1"),
    ({"phases": []}, "phases", "at least 1 item"),
    ({"phases": [{**PHASE, "batch_size": 0}]}, "phases.0.batch_size", "greater than 0"),
    ({"phases": [{**PHASE, "name": "a b"}]}, "phases.0.name", "should match pattern"),
    ({"phases": [{**PHASE, "rope": {"kind": "yarn", "factor": 4}}]}, "phases.0.rope.yarn.original_context", "Field required"),
    ({"phases": [{**PHASE, "rope": {"kind": "abf"}}]}, "phases.0.rope.abf.base", "Field required"),
    ({"phases": [{**PHASE, "rope": {"kind": "pi", "factor": 0.5}}]}, "phases.0.rope.pi.factor", "greater than or equal to 1"),
    ({"phases": [{**PHASE, "rope": {"kind": "xpos"}}]}, "phases.0.rope", "does not match any of the expected tags"),
    ({"phases": [{**PHASE, "rope": {"kind": "yarn", "factor": 2, "original_context": 8, "alpha": 40}}]},
     "phases.0.rope.yarn", "beta must be greater than alpha"),
    ({"phases": [PHASE, PHASE]}, "phases", r"duplicate phase names \['p'\]"),
    ({"phases": [{**PHASE, "rewarm": True}]}, "phases", r"rewarm but schedule.warmup_tokens is 0"),
    ({"phases": [{**PHASE, "rope": {"kind": "longrope", "factor": 2, "original_context": 8, "rescale": [1, 2]}}]},
     "phases", "rope.rescale has 2 values, the model has head_dim/2 = 4"),
    ({"checkpoint_every": 0}, "checkpoint_every", "greater than 0"),
])
def test_a_bad_spec_gives_one_line_naming_the_field(tmp_path, patch, field, message):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(merged(BASE, patch)))
    with pytest.raises(SpecError) as error:
        load_train_spec(path)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: field {field}: ")
    assert re.search(message, text), text


def test_vocab_size_must_be_stated(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**BASE, "model": {"d_model": 32}}))
    with pytest.raises(SpecError, match="field model.vocab_size: Field required"):
        load_train_spec(path)


def test_unreadable_spec(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_train_spec(tmp_path / "missing.yaml")


def test_spec_round_trips_through_json():
    spec = TrainSpec.model_validate(merged(BASE, {
        "schedule": {"kind": "power", "batch_size": 4},
        "phases": [{**PHASE, "rope": {"kind": "llama3", "factor": 8, "original_context": 8}}],
    }))
    assert TrainSpec.model_validate_json(spec.model_dump_json()) == spec


def test_a_batch_in_tokens_becomes_sequences():
    from trainer.spec import PhaseSpec

    phase = PhaseSpec(name="a", mixture_phase="a", seq_len=256, batch_tokens=4096)
    assert phase.batch_size == 16
    assert PhaseSpec.model_validate_json(phase.model_dump_json()) == phase  # dumps reload
    for bad, message in [({}, "one of the two"), ({"batch_tokens": 100}, "not a multiple of seq_len 256"),
                         ({"batch_size": 2, "batch_tokens": 512}, "one of the two")]:
        with pytest.raises(ValueError, match=message):
            PhaseSpec(name="a", mixture_phase="a", seq_len=256, **bad)
