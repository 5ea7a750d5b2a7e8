"""The phase loop on small synthetic mixtures written with ``mixer.stream.write_phase``:
learning, determinism, exact resume, per-phase seq_len and RoPE, evaluation, checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mixer.dataset import PackedBatch, PhaseDataset, StreamState, StreamStateError
from mixer.stream import PAD_SOURCE, PhaseInfo, read_phase_info, write_phase
from trainer import train as train_module
from trainer.model import Decoder
from trainer.schedule import lr_at
from trainer.spec import TrainSpec
from trainer.train import batch_loss, build_optimizer, run_training, vocabulary_size

VOCAB = 64
SOURCES = (["web-a", "code-b", "math-c"], ["web", "code", "math"])


def pack(n_sequences: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Documents of 4-20 tokens that count up modulo VOCAB with a step set by their source
    (learnable: two tokens of a document give away the rest), packed back to back."""
    tokens = np.zeros((n_sequences, seq_len), dtype=np.int64)
    segments = np.zeros_like(tokens)
    sources = np.zeros_like(tokens)
    for row in range(n_sequences):
        at, document = 0, 0
        while at < seq_len:
            length = min(int(rng.integers(4, 21)), seq_len - at)
            source = int(rng.integers(0, 3))
            start = int(rng.integers(0, VOCAB))
            tokens[row, at:at + length] = (start + (source + 1) * np.arange(length)) % VOCAB
            segments[row, at:at + length] = document
            sources[row, at:at + length] = source
            at, document = at + length, document + 1
    return tokens, segments, sources


FINGERPRINT = "a" * 64


def make_mixture(root: Path, phases: dict[str, tuple[int, int]], fingerprint: str = FINGERPRINT) -> str:
    """``phases``: name -> (seq_len, n_sequences)."""
    rng = np.random.default_rng(0)
    for name, (seq_len, n) in phases.items():
        info = PhaseInfo(name, seq_len, n, n * seq_len, *SOURCES, fingerprint=fingerprint, seed=9)
        write_phase(root, info, *pack(n, seq_len, rng))
    return str(root)


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> str:
    return make_mixture(tmp_path_factory.mktemp("mix"), {"short": (32, 48), "long": (64, 24)})


def train_spec(mixture: str, output: Path, **overrides) -> TrainSpec:
    data = {
        "name": "t", "mixture": mixture, "output": str(output), "seed": 3, "device": "cpu",
        "model": {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                  "ffn_hidden": 64},
        "optimizer": {"lr": 0.01},
        "schedule": {"kind": "wsd", "warmup_tokens": 256, "decay_fraction": 0.3, "min_lr_ratio": 0.1},
        "phases": [
            {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4},
            {"name": "long", "mixture_phase": "long", "seq_len": 64, "batch_size": 4,
             "rope": {"kind": "abf", "base": 100_000.0}},
        ],
        "checkpoint_every": 5,
    }
    data.update(overrides)
    return TrainSpec.model_validate(data)


def records(output: Path, name: str = "metrics.jsonl") -> list[dict]:
    return [json.loads(line) for line in (output / name).read_text().splitlines()]


def losses(output: Path) -> list[float]:
    return [record["loss"] for record in records(output)]


@pytest.fixture(scope="module")
def reference(mixture, tmp_path_factory) -> dict:
    """One uninterrupted run that several tests compare against."""
    output = tmp_path_factory.mktemp("reference")
    lines: list[str] = []
    summary = run_training(train_spec(mixture, output), progress=lines.append)
    return {"output": output, "summary": summary, "lines": lines}


def test_loss_falls_on_a_learnable_stream(reference):
    values = losses(reference["output"])
    assert len(values) == 12 + 6
    assert np.mean(values[-4:]) < values[0] - 1.0


def test_metrics_lines(reference, mixture):
    lines = records(reference["output"])
    first = lines[0]
    assert {"phase", "step", "tokens_seen", "lr", "loss", "grad_norm", "loss_by_domain", "loss_by_source",
            "seconds", "time"} <= set(first)
    assert [line["step"] for line in lines] == list(range(1, 19))
    assert lines[11]["tokens_seen"] == 12 * 4 * 32 and lines[-1]["tokens_seen"] == 12 * 128 + 6 * 256
    assert set(first["loss_by_domain"]) <= {"web", "code", "math"} and first["loss_by_domain"]
    assert set(first["loss_by_source"]) <= set(SOURCES[0])
    spec = train_spec(mixture, reference["output"])
    total = 12 * 128 + 6 * 256
    for line in lines:  # the LR is the schedule's at the tokens seen before the step
        before = line["tokens_seen"] - (128 if line["phase"] == "short" else 256)
        assert line["lr"] == lr_at(before, total, spec.schedule, 0.01)


def test_summary_and_progress(reference):
    summary = reference["summary"]
    assert json.loads((reference["output"] / "summary.json").read_text()) == summary
    short, long = summary["phases"]
    assert (short["name"], short["seq_len"], short["rope"], short["steps"], short["tokens"]) == ("short", 32, "none", 12, 1536)
    assert (long["name"], long["seq_len"], long["rope"], long["steps"], long["tokens"]) == ("long", 64, "abf", 6, 1536)
    assert long["last_loss"] < short["first_loss"]
    assert summary["tokens"] == summary["total_tokens"] == 3072 and summary["steps"] == 18
    assert summary["wall_seconds"] >= 0 and summary["device"] == "cpu" and summary["final_eval"] is None
    assert any(line.startswith("train[short] step 10/12 loss ") and " lr " in line for line in reference["lines"])
    assert any(line.startswith("train[long] phase 2/2: seq_len 64, rope abf") for line in reference["lines"])
    assert not (reference["output"] / "eval.jsonl").exists()


def test_two_runs_give_identical_losses(reference, mixture, tmp_path):
    run_training(train_spec(mixture, tmp_path / "again"))
    assert losses(tmp_path / "again") == losses(reference["output"])
    run_training(train_spec(mixture, tmp_path / "seed", seed=4))
    assert losses(tmp_path / "seed") != losses(reference["output"])


def test_foreach_adamw_takes_the_same_steps_as_fused(reference, mixture, tmp_path):
    """The two implementations of one update: equal up to float rounding (bitwise on some
    CPUs, so only closeness is asserted; which one runs is checked on the optimizer)."""
    spec = train_spec(mixture, tmp_path, optimizer={"lr": 0.01, "implementation": "foreach"})
    optimizer = build_optimizer(Decoder(spec.model, VOCAB), spec.optimizer)
    assert optimizer.defaults["foreach"] and not optimizer.defaults["fused"]
    run_training(spec)
    np.testing.assert_allclose(losses(tmp_path), losses(reference["output"]), rtol=1e-4)


def test_compiled_blocks_train_like_eager_ones_and_resume(reference, mixture, tmp_path):
    """``compile: true`` (torch.compile per block, inductor on CPU here) learns the same losses
    to float rounding, checkpoints under the eager parameter names, and resumes."""
    spec = train_spec(mixture, tmp_path, compile=True)
    run_training(spec)
    np.testing.assert_allclose(losses(tmp_path), losses(reference["output"]), rtol=1e-3)
    saved = torch.load(tmp_path / "checkpoints" / "step-0000015.pt", weights_only=False)
    assert set(saved["model"]) == set(torch.load(reference["output"] / "checkpoints" / "step-0000015.pt",
                                                 weights_only=False)["model"])
    compiled = losses(tmp_path)
    (tmp_path / "checkpoints" / "latest").write_text("step-0000015.pt\n")
    run_training(spec, resume=True)
    assert losses(tmp_path) == compiled


def test_checkpoints_are_whole_and_latest_names_the_newest(reference):
    directory = reference["output"] / "checkpoints"
    names = sorted(path.name for path in directory.iterdir())
    assert names == ["latest", "step-0000005.pt", "step-0000010.pt", "step-0000012.pt", "step-0000015.pt",
                     "step-0000018.pt"]
    assert (directory / "latest").read_text() == "step-0000018.pt\n"
    state = torch.load(directory / "step-0000015.pt", weights_only=True)
    assert state["position"] == {"step": 15, "tokens_seen": 1536 + 3 * 256, "phase_index": 1, "batches_in_phase": 3}
    assert state["phase"] == "long"
    assert state["stream"] == {"phase": "long", "tokens_consumed": 3 * 4 * 64, "seed": 9, "fingerprint": FINGERPRINT}
    assert {"model", "optimizer", "rng", "spec"} <= set(state)
    at_phase_end = torch.load(directory / "step-0000012.pt", weights_only=True)["position"]
    assert at_phase_end == {"step": 12, "tokens_seen": 1536, "phase_index": 1, "batches_in_phase": 0}


@pytest.mark.parametrize("checkpoint", ["step-0000005.pt", "step-0000012.pt", "step-0000015.pt"])
def test_resume_from_a_checkpoint_gives_the_uninterrupted_losses(reference, mixture, tmp_path, checkpoint):
    output = tmp_path / "resumed"
    (output / "checkpoints").mkdir(parents=True)
    source = reference["output"] / "checkpoints"
    (output / "checkpoints" / checkpoint).write_bytes((source / checkpoint).read_bytes())
    (output / "checkpoints" / "latest").write_text(checkpoint + "\n")
    step = int(checkpoint[5:12])
    (output / "metrics.jsonl").write_text("".join(
        json.dumps(line) + "\n" for line in records(reference["output"])[:step]))
    summary = run_training(train_spec(mixture, output), resume=True)
    assert losses(output) == losses(reference["output"])
    assert summary["phases"] == reference["summary"]["phases"]


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_losses(reference, mixture, tmp_path):
    spec = train_spec(mixture, tmp_path / "killed", log_every=1)

    def die_at_step_8(line: str) -> None:
        if "step 8/" in line:
            raise Killed

    with pytest.raises(Killed):
        run_training(spec, progress=die_at_step_8)
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text() == "step-0000005.pt\n"
    assert not list((tmp_path / "killed" / "checkpoints").glob("*.tmp"))
    run_training(spec, resume=True)
    assert losses(tmp_path / "killed") == losses(reference["output"])


def test_resume_refuses_a_different_model_or_a_missing_checkpoint(reference, mixture, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        run_training(train_spec(mixture, tmp_path / "empty"), resume=True)
    output = tmp_path / "other"
    (output / "checkpoints").mkdir(parents=True)
    (output / "checkpoints" / "step-0000005.pt").write_bytes(
        (reference["output"] / "checkpoints" / "step-0000005.pt").read_bytes())
    (output / "checkpoints" / "latest").write_text("step-0000005.pt\n")
    spec = train_spec(mixture, output)
    wider = spec.model_copy(update={"model": spec.model.model_copy(update={"ffn_hidden": 96})})
    with pytest.raises(ValueError, match="different model spec"):
        run_training(wider, resume=True)


def test_resume_refuses_a_rebuilt_mixture_unless_allowed(reference, tmp_path):
    rebuilt = make_mixture(tmp_path / "rebuilt", {"short": (32, 48), "long": (64, 24)}, fingerprint="b" * 64)
    output = tmp_path / "resumed"
    (output / "checkpoints").mkdir(parents=True)
    (output / "checkpoints" / "step-0000015.pt").write_bytes(
        (reference["output"] / "checkpoints" / "step-0000015.pt").read_bytes())
    (output / "checkpoints" / "latest").write_text("step-0000015.pt\n")
    with pytest.raises(StreamStateError, match="from mixture aaaaaaaaaaaa seed 9, this is bbbbbbbbbbbb"):
        run_training(train_spec(rebuilt, output), resume=True)
    run_training(train_spec(rebuilt, output, allow_mixture_change=True), resume=True)
    assert losses(output)[-3:] == losses(reference["output"])[-3:]  # same arrays, so the same losses


def test_padding_is_not_a_target(mixture):
    """A batch whose rows end in padding has the loss of the same rows without it."""
    torch.manual_seed(0)
    spec = train_spec(mixture, Path("unused"))
    model = Decoder(spec.model, VOCAB)
    info = read_phase_info(mixture, "short")
    batch = next(iter(PhaseDataset.from_built(mixture, "short", 2, state=StreamState("short", 0, 9, FINGERPRINT))))
    cut = 20
    segments = batch.segments.clone()
    segments[:, cut:] = segments[:, cut - 1:cut] + 1  # the pad run is a segment of its own
    padded = PackedBatch(batch.tokens.clone(), segments, batch.sources.clone())
    padded.tokens[:, cut:] = 1
    padded.sources[:, cut:] = PAD_SOURCE
    trimmed = PackedBatch(batch.tokens[:, :cut], batch.segments[:, :cut], batch.sources[:, :cut])
    with torch.no_grad():
        with_pad = batch_loss(model, padded, info, torch.device("cpu"))
        without = batch_loss(model, trimmed, info, torch.device("cpu"))
    assert torch.allclose(with_pad.loss, without.loss, atol=1e-6)
    assert with_pad.by_source == without.by_source


class Recording(Decoder):
    """A decoder that notes the sequence length and RoPE it ran with."""

    calls: list[tuple[int, torch.Tensor]] = []

    def forward(self, tokens, segments, targets=None):
        Recording.calls.append((tokens.shape[1], self.inv_freq.clone()))
        Recording.last = self
        return super().forward(tokens, segments, targets)


def test_each_phase_sets_its_seq_len_and_rope(mixture, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "Decoder", Recording)
    Recording.calls = []
    run_training(train_spec(mixture, tmp_path / "rope", checkpoint_every=100))
    plain = torch.tensor([10_000.0 ** (-2 * i / 8) for i in range(4)])
    abf = torch.tensor([100_000.0 ** (-2 * i / 8) for i in range(4)])
    short, long = Recording.calls[:12], Recording.calls[12:]
    assert len(long) == 6
    assert all(seq == 31 and torch.allclose(inv, plain) for seq, inv in short)  # inputs are seq_len - 1
    assert all(seq == 63 and torch.allclose(inv, abf) for seq, inv in long)
    assert torch.allclose(Recording.last.inv_freq, abf)


def test_yarn_phase_sets_the_attention_scale(mixture, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "Decoder", Recording)
    spec = train_spec(mixture, tmp_path / "yarn", phases=[
        {"name": "long", "mixture_phase": "long", "seq_len": 64, "batch_size": 4,
         "rope": {"kind": "yarn", "factor": 2.0, "original_context": 32}}])
    run_training(spec)
    assert Recording.last.attention_scale == pytest.approx(0.1 * np.log(2.0) + 1)


def test_seq_len_must_match_the_built_phase(mixture, tmp_path):
    spec = train_spec(mixture, tmp_path / "bad", phases=[
        {"name": "short", "mixture_phase": "short", "seq_len": 64, "batch_size": 4}])
    with pytest.raises(ValueError, match="phase 'short': seq_len 64 but mixture phase 'short' was packed to 32"):
        run_training(spec)


def test_a_missing_phase_is_named(mixture, tmp_path):
    spec = train_spec(mixture, tmp_path / "bad", phases=[
        {"name": "x", "mixture_phase": "anneal", "seq_len": 32, "batch_size": 4}])
    with pytest.raises(FileNotFoundError, match="phase 'anneal' has not been built"):
        run_training(spec)


def test_token_caps(mixture, tmp_path):
    capped = train_spec(mixture, tmp_path / "cap", phases=[
        {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4, "tokens": 5 * 128 + 10}])
    assert [phase["steps"] for phase in run_training(capped)["phases"]] == [5]
    too_many = train_spec(mixture, tmp_path / "over", phases=[
        {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4, "tokens": 10_000}])
    with pytest.raises(ValueError, match="phase 'short': tokens 10,000 but mixture phase 'short' holds 1,536"):
        run_training(too_many)


def test_vocab_size_from_the_mixture_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models

    mixture = make_mixture(tmp_path / "mix", {"short": (32, 8)})
    spec = train_spec(mixture, tmp_path / "out", phases=[
        {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4}])
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"vocab_size": None})})
    with pytest.raises(FileNotFoundError, match="vocab_size is null and the mixture has no tokenizer"):
        vocabulary_size(spec)
    vocab = {f"t{i}": i for i in range(VOCAB + 6)}
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(tmp_path / "mix" / "tokenizer.json"))
    assert vocabulary_size(spec) == VOCAB + 6
    assert run_training(spec)["steps"] == 2


def test_held_out_evaluation(mixture, tmp_path):
    lines: list[str] = []
    summary = run_training(train_spec(mixture, tmp_path / "eval", eval_every=4, eval_batches=1), progress=lines.append)
    assert [phase["steps"] for phase in summary["phases"]] == [11, 5]  # one batch each held out
    evals = records(tmp_path / "eval", "eval.jsonl")
    assert [line["step"] for line in evals] == [4, 8, 11, 12, 16]  # every 4 steps and at each phase end
    assert set(evals[0]["eval"]) == {"short", "long"}
    assert evals[-1]["eval"]["short"]["loss"] < evals[0]["eval"]["short"]["loss"]
    assert summary["final_eval"] == evals[-1]["eval"]
    assert any(line.startswith("eval[long] step 16: short ") for line in lines)


def test_rewarm_restarts_the_warmup_at_the_phase(mixture, tmp_path):
    spec = train_spec(mixture, tmp_path / "rewarm", phases=[
        {"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4},
        {"name": "long", "mixture_phase": "long", "seq_len": 64, "batch_size": 4, "rewarm": True}])
    run_training(spec)
    lr = {line["step"]: line["lr"] for line in records(tmp_path / "rewarm")}
    assert lr[13] == pytest.approx(lr_at(1536, 3072, spec.schedule, 0.01) / 256)
    assert lr[13] < lr[12] and lr[14] == pytest.approx(lr_at(1792, 3072, spec.schedule, 0.01))


def test_keep_checkpoints_prunes_the_oldest(mixture, tmp_path):
    run_training(train_spec(mixture, tmp_path / "keep", keep_checkpoints=2, checkpoint_every=3))
    names = sorted(path.name for path in (tmp_path / "keep" / "checkpoints").glob("step-*.pt"))
    assert names == ["step-0000015.pt", "step-0000018.pt"]


class Poisoned(Decoder):
    """A decoder whose output (losses in training) turns to NaN on its third forward pass."""

    calls = 0

    def forward(self, tokens, segments, targets=None):
        Poisoned.calls += 1
        output = super().forward(tokens, segments, targets)
        return output * float("nan") if Poisoned.calls == 3 else output


def test_a_nan_stops_the_run_naming_step_sources_and_stream_position(mixture, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "Decoder", Poisoned)
    Poisoned.calls = 0
    with pytest.raises(train_module.NonFiniteError) as raised:
        run_training(train_spec(mixture, tmp_path / "nan", checkpoint_every=2))
    message = str(raised.value)
    assert message.startswith("phase 'short' step 3: loss nan")
    assert "the batch holds sources code-b, math-c, web-a" in message
    assert "non-finite loss in code-b, math-c, web-a" in message
    assert f"it starts {2 * 4 * 32:,} tokens into mixture phase 'short'; nothing was updated" in message
    assert len(records(tmp_path / "nan")) == 2  # the failed step is not recorded
    assert (tmp_path / "nan" / "checkpoints" / "latest").read_text() == "step-0000002.pt\n"


def test_throughput_mfu_and_tensorboard(mixture, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output = tmp_path / "board"
    run_training(train_spec(mixture, output, peak_tflops=0.001))
    lines = records(output)
    assert all(line["tokens_per_s"] > 0 and 0 < line["mfu"] for line in lines)
    # MFU is the step's FLOPs over the peak: tokens/s x FLOPs per token / 1e9
    first = lines[0]
    flops = train_module.flops_per_token(train_spec(mixture, output).model, VOCAB, 32)
    assert first["mfu"] == pytest.approx(first["tokens_per_s"] * flops / 1e9, rel=1e-3)
    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [event.step for event in loss] == list(range(1, 19))
    assert [round(event.value, 4) for event in loss] == [round(line["loss"], 4) for line in lines]
    assert "train/loss_by_domain/web" in events.Tags()["scalars"]


def test_without_a_peak_there_is_no_mfu(reference):
    assert all("mfu" not in line and line["tokens_per_s"] > 0 for line in records(reference["output"]))


def test_init_from_takes_the_weights_only(reference, mixture, tmp_path):
    spec = train_spec(mixture, tmp_path / "continued", init_from=str(reference["output"]))
    lines: list[str] = []
    run_training(spec, progress=lines.append)
    continued = records(tmp_path / "continued")
    assert continued[0]["loss"] < records(reference["output"])[0]["loss"] - 1.0  # trained weights
    assert [line["lr"] for line in continued] == [line["lr"] for line in records(reference["output"])]  # fresh schedule
    assert any("weights from" in line for line in lines)
    wider = train_spec(mixture, tmp_path / "wider", init_from=str(reference["output"]))
    wider = wider.model_copy(update={"model": wider.model.model_copy(update={"ffn_hidden": 96})})
    with pytest.raises(ValueError, match="its weights do not fit this model spec"):
        run_training(wider)
    with pytest.raises(FileNotFoundError, match="init_from checkpoint not found"):
        run_training(train_spec(mixture, tmp_path / "none", init_from=str(tmp_path / "missing.pt")))


def test_torchrun_ddp_splits_each_step_between_two_ranks(mixture, tmp_path):
    """Two CPU processes (gloo) under torchrun: each step takes a batch on each rank, rank 0
    writes the outputs, and the run resumes from its checkpoints as a single one does."""
    import os
    import subprocess
    import sys

    output = tmp_path / "ddp"
    spec = train_spec(mixture, output, checkpoint_every=4)
    spec_file = tmp_path / "ddp.json"
    spec_file.write_text(spec.model_dump_json())
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
               "-m", "api.cli", "train", str(spec_file), "--no-ray"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = records(output)
    # 48 and 24 sequences of 4 per rank and step: 6 and 3 steps of 2 x 4 x seq_len tokens
    assert [line["step"] for line in lines] == list(range(1, 10))
    assert lines[5]["tokens_seen"] == 6 * 2 * 4 * 32 and lines[-1]["tokens_seen"] == 6 * 256 + 3 * 512
    summary = json.loads((output / "summary.json").read_text())
    assert summary["world_size"] == 2 and [phase["steps"] for phase in summary["phases"]] == [6, 3]
    assert np.mean([line["loss"] for line in lines[-3:]]) < lines[0]["loss"]
    # step 1 is the mean of the initial model's losses on the two ranks' (different) batches
    torch.manual_seed(spec.seed)
    model = Decoder(spec.model, VOCAB)
    info = read_phase_info(mixture, "short")
    first = [batch_loss(model, PhaseDataset.from_built(mixture, "short", 4, rank=rank, world_size=2).batch(0),
                        info, torch.device("cpu")).loss.item() for rank in (0, 1)]
    assert first[0] != first[1] and lines[0]["loss"] == pytest.approx(np.mean(first), abs=1e-5)
    state = torch.load(output / "checkpoints" / "step-0000008.pt", weights_only=True)
    assert state["stream"]["tokens_consumed"] == 2 * 2 * 4 * 64  # both ranks' batches


def test_held_out_code_is_code_fragments_without_fim_sentinels(tmp_path):
    from mixer_fixtures import mixture as mixture_spec
    from mixer_fixtures import sample_rows, write_corpus

    from mixer.build import build_mixture
    from mixer.tokenizer import SpecialTokens, load_tokenizer, train_tokenizer
    from trainer.spec import PhaseSpec
    from trainer.train import PlannedPhase, held_out_code

    rows = sample_rows()
    corpus = write_corpus(tmp_path / "corpus", rows)
    tokenizer_path = train_tokenizer([str(corpus)], str(tmp_path / "tok.json"), 400)
    phase = {"name": "p", "tokens": 4_000, "seq_len": 64, "sources": [
        {"name": "web", "select": {"domain": "web"}, "weight": 0.5},
        {"name": "code", "select": {"domain": "code"}, "weight": 0.5, "fim": {"rate": 0.5}}]}
    build_mixture(mixture_spec(corpus, tokenizer_path, [phase]), str(tmp_path / "mix"))
    dataset = PhaseDataset.from_built(tmp_path / "mix", "p", 8)
    planned = [PlannedPhase(PhaseSpec(name="p", mixture_phase="p", seq_len=64, batch_size=8),
                            dataset.info, steps=1, first_token=0, held_out=len(dataset))]
    tokenizer = load_tokenizer(tokenizer_path)
    texts = held_out_code({"p": list(dataset)}, planned, tokenizer, SpecialTokens.from_tokenizer(tokenizer), 50)
    code = [row["text"] for row in rows if row["domain"] == "code"]
    assert 10 <= len(texts) <= 50
    assert all(any(text in document for document in code) for text in texts)  # never a FIM'd one


def test_torchrun_fsdp_shards_and_resumes_from_its_full_checkpoints(mixture, tmp_path):
    """FSDP2 on two CPU processes: the same steps as DDP, checkpoints hold full state dicts
    (loadable without sharding), and a resumed run continues with the same losses."""
    import os
    import subprocess
    import sys

    def torchrun(spec: TrainSpec, *extra: str) -> None:
        spec_file = tmp_path / f"{spec.name}.json"
        spec_file.write_text(spec.model_dump_json())
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
                   "-m", "api.cli", "train", str(spec_file), "--no-ray", *extra]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert finished.returncode == 0, finished.stderr[-3000:]

    whole = train_spec(mixture, tmp_path / "whole", data_parallel="fsdp", checkpoint_every=4, eval_every=4,
                       eval_batches=1)
    torchrun(whole)
    lines = records(tmp_path / "whole")
    # one batch of 4 held out per phase: (12 - 1) // 2 and (6 - 1) // 2 steps of two ranks
    assert [line["step"] for line in lines] == list(range(1, 8))
    assert all(math.isfinite(line["loss"]) for line in lines)
    assert len(records(tmp_path / "whole", "eval.jsonl")) >= 3
    state = torch.load(tmp_path / "whole" / "checkpoints" / "step-0000004.pt", weights_only=True)
    assert state["optimizer_by_name"] and not any(hasattr(value, "placements") for value in state["model"].values())
    plain = Decoder(whole.model, VOCAB)
    plain.load_state_dict(state["model"])  # full tensors: a single process can take them

    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    (resumed / "checkpoints" / "step-0000004.pt").write_bytes(
        (tmp_path / "whole" / "checkpoints" / "step-0000004.pt").read_bytes())
    (resumed / "checkpoints" / "latest").write_text("step-0000004.pt\n")
    (resumed / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:4]))
    torchrun(whole.model_copy(update={"output": str(resumed)}), "--resume")
    assert [line["loss"] for line in records(resumed)] == [line["loss"] for line in lines]


def test_data_parallel_fsdp_in_a_single_process_resumes_exactly(reference, mixture, tmp_path):
    """Without torchrun nothing is sharded, so its checkpoints are plain ones and resume as such."""
    output = tmp_path / "fsdp-alone"
    spec = train_spec(mixture, output, data_parallel="fsdp")
    run_training(spec)
    (output / "checkpoints" / "latest").write_text("step-0000010.pt\n")
    (output / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in records(output)[:10]))
    run_training(spec, resume=True)
    assert losses(output) == losses(reference["output"])
