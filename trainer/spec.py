"""Contract 4: the train spec, validated at the door.

Per phase: which built mixture phase it consumes, its sequence length, RoPE scaling and batch
size; one LR schedule runs across all phases as a function of tokens seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.specfile import load_spec, repeated

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    vocab_size: int | None = Field(default=None, gt=0)  # None: the mixture tokenizer's size
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
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("the head dimension must be even for RoPE")
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
    lr: float = Field(default=3e-3, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0.0)
    weight_decay: float = Field(default=0.1, ge=0.0)
    grad_clip: float | None = Field(default=1.0, gt=0.0)


class _Schedule(_Strict):
    warmup_tokens: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(default=0.0, ge=0.0, le=1.0)


class ConstantSchedule(_Schedule):
    kind: Literal["constant"]


class LinearSchedule(_Schedule):
    kind: Literal["linear"]


class CosineSchedule(_Schedule):
    kind: Literal["cosine"]


class InverseSqrtSchedule(_Schedule):
    kind: Literal["inverse_sqrt"]


class WsdSchedule(_Schedule):
    """Warmup-stable-decay (MiniCPM, Hu et al. 2024): flat, then a decay over the last
    ``decay_fraction`` of the tokens."""

    kind: Literal["wsd"]
    decay_fraction: float = Field(default=0.2, gt=0.0, le=1.0)
    decay_shape: Literal["linear", "cosine", "1-sqrt", "exponential"] = "linear"


class MultiStepSchedule(_Schedule):
    """Step drops at fractions of the tokens (DeepSeek LLM: to 31.6% at 80%, 10% at 90%)."""

    kind: Literal["multi_step"]
    milestones: list[float] = Field(default_factory=lambda: [0.8, 0.9])
    factors: list[float] = Field(default_factory=lambda: [0.316, 0.1])

    @model_validator(mode="after")
    def _steps(self) -> "MultiStepSchedule":
        if len(self.milestones) != len(self.factors):
            raise ValueError("milestones and factors must have the same length")
        if self.milestones != sorted(self.milestones) or not all(0 < m < 1 for m in self.milestones):
            raise ValueError("milestones must be increasing fractions in (0, 1)")
        return self


ScheduleSpec = Annotated[
    Union[
        ConstantSchedule, LinearSchedule, CosineSchedule, InverseSqrtSchedule, WsdSchedule,
        MultiStepSchedule,
    ],
    Field(discriminator="kind"),
]


class RopeSpec(_Strict):
    """RoPE scaling of one phase; see trainer/rope.py for each method's formula."""

    kind: Literal["none", "abf", "pi", "ntk", "yarn"] = "none"
    base: float | None = Field(default=None, gt=1.0)  # abf: the new base
    factor: float | None = Field(default=None, ge=1.0)  # pi, ntk, yarn: the extension ratio s
    original_context: int | None = Field(default=None, gt=0)  # yarn: pre-extension length
    beta_fast: float = Field(default=32.0, gt=0.0)  # yarn: rotations above which dims stay
    beta_slow: float = Field(default=1.0, gt=0.0)  # yarn: rotations below which dims interpolate

    @model_validator(mode="after")
    def _parameters(self) -> "RopeSpec":
        if self.kind == "abf" and self.base is None:
            raise ValueError("rope kind 'abf' needs 'base'")
        if self.kind in ("pi", "ntk", "yarn") and self.factor is None:
            raise ValueError(f"rope kind {self.kind!r} needs 'factor'")
        if self.kind == "yarn" and self.original_context is None:
            raise ValueError("rope kind 'yarn' needs 'original_context'")
        return self


class PhaseSpec(_Strict):
    name: Name
    mixture_phase: Name
    seq_len: int = Field(gt=1)
    batch_size: int = Field(gt=0)  # sequences per optimizer step
    tokens: int | None = Field(default=None, gt=0)  # cap on what the built phase holds
    rope: RopeSpec = Field(default_factory=RopeSpec)


class TrainSpec(_Strict):
    name: Name
    mixture: str  # a built mixture directory (mixer.build)
    output: str
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=lambda: ConstantSchedule(kind="constant"))
    phases: list[PhaseSpec] = Field(min_length=1)
    checkpoint_every: int = Field(default=100, gt=0)  # steps
    log_every: int = Field(default=10, gt=0)  # steps between progress lines

    @model_validator(mode="after")
    def _unique_phases(self) -> "TrainSpec":
        duplicates = repeated([phase.name for phase in self.phases])
        if duplicates:
            raise ValueError(f"duplicate phase names {duplicates}")
        return self


def load_train_spec(path: str | Path) -> TrainSpec:
    return load_spec(path, TrainSpec)
