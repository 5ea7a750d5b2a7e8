"""The phase loop: ``run_training(spec)`` trains one model through the spec's phases in order.

Each phase sets its RoPE scaling, reads its built mixture phase through the mixer's public
iterator (``mixer.dataset.PhaseDataset``, whose packed ``seq_len`` the phase must match), and steps
AdamW with the LR the schedule gives for the tokens seen so far across all phases. The model and
the optimizer state carry across phases, as in a real mid-training run.

Outputs under ``spec.output``: ``metrics.jsonl`` (one line per step: loss overall, per domain
and source, LR, gradient norm, tokens/s, MFU on a known GPU), the same scalars under
``tensorboard/``, ``eval.jsonl`` (when ``eval_every`` is set: loss and perplexity per domain on
batches held out from the end of every phase, and at each phase's end passkey retrieval and FIM
exact match, trainer.evals), ``checkpoints/step-XXXXXXX.pt`` plus a ``latest`` pointer,
``summary.json`` and ``plots/*.png`` (trainer.plots). Under ``torchrun`` the ranks split every
step's batches (trainer.distributed) and rank 0 writes.

Checkpoints hold the model, optimizer, step, tokens seen, phase index, the stream's state (with
the mixture's fingerprint, checked on resume) and RNG state. Each is written to a temporary name and renamed, and ``latest`` is rewritten the same way
only after its checkpoint is whole, so a run killed at any moment resumes from a complete one.
Data order is fixed by the mixture and nothing else draws random numbers, so on CPU a resumed
run gives bit-identical losses to one that was never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Callable

import torch
from tokenizers import Tokenizer

from corpus.files import write_text_atomic
from mixer.dataset import PackedBatch, PhaseDataset, StreamState
from mixer.stream import PAD_SOURCE, PhaseInfo, read_phase_info
from mixer.tokenizer import SpecialTokens, load_tokenizer
from trainer.board import Board
from trainer.distributed import (
    World,
    full_state,
    is_sharded,
    join_world,
    leave_world,
    mean_over_ranks,
    norm_value,
    restore_state,
    wrap,
)
from trainer.evals import fim_exact_match, passkey_accuracy, perplexity
from trainer.model import IGNORE, Decoder, document_starts
from trainer.rope import rope_frequencies
from trainer.schedule import lr_at
from trainer.spec import OptimizerSpec, PhaseSpec, TrainSpec
from trainer.throughput import flops_per_token, peak_flops

Progress = Callable[[str], None]


class NonFiniteError(FloatingPointError):
    """A step whose loss or gradient norm is NaN or infinite; the run stops before updating."""


@dataclass(frozen=True)
class Position:
    """Where a run is; what a checkpoint restores."""

    step: int = 0
    tokens_seen: int = 0
    phase_index: int = 0
    batches_in_phase: int = 0  # batches of the current phase consumed: the stream's resume point


@dataclass(frozen=True)
class PlannedPhase:
    spec: PhaseSpec
    info: PhaseInfo
    steps: int
    first_token: int  # tokens seen across the run when this phase starts
    held_out: int  # batches at the end of the built phase kept out of training, for evaluation
    world_size: int = 1  # data-parallel ranks, each taking batch_size sequences a step

    @property
    def tokens_per_step(self) -> int:
        """Tokens one optimizer step takes across all ranks."""
        return self.spec.batch_size * self.spec.seq_len * self.world_size

    @property
    def held_out_from(self) -> int:
        """The first sequence of the held-out batches at the end of the built phase."""
        return (self.info.n_sequences // self.spec.batch_size - self.held_out) * self.spec.batch_size

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    def stream_state(self, batches: int) -> StreamState:
        """The stream's state after ``batches`` steps of this phase (by every rank)."""
        return self.state_at(batches * self.tokens_per_step)

    def state_at(self, tokens: int) -> StreamState:
        return StreamState(self.info.name, tokens, self.info.seed, self.info.fingerprint)


@dataclass
class BatchLoss:
    loss: torch.Tensor  # the mean next-token loss, with its graph
    by_source: dict[str, float]
    by_domain: dict[str, float]


# ---------------------------------------------------------------------------------------------
# Setup: checks against the built mixture, device, vocabulary, optimizer


def plan_phases(spec: TrainSpec, world_size: int = 1) -> list[PlannedPhase]:
    """Check every phase against its built mixture phase and count its optimizer steps, each
    taking ``batch_size`` sequences on each of ``world_size`` ranks."""
    held_out = spec.eval_batches if spec.eval_every else 0
    planned: list[PlannedPhase] = []
    first_token = 0
    for phase in spec.phases:
        info = read_phase_info(spec.mixture, phase.mixture_phase)
        where = f"phase {phase.name!r}"
        built = f"mixture phase {phase.mixture_phase!r}"
        if info.seq_len != phase.seq_len:
            raise ValueError(f"{where}: seq_len {phase.seq_len} but {built} was packed to {info.seq_len}")
        if phase.tokens is not None and phase.tokens > info.tokens:
            raise ValueError(f"{where}: tokens {phase.tokens:,} but {built} holds {info.tokens:,}")
        steps = (info.n_sequences // phase.batch_size - held_out) // world_size
        if phase.tokens is not None:
            steps = min(steps, phase.tokens // (phase.batch_size * phase.seq_len * world_size))
        if steps <= 0:
            after = f" after holding out {held_out} for evaluation" if held_out else ""
            ranks = f" on each of {world_size} ranks" if world_size > 1 else ""
            raise ValueError(
                f"{where}: {info.n_sequences} sequences give no training batch of {phase.batch_size}{ranks}{after}"
            )
        planned.append(PlannedPhase(phase, info, steps, first_token, held_out, world_size=world_size))
        first_token += planned[-1].tokens
    return planned


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def vocabulary_size(spec: TrainSpec) -> int:
    """``model.vocab_size``, or when it is null the size of the mixture's tokenizer."""
    if spec.model.vocab_size is not None:
        return spec.model.vocab_size
    from tokenizers import Tokenizer  # only this path needs it

    path = Path(spec.mixture) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: model.vocab_size is null and the mixture has no tokenizer")
    return Tokenizer.from_file(str(path)).get_vocab_size()


def build_optimizer(model: Decoder, spec: OptimizerSpec) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: norm gains are not pulled towards zero."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = spec.implementation == "fused"
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, fused=fused, foreach=not fused)


# ---------------------------------------------------------------------------------------------
# Loss


def group_means(
    per_token: torch.Tensor, valid: torch.Tensor, sources: torch.Tensor, info: PhaseInfo
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean loss per source and per domain over the valid targets; groups that are absent from
    the batch are left out."""
    picked = sources[valid]
    weights = per_token[valid].detach().double()
    sums = torch.bincount(picked, weights=weights, minlength=len(info.sources)).tolist()
    counts = torch.bincount(picked, minlength=len(info.sources)).tolist()
    by_source: dict[str, float] = {}
    domain_sums: dict[str, float] = {}
    domain_counts: dict[str, int] = {}
    for name, domain, total, count in zip(info.sources, info.domains, sums, counts):
        if count:
            by_source[name] = round(total / count, 6)
            domain_sums[domain] = domain_sums.get(domain, 0.0) + total
            domain_counts[domain] = domain_counts.get(domain, 0) + count
    by_domain = {name: round(domain_sums[name] / domain_counts[name], 6) for name in sorted(domain_sums)}
    return by_source, by_domain


def batch_loss(model: torch.nn.Module, batch: PackedBatch, info: PhaseInfo, device: torch.device) -> BatchLoss:
    """Next-token loss on one packed batch. The first token of a document is not a target:
    predicting it from the previous document would teach the model a spurious boundary. Nor is
    padding."""
    tokens, segments, sources = (tensor.to(device) for tensor in (batch.tokens, batch.segments, batch.sources))
    not_targets = document_starts(segments)[:, 1:] | (sources[:, 1:] == PAD_SOURCE)
    targets = tokens[:, 1:].masked_fill(not_targets, IGNORE)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        per_token = model(tokens[:, :-1], segments[:, :-1], targets)
    valid = targets != IGNORE
    by_source, by_domain = group_means(per_token, valid, sources[:, 1:], info)
    return BatchLoss(per_token[valid].mean(), by_source, by_domain)


# ---------------------------------------------------------------------------------------------
# Files: JSON lines, checkpoints, summary


def open_jsonl(path: Path, keep_through_step: int) -> IO[str]:
    """``path`` opened for appending, with any lines after ``keep_through_step`` removed first
    (a resumed run writes them again)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line]
        kept = [line for line in lines if json.loads(line)["step"] <= keep_through_step]
        write_text_atomic(path, "".join(line + "\n" for line in kept))
    return path.open("a")


def checkpoint_dir_of(output: Path) -> Path:
    return output / "checkpoints"


def checkpoint_dir(spec: TrainSpec) -> Path:
    return checkpoint_dir_of(Path(spec.output))


def latest_checkpoint(output: Path) -> Path | None:
    """The checkpoint a run's ``checkpoints/latest`` names, or None when it has none."""
    pointer = checkpoint_dir_of(output) / "latest"
    return checkpoint_dir_of(output) / pointer.read_text().strip() if pointer.exists() else None


def phase_name(spec: TrainSpec, position: Position) -> str | None:
    """The phase a position is in; None once every phase is done."""
    return spec.phases[position.phase_index].name if position.phase_index < len(spec.phases) else None


def save_checkpoint(
    spec: TrainSpec, weights: tuple[dict, dict], by_name: bool, position: Position, stream: StreamState | None,
) -> Path:
    """``weights``: the model's and optimizer's state dicts (``trainer.distributed.full_state``),
    the optimizer's keyed by parameter name when ``by_name`` (gathered from a sharded model);
    ``stream``: the state of the phase being read, None once every phase is done."""
    directory = checkpoint_dir(spec)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{position.step:07d}.pt"
    model_state, optimizer_state = weights
    state = {
        "model": model_state,
        "optimizer": optimizer_state,
        "optimizer_by_name": by_name,
        "position": asdict(position),
        "phase": phase_name(spec, position),
        "stream": stream.to_dict() if stream is not None else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        "spec": spec.model_dump(mode="json"),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    write_text_atomic(directory / "latest", path.name + "\n")
    if spec.keep_checkpoints is not None:
        for old in sorted(directory.glob("step-*.pt"))[: -spec.keep_checkpoints]:
            old.unlink()
    return path


def check_resumable(spec: TrainSpec, saved: dict, position: Position, path: Path) -> None:
    """The checkpoint must come from the same model and the same phases up to where it stopped."""
    if saved["model"] != spec.model.model_dump(mode="json"):
        raise ValueError(f"{path}: written for a different model spec; cannot resume")
    keys = ("name", "mixture_phase", "seq_len", "batch_size")
    through = position.phase_index + 1
    then = [{key: phase[key] for key in keys} for phase in saved["phases"][:through]]
    now = [{key: getattr(phase, key) for key in keys} for phase in spec.phases[:through]]
    if then != now:
        raise ValueError(f"{path}: its phases up to the resume point differ from the spec's; cannot resume")


def load_weights(spec: TrainSpec, model: Decoder, sharded: bool = False) -> None:
    """Only the model's weights from ``spec.init_from`` (a checkpoint file, or a run's output
    directory whose ``latest`` one is taken): continued pre-training from a base model, with
    this spec's optimizer and schedule from the start."""
    path = Path(spec.init_from)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: init_from is a directory without checkpoints/latest")
        path = latest
    if not path.is_file():
        raise FileNotFoundError(f"{path}: init_from checkpoint not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = state["model"] if "model" in state else state
    try:
        restore_state(model, None, weights, None, by_name=False, sharded=sharded)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ValueError(f"{path}: its weights do not fit this model spec: {first[1].strip() if len(first) > 1 else first[0]}") from error


def load_checkpoint(
    spec: TrainSpec, model: Decoder, optimizer: torch.optim.Optimizer, sharded: bool = False
) -> tuple[Position, StreamState | None]:
    """Restore the checkpoint ``latest`` names; returns where to continue and the stream state."""
    path = latest_checkpoint(Path(spec.output))
    if path is None:
        raise FileNotFoundError(f"{checkpoint_dir(spec) / 'latest'}: no checkpoint to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    position = Position(**state["position"])
    check_resumable(spec, state["spec"], position, path)
    restore_state(model, optimizer, state["model"], state["optimizer"], state.get("optimizer_by_name", False),
                  sharded)
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    stream = state["stream"]
    return position, StreamState.from_dict(stream) if stream is not None else None


def summarise(spec: TrainSpec, planned: list[PlannedPhase], extra: dict) -> dict:
    """Per phase: steps, tokens and first/last/mean loss. Read back from metrics.jsonl, so a
    resumed run reports the whole run."""
    output = Path(spec.output)
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines() if line]
    phases = []
    for phase in planned:
        losses = [record["loss"] for record in records if record["phase"] == phase.spec.name]
        phases.append({
            "name": phase.spec.name, "seq_len": phase.spec.seq_len, "rope": phase.spec.rope.kind,
            "batch_size": phase.spec.batch_size, "steps": len(losses),
            "tokens": len(losses) * phase.tokens_per_step,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "mean_loss": round(sum(losses) / len(losses), 6) if losses else None,
        })
    evals = output / "eval.jsonl"
    last_eval = evals.read_text().splitlines()[-1:] if spec.eval_every and evals.exists() else []
    return {
        "name": spec.name, **extra,
        "steps": len(records), "tokens": records[-1]["tokens_seen"] if records else 0,
        "phases": phases, "final_eval": json.loads(last_eval[0])["eval"] if last_eval else None,
    }


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class PhaseEndEvals:
    """What a phase's end measures besides held-out loss: passkey retrieval and FIM infilling
    (trainer.evals), with the mixture's tokenizer."""

    tokenizer: Tokenizer
    special: SpecialTokens
    passkey_lengths: list[int]
    code_texts: list[str]  # whole held-out code documents

    @classmethod
    def of(cls, spec: TrainSpec, held_out: dict[str, list[PackedBatch]],
           planned: list[PlannedPhase]) -> "PhaseEndEvals | None":
        """None without evaluation, or without a tokenizer in the mixture to build prompts."""
        path = Path(spec.mixture) / "tokenizer.json"
        if not spec.eval_every or not path.exists():
            return None
        tokenizer = load_tokenizer(path)
        special = SpecialTokens.from_tokenizer(tokenizer)
        lengths = spec.evals.passkey_lengths or sorted({phase.spec.seq_len for phase in planned})
        texts = held_out_code(held_out, planned, tokenizer, special, spec.evals.fim_documents)
        return cls(tokenizer, special, lengths if spec.evals.passkey_trials else [], texts)

    def measure(self, model: Decoder, spec: TrainSpec, seq_len: int, device: torch.device) -> dict:
        results: dict = {}
        if self.passkey_lengths:
            accuracy = passkey_accuracy(model, self.tokenizer, self.special, self.passkey_lengths,
                                        spec.evals.passkey_trials, spec.seed, device)
            results["passkey"] = {str(length): value for length, value in accuracy.items()}
        if spec.evals.fim_documents:
            # the held-out batches may hold no code (a small run, a phase without it): n is then 0
            results["fim_exact_match"] = fim_exact_match(
                model, self.tokenizer, self.special, self.code_texts, spec.seed, device,
                max_new_tokens=spec.evals.fim_max_new_tokens, max_context=seq_len,
            ) if self.code_texts else {"exact_match": None, "n": 0}
        return results


MIN_FIM_TOKENS = 32  # a code fragment shorter than this has too little to infill from


def held_out_code(held_out: dict[str, list[PackedBatch]], planned: list[PlannedPhase], tokenizer: Tokenizer,
                  special: SpecialTokens, limit: int) -> list[str]:
    """Up to ``limit`` code texts from the held-out batches: each run of one code document in a
    row (a whole document, or the part of a long one the row holds) of at least
    ``MIN_FIM_TOKENS`` tokens, without FIM sentinels (not already a FIM example)."""
    sentinels = {special.fim_prefix, special.fim_middle, special.fim_suffix}
    texts: list[str] = []
    for phase in planned:
        code = {index for index, domain in enumerate(phase.info.domains) if domain == "code"}
        for batch in held_out.get(phase.spec.name, []):
            for tokens, segments, sources in zip(batch.tokens.tolist(), batch.segments.tolist(),
                                                 batch.sources.tolist()):
                starts = [0, *(i for i in range(1, len(segments)) if segments[i] != segments[i - 1])]
                for start, end in zip(starts, [*starts[1:], len(segments)]):
                    ids = tokens[start:end]
                    if ids[-1] == special.eod:
                        ids = ids[:-1]
                    if sources[start] in code and len(ids) >= MIN_FIM_TOKENS and not sentinels.intersection(ids):
                        texts.append(tokenizer.decode(ids, skip_special_tokens=False))
                    if len(texts) >= limit:
                        return texts
    return texts


def load_held_out(spec: TrainSpec, planned: list[PlannedPhase]) -> dict[str, list[PackedBatch]]:
    """The last ``held_out`` batches of every phase's built data, which training never reads."""
    held_out: dict[str, list[PackedBatch]] = {}
    for phase in planned:
        if phase.held_out:
            stream = PhaseDataset.from_built(spec.mixture, phase.spec.mixture_phase, phase.spec.batch_size,
                                             state=phase.state_at(phase.held_out_from * phase.spec.seq_len))
            held_out[phase.spec.name] = list(stream)
    return held_out


@dataclass
class Run:
    """What a training run holds between steps; ``run_phase`` and ``step`` advance it."""

    spec: TrainSpec
    planned: list[PlannedPhase]
    model: Decoder
    optimizer: torch.optim.AdamW
    device: torch.device
    metrics: IO[str] | None  # None on the ranks that do not write
    evals: IO[str] | None  # None when eval_every is not set, or on the ranks that do not write
    say: Progress
    held_out: dict[str, list[PackedBatch]] = field(default_factory=dict)
    resumed_stream: StreamState | None = None  # from the checkpoint a resumed run started at
    board: Board = field(default_factory=lambda: Board(None, 0))
    peak_flops: float | None = None  # the device's, for MFU; None: not reported
    world: World = field(default_factory=World)
    phase_end_evals: PhaseEndEvals | None = None
    trainable: torch.nn.Module | None = None  # what a step calls: the model, or its DDP wrapper
    sharded: bool = False  # FSDP2 across ranks: checkpoints gather the state first
    started: float = field(default_factory=time.perf_counter)
    step_started: float = field(default_factory=time.perf_counter)

    def stream(self, phase: PlannedPhase, position: Position) -> PhaseDataset:
        """The phase's data from ``position`` on. On resume, from the checkpoint's state, so a
        mixture rebuilt from other inputs is caught (PhaseDataset checks the fingerprint)."""
        state = phase.stream_state(position.batches_in_phase)
        if self.resumed_stream is not None and self.resumed_stream.phase == state.phase:
            if self.resumed_stream.tokens_consumed != state.tokens_consumed:
                raise ValueError(f"checkpoint stream state {self.resumed_stream} disagrees with its "
                                 f"position ({position.batches_in_phase} batches)")
            state = self.resumed_stream
        self.resumed_stream = None
        return PhaseDataset.from_built(
            self.spec.mixture, phase.spec.mixture_phase, phase.spec.batch_size, rank=self.world.rank,
            world_size=self.world.size, state=state, allow_mixture_change=self.spec.allow_mixture_change,
        )

    @property
    def total_tokens(self) -> int:
        return sum(phase.tokens for phase in self.planned)

    def run_phase(self, position: Position) -> Position:
        """Train the phase ``position`` is in, from its stream position to its end."""
        index = position.phase_index
        phase = self.planned[index]
        head_dim, base = self.spec.model.head_dim, self.spec.model.rope_base
        self.model.set_rope(*rope_frequencies(head_dim, base, phase.spec.rope, phase.spec.seq_len))
        self.say(f"train[{phase.spec.name}] phase {index + 1}/{len(self.planned)}: "
                 f"seq_len {phase.spec.seq_len}, rope {phase.spec.rope.kind}, "
                 f"steps {position.batches_in_phase + 1}..{phase.steps}")
        batches = iter(self.stream(phase, position))
        self.step_started = time.perf_counter()
        while position.batches_in_phase < phase.steps:
            position = self.step(phase, next(batches), position)
        position = Position(position.step, position.tokens_seen, index + 1, 0)
        self.flush()
        self.checkpoint(position)
        return position

    def checkpoint(self, position: Position) -> None:
        weights = full_state(self.model, self.optimizer, self.sharded)  # every rank: it may gather
        if not self.world.main:
            return
        after_last = position.phase_index >= len(self.planned)
        stream = None if after_last else self.planned[position.phase_index].stream_state(position.batches_in_phase)
        save_checkpoint(self.spec, weights, self.sharded, position, stream)

    def step(self, phase: PlannedPhase, batch: PackedBatch, before: Position) -> Position:
        rewarm_from = phase.first_token if phase.spec.rewarm else None
        peak = self.spec.optimizer.lr
        lr = lr_at(before.tokens_seen, self.total_tokens, self.spec.schedule, peak, rewarm_from)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        result = batch_loss(self.trainable or self.model, batch, phase.info, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        clip = self.spec.optimizer.grad_clip or math.inf  # inf: measure the norm, clip nothing
        grad_norm = norm_value(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        # the gradients are averaged over the ranks already; the logged loss is averaged too
        loss = mean_over_ranks(result.loss.item(), self.world, self.device)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):  # stop before the update
            raise NonFiniteError(self.non_finite(phase, before, result, loss, grad_norm))
        self.optimizer.step()

        position = Position(
            before.step + 1, before.tokens_seen + phase.tokens_per_step,
            before.phase_index, before.batches_in_phase + 1,
        )
        now = time.perf_counter()
        tokens_per_s = phase.tokens_per_step / max(now - self.step_started, 1e-9)
        self.step_started = now
        record = {
            "phase": phase.spec.name, "step": position.step, "tokens_seen": position.tokens_seen,
            "lr": lr, "loss": round(loss, 6), "grad_norm": round(grad_norm, 6),
            "loss_by_domain": result.by_domain, "loss_by_source": result.by_source,
            "tokens_per_s": round(tokens_per_s, 1),
        }
        if self.peak_flops is not None:
            flops = flops_per_token(self.spec.model, self.model.embed.num_embeddings, phase.spec.seq_len)
            record["mfu"] = round(flops * tokens_per_s / self.peak_flops, 5)
        self.write(self.metrics, record)
        self.board.write("train", record)
        done = position.batches_in_phase
        last = done == phase.steps
        if done % self.spec.log_every == 0 or last:
            self.say(f"train[{phase.spec.name}] step {done}/{phase.steps} loss {loss:.3f} lr {lr:.2e}")
        # a sharded model's forward needs every rank, so then every rank evaluates (rank 0 writes)
        evaluates = self.spec.eval_every and (self.world.main or self.sharded)
        if evaluates and (position.step % self.spec.eval_every == 0 or last):
            evaluation = self.evaluate(phase, position, phase_end=last)
            self.write(self.evals, evaluation)
            self.board.write("eval", evaluation)
            self.step_started = time.perf_counter()  # evaluation time is not a step's
        if position.step % self.spec.checkpoint_every == 0 and not last:  # a phase's end saves anyway
            self.flush()
            self.checkpoint(position)
        return position

    @torch.no_grad()
    def evaluate(self, phase: PlannedPhase, position: Position, phase_end: bool) -> dict:
        """Loss and perplexity on every phase's held-out batches under the current RoPE: shows
        what an anneal does to the general data, and how long documents fare before and after
        an extension. At a phase's end, passkey retrieval and FIM exact match too."""
        results = {}
        for planned in self.planned:
            losses = [batch_loss(self.model, batch, planned.info, self.device)
                      for batch in self.held_out[planned.spec.name]]
            loss = sum(item.loss.item() for item in losses) / len(losses)
            by_domain = mean_by_key([item.by_domain for item in losses])
            results[planned.spec.name] = {
                "loss": round(loss, 6), "perplexity": round(perplexity({"all": loss})["all"], 4),
                "loss_by_domain": by_domain, "perplexity_by_domain": perplexity(by_domain),
            }
        line = ", ".join(f"{name} {result['loss']:.3f}" for name, result in results.items())
        record = {"phase": phase.spec.name, "step": position.step, "tokens_seen": position.tokens_seen,
                  "phase_end": phase_end, "eval": results}
        if phase_end and self.phase_end_evals is not None:
            record.update(self.phase_end_evals.measure(self.model, self.spec, phase.spec.seq_len, self.device))
            if "passkey" in record:
                line += "; passkey " + ", ".join(f"{length}: {value:.2f}" for length, value in record["passkey"].items())
            fim = record.get("fim_exact_match")
            if fim is not None:
                line += f"; FIM exact match {fim['exact_match']:.2f} of {fim['n']}" if fim["n"] else \
                    "; FIM exact match: no held-out code"
        self.say(f"eval[{phase.spec.name}] step {position.step}: {line}")
        return record

    def non_finite(self, phase: PlannedPhase, before: Position, result: BatchLoss, loss: float,
                   grad_norm: float) -> str:
        """Where a non-finite loss or gradient came from: the step, the batch's sources and the
        stream position of the batch, so it can be found again."""
        bad = sorted(name for name, value in result.by_source.items() if not math.isfinite(value))
        sources = ", ".join(sorted(result.by_source)) or "none"
        at = phase.stream_state(before.batches_in_phase).tokens_consumed
        return (f"phase {phase.spec.name!r} step {before.step + 1}: loss {loss}, gradient norm {grad_norm}; "
                f"the batch holds sources {sources}" + (f" (non-finite loss in {', '.join(bad)})" if bad else "")
                + f"; it starts {at:,} tokens into mixture phase {phase.info.name!r}; nothing was updated")

    def write(self, stream: IO[str] | None, record: dict) -> None:
        if stream is None:
            return
        record["seconds"] = round(time.perf_counter() - self.started, 3)  # since this process began
        record["time"] = round(time.time(), 3)
        stream.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self.metrics is not None:
            self.metrics.flush()
        if self.evals is not None:
            self.evals.flush()


def mean_by_key(dicts: list[dict[str, float]]) -> dict[str, float]:
    """Per key, the mean over the dicts that have it."""
    values: dict[str, list[float]] = {}
    for item in dicts:
        for key, value in item.items():
            values.setdefault(key, []).append(value)
    return {key: round(sum(found) / len(found), 6) for key, found in sorted(values.items())}


def run_training(spec: TrainSpec, progress: Progress | None = None, resume: bool = False) -> dict:
    """Train through every phase of ``spec``; writes and returns the summary. ``resume``
    continues from the checkpoint ``OUTPUT/checkpoints/latest`` names. Under ``torchrun`` every
    rank calls it; rank 0 writes the outputs and returns the summary, the others ``{"rank": r}``."""
    started = time.perf_counter()
    world, device = join_world(resolve_device(spec.device))
    say = (progress or (lambda line: None)) if world.main else (lambda line: None)
    planned = plan_phases(spec, world.size)
    output = Path(spec.output)
    output.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(spec.seed)
    model = Decoder(spec.model, vocabulary_size(spec)).to(device)
    if spec.compile:
        model.compile_blocks()
    sharded = is_sharded(world, spec.data_parallel == "fsdp")
    trainable = wrap(model, world, device, sharded)  # before the optimizer: sharding replaces parameters
    optimizer = build_optimizer(model, spec.optimizer)
    if resume:
        position, resumed_stream = load_checkpoint(spec, model, optimizer, sharded)
    else:
        position, resumed_stream = Position(), None
        if spec.init_from is not None:
            load_weights(spec, model, sharded)
            say(f"train: weights from {spec.init_from}; optimizer and schedule start afresh")
    total = sum(phase.tokens for phase in planned)
    ranks = f" x {world.size} ranks" if world.size > 1 else ""
    say(f"train: {model.parameter_count():,} parameters on {device}{ranks}, {total:,} tokens in "
        f"{len(planned)} phases" + (f", resuming after step {position.step}" if resume else ""))

    writes = world.main  # one rank writes what the run produces
    evals = open_jsonl(output / "eval.jsonl", position.step) if spec.eval_every and writes else nullcontext()
    metrics = open_jsonl(output / "metrics.jsonl", position.step) if writes else nullcontext()
    with metrics as metrics_file, evals as eval_file:
        board = Board(output / "tensorboard" if spec.tensorboard and writes else None, first_step=position.step + 1)
        evaluates = writes or sharded
        held_out = load_held_out(spec, planned) if evaluates else {}
        run = Run(spec, planned, model, optimizer, device, metrics_file, eval_file, say,
                  held_out=held_out, resumed_stream=resumed_stream,
                  board=board, peak_flops=peak_flops(device, spec.peak_tflops), world=world,
                  trainable=trainable, sharded=sharded,
                  phase_end_evals=PhaseEndEvals.of(spec, held_out, planned) if evaluates else None,
                  started=started)
        try:
            while position.phase_index < len(planned):
                position = run.run_phase(position)
        finally:
            board.close()
    leave_world(world)
    if not writes:
        return {"rank": world.rank}

    summary = summarise(spec, planned, {
        "device": str(device), "world_size": world.size, "parameters": model.parameter_count(),
        "total_tokens": total, "wall_seconds": round(time.perf_counter() - started, 1),
    })
    write_text_atomic(output / "summary.json", json.dumps(summary, indent=2) + "\n")
    from trainer.plots import plot_run  # matplotlib only once the run is done

    say(f"train: plots in {output / 'plots'}: " + ", ".join(path.name for path in plot_run(output)))
    return summary
