"""Contract 4: the train spec, validated at the door.

A spec names a built mixture, a Llama-style model, AdamW, one LR schedule that runs across all
phases as a function of tokens seen, and the phases in order: which built mixture phase each
consumes, its sequence length, batch size and RoPE scaling. Schedules and RoPE methods are
pydantic unions discriminated on ``kind``, so each kind accepts exactly its own parameters and
a typo is an error that names the field, not a silently ignored key.

Everything that can be checked without the mixture on disk is checked here; what needs the
mixture (each phase's packed ``seq_len``, the tokens it holds, the tokenizer's vocabulary) is
checked when a run starts (``trainer.train.plan_phases``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from corpus.specfile import load_spec, repeated

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]
DecayShape = Literal["linear", "cosine", "1-sqrt", "exponential"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Model and optimizer


class ModelSpec(_Strict):
    # Required so a spec says where the vocabulary comes from: an int, or null for the size of
    # the mixture's tokenizer (MIX/tokenizer.json).
    vocab_size: int | None = Field(gt=0)
    d_model: int = Field(default=128, gt=0)
    n_layers: int = Field(default=4, gt=0)
    n_heads: int = Field(default=4, gt=0)
    n_kv_heads: int | None = Field(default=None, gt=0)  # grouped-query attention; None = n_heads
    ffn_hidden: int = Field(default=352, gt=0)
    rope_base: float = Field(default=10_000.0, gt=1.0)
    tie_embeddings: bool = True
    norm_eps: float = Field(default=1e-5, gt=0.0)

    @model_validator(mode="after")
    def _shapes(self) -> "ModelSpec":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"the head dimension d_model/n_heads = {self.head_dim} must be even")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.kv_heads}")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class OptimizerSpec(_Strict):
    kind: Literal["adamw"] = "adamw"
    lr: float = Field(default=3e-3, gt=0.0)  # the peak LR; the schedule scales it
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0.0)
    weight_decay: float = Field(default=0.1, ge=0.0)
    grad_clip: float | None = Field(default=1.0, gt=0.0)  # max global grad norm; null: no clipping
    # fused: one kernel for the whole update (on CPU 4x faster than foreach here); foreach:
    # PyTorch's multi-tensor loop, for bitwise comparison with runs of other tools
    implementation: Literal["fused", "foreach"] = "fused"


# ---------------------------------------------------------------------------------------------
# LR schedules (formulas in trainer/schedule.py). Fractions are of the run's total tokens.


class _Schedule(_Strict):
    warmup_tokens: int = Field(default=0, ge=0)


class _DecayTo(_Schedule):
    min_lr_ratio: Ratio = 0.0  # final LR as a fraction of the peak


def _exponential_needs_a_floor(shape: str, floor: float) -> None:
    if shape == "exponential" and floor <= 0:
        raise ValueError("an exponential decay never reaches 0: set min_lr_ratio > 0")


class ConstantSchedule(_Schedule):
    kind: Literal["constant"]


class LinearSchedule(_DecayTo):
    kind: Literal["linear"]


class CosineSchedule(_DecayTo):
    kind: Literal["cosine"]


class ExponentialSchedule(_Schedule):
    """Geometric decay from the peak to ``min_lr_ratio`` (a fixed factor per token)."""

    kind: Literal["exponential"]
    min_lr_ratio: float = Field(default=0.01, gt=0.0, le=1.0)


class InverseSqrtSchedule(_DecayTo):
    """``sqrt(timescale / t)`` after ``timescale`` tokens (Vaswani et al. 2017; T5)."""

    kind: Literal["inverse_sqrt"]
    timescale_tokens: int | None = Field(default=None, gt=0)  # None: warmup_tokens

    @model_validator(mode="after")
    def _timescale(self) -> "InverseSqrtSchedule":
        if self.timescale_tokens is None and self.warmup_tokens == 0:
            raise ValueError("inverse_sqrt needs timescale_tokens or warmup_tokens > 0")
        return self


class KneeSchedule(_DecayTo):
    """Explore at the peak, then a linear decay (Iyer et al. 2023, explore-exploit)."""

    kind: Literal["knee"]
    explore_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5


class CyclicalSchedule(_Schedule):
    """A triangle wave between the peak and ``min_lr_ratio`` (Smith 2017)."""

    kind: Literal["cyclical"]
    half_cycle_tokens: int = Field(gt=0)
    min_lr_ratio: Ratio = 0.1
    mode: Literal["triangular", "triangular2"] = "triangular"  # triangular2 halves each cycle


class WsdSchedule(_DecayTo):
    """Warmup-stable-decay (MiniCPM, Hu et al. 2024): flat at the peak, then a decay over the
    last ``decay_fraction`` of the tokens."""

    kind: Literal["wsd"]
    decay_fraction: Fraction = 0.2
    decay_shape: DecayShape = "linear"

    @model_validator(mode="after")
    def _floor(self) -> "WsdSchedule":
        _exponential_needs_a_floor(self.decay_shape, self.min_lr_ratio)
        return self


class PowerSchedule(_Schedule):
    """Power scheduler (Shen et al. 2024): ``min(peak, batch_size * a * tokens^b)``, then a
    decay over the last ``decay_fraction``. ``batch_size`` is the law's batch size (the beta of
    the paper), counted here in sequences per step; a and b are the paper's fitted values."""

    kind: Literal["power"]
    a: float = Field(default=4.6, gt=0.0)
    b: float = Field(default=-0.51, lt=0.0)
    batch_size: int = Field(gt=0)
    decay_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    decay_shape: DecayShape = "exponential"
    min_lr_ratio: Ratio = 0.01  # of the LR where the decay starts

    @model_validator(mode="after")
    def _floor(self) -> "PowerSchedule":
        _exponential_needs_a_floor(self.decay_shape, self.min_lr_ratio)
        return self


class MultiStepSchedule(_Schedule):
    """Drops at fractions of the tokens (DeepSeek LLM: to 31.6% at 80%, 10% at 90%)."""

    kind: Literal["multi_step"]
    milestones: list[Fraction] = Field(default_factory=lambda: [0.8, 0.9], min_length=1)
    factors: list[Annotated[float, Field(gt=0.0)]] = Field(default_factory=lambda: [0.316, 0.1])

    @model_validator(mode="after")
    def _steps(self) -> "MultiStepSchedule":
        if len(self.milestones) != len(self.factors):
            raise ValueError("milestones and factors must have the same length")
        if any(later <= earlier for earlier, later in zip(self.milestones, self.milestones[1:])):
            raise ValueError("milestones must be strictly increasing")
        return self


class InfiniteSchedule(_Schedule):
    """Infinite LR schedule (Ibrahim et al. 2024): warmup, a cosine cooldown to a constant LR,
    a long constant stretch, and a final anneal over the last ``anneal_fraction``."""

    kind: Literal["infinite"]
    cooldown_fraction: Fraction = 0.2
    constant_ratio: Fraction = 0.5  # the constant stretch's LR as a fraction of the peak
    anneal_fraction: Fraction = 0.1
    anneal_shape: DecayShape = "exponential"
    min_lr_ratio: Ratio = 0.01  # of the peak, at the end

    @model_validator(mode="after")
    def _parts(self) -> "InfiniteSchedule":
        if self.cooldown_fraction + self.anneal_fraction > 1.0:
            raise ValueError("cooldown_fraction + anneal_fraction must not exceed 1")
        if self.min_lr_ratio > self.constant_ratio:
            raise ValueError("min_lr_ratio must not exceed constant_ratio")
        _exponential_needs_a_floor(self.anneal_shape, self.min_lr_ratio)
        return self


ScheduleSpec = Annotated[
    Union[
        ConstantSchedule, LinearSchedule, CosineSchedule, ExponentialSchedule, InverseSqrtSchedule,
        KneeSchedule, CyclicalSchedule, WsdSchedule, PowerSchedule, MultiStepSchedule,
        InfiniteSchedule,
    ],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------------------------
# RoPE scaling per phase (formulas in trainer/rope.py)


class _Scaled(_Strict):
    # The base the scaling applies to; None: model.rope_base. Setting it combines a base change
    # with the method (e.g. Llama 3.1 and Qwen2.5 extend an ABF base with YaRN).
    base: float | None = Field(default=None, gt=1.0)


class _Factor(_Scaled):
    factor: float = Field(ge=1.0)  # the extension ratio s (new context / original context)


class _ByParts(_Factor):
    original_context: int = Field(gt=0)  # the context the model was trained at before
    alpha: float = Field(default=1.0, gt=0.0)  # below alpha turns over the context: interpolate
    beta: float = Field(default=32.0, gt=0.0)  # above beta turns: keep the frequency
    truncate: bool = True  # floor/ceil the band's edges to whole pairs, as the YaRN authors' code does

    @model_validator(mode="after")
    def _ramp(self) -> "_ByParts":
        if self.beta <= self.alpha:
            raise ValueError("beta must be greater than alpha")
        return self


class NoRope(_Strict):
    kind: Literal["none"]


class AbfRope(_Strict):
    kind: Literal["abf"]
    base: float = Field(gt=1.0)  # the new base


class PiRope(_Factor):
    kind: Literal["pi"]


class NtkRope(_Factor):
    kind: Literal["ntk"]


class DynamicNtkRope(_Scaled):
    kind: Literal["dynamic_ntk"]
    original_context: int = Field(gt=0)  # s = max(1, seq_len / original_context)
    # emozilla's k in base * (k * seq_len / original_context - (k - 1))^(d / (d - 2))
    factor: float = Field(default=1.0, ge=1.0)


class NtkByPartsRope(_ByParts):
    kind: Literal["ntk_by_parts"]


class YarnRope(_ByParts):
    kind: Literal["yarn"]
    attention_factor: float | None = Field(default=None, gt=0.0)  # None: 0.1 ln(s) + 1


class Llama3Rope(_Factor):
    kind: Literal["llama3"]
    original_context: int = Field(gt=0)
    low_freq_factor: float = Field(default=1.0, gt=0.0)
    high_freq_factor: float = Field(default=4.0, gt=0.0)

    @model_validator(mode="after")
    def _band(self) -> "Llama3Rope":
        if self.high_freq_factor <= self.low_freq_factor:
            raise ValueError("high_freq_factor must be greater than low_freq_factor")
        return self


class LongRope(_Factor):
    kind: Literal["longrope"]
    original_context: int = Field(gt=0)
    rescale: list[Annotated[float, Field(gt=0.0)]] = Field(min_length=1)  # one per frequency
    # used up to original_context, rescale beyond it (Phi-3's short and long factors); None: rescale
    short_rescale: list[Annotated[float, Field(gt=0.0)]] | None = None
    attention_factor: float | None = Field(default=None, gt=0.0)  # None: sqrt(1 + ln s / ln L)


RopeSpec = Annotated[
    Union[
        NoRope, AbfRope, PiRope, NtkRope, DynamicNtkRope, NtkByPartsRope, YarnRope, Llama3Rope,
        LongRope,
    ],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------------------------
# Phases and the whole spec


class PhaseSpec(_Strict):
    name: Name
    mixture_phase: Name
    seq_len: int = Field(gt=1)  # must equal the built phase's packed length
    # sequences per optimizer step (per data-parallel rank); or give batch_tokens instead
    batch_size: int = Field(default=None, gt=0, validate_default=False)
    batch_tokens: int | None = Field(default=None, gt=0)  # tokens per step per rank, a multiple of seq_len
    tokens: int | None = Field(default=None, gt=0)  # cap; at most what the built phase holds
    rope: RopeSpec = Field(default_factory=lambda: NoRope(kind="none"))
    rewarm: bool = False  # warm the LR up again over warmup_tokens when this phase starts

    @model_validator(mode="before")
    @classmethod
    def _batch_in_tokens(cls, data: Any) -> Any:
        """``batch_tokens`` becomes ``batch_size`` sequences (and is cleared, so a dumped spec
        loads again), so the rest reads one field."""
        if not isinstance(data, dict):
            return data
        tokens, size, seq_len = data.get("batch_tokens"), data.get("batch_size"), data.get("seq_len")
        if (tokens is None) == (size is None):
            raise ValueError("give the batch as batch_size (sequences) or batch_tokens, one of the two")
        if tokens is not None and isinstance(tokens, int) and isinstance(seq_len, int) and seq_len > 0:
            if tokens % seq_len:
                raise ValueError(f"batch_tokens {tokens} is not a multiple of seq_len {seq_len}")
            data = {**data, "batch_size": tokens // seq_len, "batch_tokens": None}
        return data


class EvalSpec(_Strict):
    """What is measured at every phase's end besides held-out loss (needs the mixture's
    tokenizer; skipped without one): passkey retrieval at several context lengths and FIM
    infilling exact match on held-out code (trainer.evals)."""

    passkey_lengths: list[Annotated[int, Field(gt=16)]] | None = None  # None: every phase's seq_len
    passkey_trials: int = Field(default=8, ge=0)  # 0: no passkey evaluation
    fim_documents: int = Field(default=16, ge=0)  # held-out code documents; 0: no FIM evaluation
    fim_max_new_tokens: int = Field(default=32, gt=0)


class TrainSpec(_Strict):
    name: Name
    mixture: str  # a built mixture directory (mixer.build)
    output: str
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=lambda: ConstantSchedule(kind="constant"))
    phases: list[PhaseSpec] = Field(min_length=1)
    checkpoint_every: int = Field(default=100, gt=0)  # steps; a phase's end is always saved
    keep_checkpoints: int | None = Field(default=None, gt=0)  # newest N kept; None: all
    eval_every: int | None = Field(default=None, gt=0)  # steps; None: no evaluation
    eval_batches: int = Field(default=2, gt=0)  # held out from the end of every phase
    evals: EvalSpec = Field(default_factory=EvalSpec)  # at phase ends, when eval_every is set
    log_every: int = Field(default=10, gt=0)  # steps between progress lines
    # a resume whose mixture was rebuilt from other inputs (another fingerprint) is refused
    # unless this is set: continuing a run on different data should be a decision
    allow_mixture_change: bool = False
    # a checkpoint file or run directory to take the model's weights from (not its optimizer
    # or schedule position): continued pre-training from a base model; ignored on resume
    init_from: str | None = None
    tensorboard: bool = True  # scalars under OUTPUT/tensorboard as well as metrics.jsonl
    peak_tflops: float | None = Field(default=None, gt=0.0)  # for MFU; None: known GPUs' bf16 peak
    # under torchrun: replicate the model (ddp) or shard it, its gradients and optimizer state (fsdp, FSDP2)
    data_parallel: Literal["ddp", "fsdp"] = "ddp"
    # torch.compile each transformer block (trainer.model.Decoder.compile_blocks): the GPU
    # setting for throughput; on CPU it compiles too (with a C compiler), slowly at first
    compile: bool = False

    @field_validator("phases")
    @classmethod
    def _phases(cls, phases: list[PhaseSpec], info: ValidationInfo) -> list[PhaseSpec]:
        duplicates = repeated([phase.name for phase in phases])
        if duplicates:
            raise ValueError(f"duplicate phase names {duplicates}")
        schedule = info.data.get("schedule")
        if schedule is not None and schedule.warmup_tokens == 0:
            rewarmed = [phase.name for phase in phases if phase.rewarm]
            if rewarmed:
                raise ValueError(f"phases {rewarmed} rewarm but schedule.warmup_tokens is 0")
        model = info.data.get("model")
        if model is not None:
            for phase in phases:
                factors = [phase.rope.rescale, phase.rope.short_rescale or phase.rope.rescale] \
                    if isinstance(phase.rope, LongRope) else []
                if any(len(values) != model.head_dim // 2 for values in factors):
                    raise ValueError(
                        f"phase {phase.name!r}: rope.rescale has {len(phase.rope.rescale)} values, "
                        f"the model has head_dim/2 = {model.head_dim // 2} frequencies"
                    )
        return phases


def load_train_spec(path: str | Path) -> TrainSpec:
    """Read a YAML or JSON train spec; a bad one raises ``SpecError`` naming file and field."""
    return load_spec(path, TrainSpec)
