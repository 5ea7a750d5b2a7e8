"""Run figures from hand-written metrics.jsonl / eval.jsonl (absent keys and files tolerated),
and the schedule figure, whose plotted LR must be trainer.schedule.lr_at at every step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from mixer.stream import PhaseInfo, write_phase
from trainer.plots import (
    PhaseSpan,
    eval_perplexities,
    fim_points,
    passkey_points,
    phase_spans,
    plot_run,
    plot_schedule,
    schedule_curve,
    schedule_figure,
    schedule_lines,
)
from trainer.schedule import lr_at
from trainer.spec import TrainSpec
from trainer.train import plan_phases

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert not list(path.parent.glob("*.partial"))


def write_jsonl(path: Path, records: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records) + tail)


def metrics_records() -> list[dict]:
    """Two phases: 4 steps of 128 tokens, then 3 of 256; tokens/s and MFU on some lines only."""
    records, tokens = [], 0
    for step in range(1, 8):
        phase, per_step = ("short", 128) if step <= 4 else ("long", 256)
        tokens += per_step
        record = {"phase": phase, "step": step, "tokens_seen": tokens, "lr": 0.01 / step,
                  "loss": 5.0 - 0.3 * step, "grad_norm": 1.0 + 0.1 * step,
                  "loss_by_domain": {"web": 5.1 - 0.3 * step, "code": 4.9 - 0.3 * step},
                  "loss_by_source": {"web-a": 5.1 - 0.3 * step}}
        if step % 2:
            record.update(tokens_per_s=1000.0 + step, mfu=0.3)
        records.append(record)
    del records[2]["loss_by_domain"]  # absent keys are skipped
    del records[3]["grad_norm"]
    return records


def eval_records() -> list[dict]:
    held_out = {"short": {"loss": 4.0, "loss_by_domain": {"web": 4.2, "code": 3.8}},
                "long": {"loss": 4.5, "loss_by_domain": {"web": 4.6}, "perplexity": 90.0,
                         "perplexity_by_domain": {"web": 99.5}}}
    return [
        {"phase": "short", "step": 2, "tokens_seen": 256, "eval": held_out},
        {"phase": "short", "step": 4, "tokens_seen": 512, "eval": held_out,
         "passkey": {"256": 0.5, "64": 1.0, "1024": 0.0}, "fim_exact_match": {"exact_match": 0.25, "n": 8}},
        {"phase": "long", "step": 7, "tokens_seen": 1280, "eval": {"short": {"loss": 3.9}},
         "passkey": {"64": 1.0, "1024": 0.5}, "fim_exact_match": {"exact_match": 0.5}},
    ]


def test_plot_run_draws_every_figure(tmp_path):
    write_jsonl(tmp_path / "metrics.jsonl", metrics_records(), tail='{"phase": "long", "st')  # a line cut short
    write_jsonl(tmp_path / "eval.jsonl", eval_records())
    paths = plot_run(tmp_path)
    names = ["loss", "lr", "grad_norm", "throughput", "eval_perplexity", "passkey", "fim_exact_match"]
    assert paths == [tmp_path / "plots" / f"{name}.png" for name in names]
    for path in paths:
        assert_png(path)


def test_plot_run_with_only_the_basic_keys(tmp_path):
    records = [{"phase": "p", "step": step, "tokens_seen": 64 * step, "loss": 3.0 / step} for step in range(1, 5)]
    write_jsonl(tmp_path / "metrics.jsonl", records)  # and no eval.jsonl
    assert plot_run(tmp_path) == [tmp_path / "plots" / "loss.png"]
    assert_png(tmp_path / "plots" / "loss.png")
    # evaluations without phase-end extras: perplexity only
    write_jsonl(tmp_path / "eval.jsonl", [{"phase": "p", "step": 2, "tokens_seen": 128,
                                           "eval": {"p": {"loss": 2.0}}}])
    assert [path.name for path in plot_run(tmp_path)] == ["loss.png", "eval_perplexity.png"]


def test_plot_run_without_records(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        plot_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    assert plot_run(tmp_path) == []


def test_what_the_run_figures_read():
    assert phase_spans(metrics_records()) == [PhaseSpan("short", 0, 512), PhaseSpan("long", 512, 1280)]
    sets = eval_perplexities(eval_records())
    assert sets["short"]["all"] == ([256, 512, 1280], [math.exp(4.0), math.exp(4.0), math.exp(3.9)])
    assert sets["short"]["code"] == ([256, 512], [math.exp(3.8)] * 2)
    assert sets["long"] == {"all": ([256, 512], [90.0, 90.0]), "web": ([256, 512], [99.5, 99.5])}  # recorded values win
    assert passkey_points(eval_records()) == [
        ("short, step 4", [64, 256, 1024], [1.0, 0.5, 0.0]), ("long, step 7", [64, 1024], [1.0, 0.5])]
    assert fim_points(eval_records()) == [("short, step 4", 0.25, 8), ("long, step 7", 0.5, None)]


# ---------------------------------------------------------------------------------------------
# Schedule


def make_mixture(root: Path, phases: dict[str, tuple[int, int]]) -> str:
    """Built phases of random tokens (as tests/test_trainer_train.py writes them); ``phases``:
    name -> (seq_len, n_sequences)."""
    rng = np.random.default_rng(0)
    for name, (seq_len, n) in phases.items():
        info = PhaseInfo(name, seq_len, n, n * seq_len, ["web-a", "code-b"], ["web", "code"], fingerprint="a" * 64)
        tokens = rng.integers(0, 64, size=(n, seq_len))
        write_phase(root, info, tokens, np.zeros_like(tokens), rng.integers(0, 2, size=(n, seq_len)))
    return str(root)


def schedule_spec(mixture: str, output: Path, **overrides) -> TrainSpec:
    data = {
        "name": "t", "mixture": mixture, "output": str(output), "device": "cpu",
        "model": {"vocab_size": 64, "d_model": 32, "n_layers": 1, "n_heads": 4},
        "optimizer": {"lr": 0.01},
        "schedule": {"kind": "wsd", "warmup_tokens": 256, "decay_fraction": 0.3, "min_lr_ratio": 0.1},
        "phases": [
            {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4},
            {"name": "long", "mixture_phase": "long", "seq_len": 64, "batch_size": 4, "rewarm": True},
        ],
    }
    data.update(overrides)
    return TrainSpec.model_validate(data)


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> str:
    return make_mixture(tmp_path_factory.mktemp("mix"), {"short": (32, 48), "long": (64, 24)})


def test_schedule_curve_is_lr_at_every_step(mixture, tmp_path):
    spec = schedule_spec(mixture, tmp_path)
    curve = schedule_curve(spec)  # plans the phases from the built mixture
    total = 12 * 128 + 6 * 256
    assert curve.total_tokens == total
    expected_tokens = [128 * k for k in range(12)] + [1536 + 256 * k for k in range(6)]
    assert curve.tokens.tolist() == expected_tokens
    expected = [lr_at(t, total, spec.schedule, 0.01, 1536 if t >= 1536 else None) for t in expected_tokens]
    assert curve.lr.tolist() == expected
    assert curve.lr[12] < curve.lr[11]  # the long phase warms up again
    short, long = curve.phases
    assert (short.name, short.first_token, short.tokens, short.steps, short.rewarm) == ("short", 0, 1536, 12, False)
    assert (long.first_token, long.tokens, long.steps, long.tokens_per_step) == (1536, 1536, 6, 256)
    assert (short.lr_start, short.lr_end, long.lr_start, long.lr_end) == (
        expected[0], expected[11], expected[12], expected[17])
    # what is drawn is the curve
    line = schedule_figure(spec, curve).axes[0].lines[0]
    assert line.get_xdata().tolist() == expected_tokens and line.get_ydata().tolist() == expected
    # at most max_points per phase: evenly spaced, the first and last steps kept
    sparse = schedule_curve(spec, plan_phases(spec), max_points=3)
    assert sparse.tokens.tolist() == [0, 768, 1408, 1536, 2048, 2816]
    assert sparse.lr.tolist() == [expected[i] for i in (0, 6, 11, 12, 14, 17)]
    lines = schedule_lines(curve)
    assert len(lines) == 2 and lines[1].startswith("long: tokens 1,536..3,072 (1,536 in 6 steps of 256)")
    assert lines[1].endswith("(rewarm)")


def test_plot_schedule_writes_a_png(mixture, tmp_path):
    spec = schedule_spec(mixture, tmp_path, schedule={"kind": "cosine", "warmup_tokens": 128})
    path = plot_schedule(spec, tmp_path / "deep" / "schedule.png", plan_phases(spec))
    assert path == tmp_path / "deep" / "schedule.png"
    assert_png(path)
