"""The phase loop: each phase sets its sequence length and RoPE scaling, reads its built
mixture phase through ``mixer.stream.PhaseStream``, and steps AdamW with the LR the schedule
gives for the tokens seen so far. The optimizer state carries across phases.

Checkpoints hold the model, optimizer, step, tokens seen, phase and stream position and the
RNG state; each is written to a temporary file and renamed, and ``latest`` names the newest
only after it is complete, so a killed run resumes from a whole checkpoint. On CPU a resumed
run gives the same losses as one that was never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from mixer.stream import PackedBatch, PhaseInfo, PhaseStream, read_phase_info
from trainer.model import Decoder
from trainer.rope import rope_frequencies
from trainer.schedule import lr_multiplier
from trainer.spec import PhaseSpec, TrainSpec

Progress = Callable[[str], None]
IGNORE = -100


@dataclass
class Position:
    """Where a run is: what a checkpoint restores."""

    step: int = 0
    tokens_seen: int = 0
    phase_index: int = 0
    batches_in_phase: int = 0  # batches of the current phase already consumed


@dataclass(frozen=True)
class PlannedPhase:
    spec: PhaseSpec
    info: PhaseInfo
    steps: int

    @property
    def tokens_per_step(self) -> int:
        return self.spec.batch_size * self.spec.seq_len


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def vocabulary_size(spec: TrainSpec) -> int:
    if spec.model.vocab_size is not None:
        return spec.model.vocab_size
    from tokenizers import Tokenizer

    path = Path(spec.mixture) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: model.vocab_size is null and the mixture has no tokenizer")
    return Tokenizer.from_file(str(path)).get_vocab_size()


def plan_phases(spec: TrainSpec) -> list[PlannedPhase]:
    """Check every phase against its built mixture phase and count its optimizer steps."""
    planned = []
    for phase in spec.phases:
        info = read_phase_info(spec.mixture, phase.mixture_phase)
        if info.seq_len != phase.seq_len:
            raise ValueError(
                f"phase {phase.name!r}: seq_len {phase.seq_len} but mixture phase "
                f"{phase.mixture_phase!r} was packed to {info.seq_len}"
            )
        steps = info.n_sequences // phase.batch_size
        if phase.tokens is not None:
            steps = min(steps, phase.tokens // (phase.batch_size * phase.seq_len))
        if steps == 0:
            raise ValueError(
                f"phase {phase.name!r}: {info.n_sequences} sequences make no batch of {phase.batch_size}"
            )
        planned.append(PlannedPhase(phase, info, steps))
    return planned


def build_optimizer(model: Decoder, spec: TrainSpec) -> torch.optim.AdamW:
    """Weight decay on matrices only; norms' gains are not decayed."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": spec.optimizer.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    o = spec.optimizer
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps)


def step_losses(
    model: Decoder, batch: PackedBatch, domains: list[str], device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean next-token loss, and the loss per domain of the predicted tokens. A token is not
    predicted across a document boundary (its segment differs from the previous token's)."""
    tokens = torch.from_numpy(batch.tokens).to(device)
    segments = torch.from_numpy(batch.segments).to(device)
    sources = torch.from_numpy(batch.sources).to(device)
    targets = tokens[:, 1:].clone()
    targets[segments[:, 1:] != segments[:, :-1]] = IGNORE
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(tokens[:, :-1], segments[:, :-1])
    per_token = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE, reduction="none",
    ).view_as(targets)
    valid = targets != IGNORE
    loss = per_token[valid].mean()
    by_domain: dict[str, float] = {}
    target_sources = sources[:, 1:]
    with torch.no_grad():
        for domain in sorted(set(domains)):
            indices = [i for i, name in enumerate(domains) if name == domain]
            chosen = valid & torch.isin(target_sources, torch.tensor(indices, device=device))
            if chosen.any():
                by_domain[domain] = round(per_token[chosen].mean().item(), 6)
    return loss, by_domain


def checkpoint_dir(spec: TrainSpec) -> Path:
    return Path(spec.output) / "checkpoints"


def save_checkpoint(spec: TrainSpec, model: Decoder, optimizer: torch.optim.Optimizer, position: Position) -> Path:
    directory = checkpoint_dir(spec)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{position.step:07d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
         "position": asdict(position), "rng": torch.get_rng_state(), "spec": spec.model_dump()},
        tmp,
    )
    os.replace(tmp, path)
    latest = directory / "latest.tmp"
    latest.write_text(path.name + "\n")
    os.replace(latest, directory / "latest")
    return path


def load_latest(spec: TrainSpec, model: Decoder, optimizer: torch.optim.Optimizer) -> Position:
    pointer = checkpoint_dir(spec) / "latest"
    if not pointer.exists():
        raise FileNotFoundError(f"{pointer}: no checkpoint to resume from")
    state = torch.load(checkpoint_dir(spec) / pointer.read_text().strip(), weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return Position(**state["position"])


def _open_metrics(spec: TrainSpec, keep_through_step: int):
    """metrics.jsonl with the lines after ``keep_through_step`` removed (a resumed run writes
    them again), opened for appending."""
    path = Path(spec.output) / "metrics.jsonl"
    if path.exists():
        kept = [line for line in path.read_text().splitlines()
                if line and json.loads(line)["step"] <= keep_through_step]
        path.write_text("".join(line + "\n" for line in kept))
    return path.open("a")


def summarise(spec: TrainSpec, planned: list[PlannedPhase], wall_seconds: float) -> dict:
    records = [json.loads(line) for line in (Path(spec.output) / "metrics.jsonl").read_text().splitlines()]
    phases = []
    for phase in planned:
        losses = [record["loss"] for record in records if record["phase"] == phase.spec.name]
        phases.append({
            "name": phase.spec.name, "seq_len": phase.spec.seq_len, "rope": phase.spec.rope.kind,
            "steps": len(losses), "tokens": len(losses) * phase.tokens_per_step,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "mean_loss": round(sum(losses) / len(losses), 6) if losses else None,
        })
    return {"name": spec.name, "wall_seconds": round(wall_seconds, 1), "phases": phases}


def run_training(spec: TrainSpec, progress: Progress | None = None, resume: bool = False) -> dict:
    """Train through every phase of ``spec``; returns (and writes) ``summary.json``."""
    say = progress or (lambda line: None)
    started = time.perf_counter()
    device = resolve_device(spec.device)
    planned = plan_phases(spec)
    total_tokens = sum(phase.steps * phase.tokens_per_step for phase in planned)
    Path(spec.output).mkdir(parents=True, exist_ok=True)

    torch.manual_seed(spec.seed)
    model = Decoder(spec.model, vocabulary_size(spec)).to(device)
    optimizer = build_optimizer(model, spec)
    position = load_latest(spec, model, optimizer) if resume else Position()
    say(f"train: {model.parameter_count():,} parameters on {device}, {total_tokens:,} tokens "
        f"in {len(planned)} phases" + (f", resuming at step {position.step}" if resume else ""))

    with _open_metrics(spec, position.step) as metrics:
        for index in range(position.phase_index, len(planned)):
            phase = planned[index]
            model.set_rope(*rope_frequencies(spec.model.head_dim, spec.model.rope_base, phase.spec.rope))
            start = position.batches_in_phase if index == position.phase_index else 0
            stream = iter(PhaseStream(spec.mixture, phase.spec.mixture_phase, phase.spec.batch_size, start=start))
            for batch_number in range(start, phase.steps):
                lr = spec.optimizer.lr * lr_multiplier(position.tokens_seen, total_tokens, spec.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, by_domain = step_losses(model, next(stream), phase.info.domains, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if spec.optimizer.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), spec.optimizer.grad_clip)
                optimizer.step()
                position = Position(position.step + 1, position.tokens_seen + phase.tokens_per_step,
                                    index, batch_number + 1)
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"phase {phase.spec.name!r} step {position.step}: loss is {value}")
                metrics.write(json.dumps({
                    "phase": phase.spec.name, "step": position.step, "tokens_seen": position.tokens_seen,
                    "lr": lr, "loss": round(value, 6), "loss_by_domain": by_domain,
                    "seconds": round(time.perf_counter() - started, 3),
                }) + "\n")
                if (batch_number + 1) % spec.log_every == 0 or batch_number + 1 == phase.steps:
                    metrics.flush()
                    say(f"train[{phase.spec.name}] step {batch_number + 1}/{phase.steps} "
                        f"loss {value:.3f} lr {lr:.2e}")
                if position.step % spec.checkpoint_every == 0:
                    metrics.flush()
                    save_checkpoint(spec, model, optimizer, position)
            position = Position(position.step, position.tokens_seen, index + 1, 0)
            metrics.flush()
            save_checkpoint(spec, model, optimizer, position)

    summary = summarise(spec, planned, time.perf_counter() - started)
    (Path(spec.output) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
