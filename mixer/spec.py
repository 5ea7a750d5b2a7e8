"""Contract 3: the mixture spec, validated at the door by the CLI and the REST API alike."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corpus.schema import DOMAINS
from corpus.specfile import load_spec, repeated


def _as_list(value: Any) -> Any:
    """Selectors accept a scalar where a list is meant: ``domain: web`` == ``domain: [web]``."""
    if value is None or isinstance(value, list):
        return value
    return [value]


class Selector(BaseModel):
    """A structured predicate over curated documents; compiled to parameterised DuckDB SQL."""

    model_config = ConfigDict(extra="forbid")

    domain: list[str] | None = None
    source: list[str] | None = None
    lang: list[str] | None = None
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0)
    max_quality: float | None = Field(default=None, ge=0.0, le=1.0)
    tags_any: list[str] | None = None
    tags_none: list[str] | None = None
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)

    _listify = field_validator("domain", "source", "lang", "tags_any", "tags_none", mode="before")(
        _as_list
    )

    @field_validator("domain")
    @classmethod
    def _known_domains(cls, domains: list[str] | None) -> list[str] | None:
        for domain in domains or []:
            if domain not in DOMAINS:
                raise ValueError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
        return domains

    @model_validator(mode="after")
    def _ranges(self) -> "Selector":
        if self.min_quality is not None and self.max_quality is not None:
            if self.min_quality > self.max_quality:
                raise ValueError("min_quality is greater than max_quality")
        if self.min_tokens is not None and self.max_tokens is not None:
            if self.min_tokens > self.max_tokens:
                raise ValueError("min_tokens is greater than max_tokens")
        return self


class FimSpec(BaseModel):
    """Fill-in-the-middle for one source (:mod:`mixer.fim`). ``level: document`` transforms
    whole documents before packing; ``level: context`` transforms the source's document
    fragments within each packed sequence after packing (Bavarian et al.'s context-level FIM)."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=0.5, ge=0.0, le=1.0)  # share of documents (fragments) transformed
    spm_rate: float = Field(default=0.5, ge=0.0, le=1.0)  # share of those in SPM layout
    level: Literal["document", "context"] = "document"


class RetrievalSpec(BaseModel):
    """Synthetic long-context retrieval for one source (:mod:`mixer.retrieval`): a ``rate`` share
    of its documents, cut to fit one sequence, get ``needles`` key-value facts at random depths
    and end with a question about each."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=0.5, ge=0.0, le=1.0)  # share of the documents taken
    needles: int = Field(default=4, ge=1, le=32)  # facts (and questions) per document


class Packing(BaseModel):
    """How a phase's documents become ``seq_len`` sequences (:mod:`mixer.pack`).

    - ``concat``: end to end, cut every ``seq_len`` tokens; no padding, but documents are split
      at every sequence boundary and the last partial sequence is dropped.
    - ``best_fit``: best-fit decreasing (Ding et al. 2024) within windows of about ``window``
      sequences' worth of documents; only documents longer than ``seq_len`` are split, the
      rest of a sequence is padding (masked out of the loss), and no token is dropped."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["concat", "best_fit"] = "concat"
    window: int = Field(default=1024, gt=0)


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    select: Selector = Field(default_factory=Selector)
    weight: float = Field(ge=0.0)
    max_epochs: float | None = Field(default=None, gt=0.0)
    fim: FimSpec | None = None
    retrieval: RetrievalSpec | None = None

    @model_validator(mode="after")
    def _one_transform(self) -> "SourceSpec":
        if self.fim is not None and self.retrieval is not None:
            raise ValueError(f"source {self.name!r}: fim and retrieval both rewrite a document; give one")
        return self


class Weighting(BaseModel):
    """How a phase's weights become token shares, given each source's size (the tokens its
    selection holds); see ``mixer.plan.effective_weights``.

    - ``weights``: the weights as given.
    - ``temperature``: weight × size^(1/temperature); with equal weights, the temperature
      sampling of multilingual mixtures: 1 is proportional to size, larger flattens toward
      uniform.
    - ``unimax`` (Chung et al. 2023): the budget spread as evenly as the weights say, but no
      source repeated more than its ``max_epochs`` (the source's own, else this one); what a
      small source cannot supply goes to the larger ones."""

    model_config = ConfigDict(extra="forbid")

    scheme: Literal["weights", "temperature", "unimax"] = "weights"
    temperature: float = Field(default=1.0, gt=0.0)
    max_epochs: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _options_of_the_scheme(self) -> "Weighting":
        if self.temperature != 1.0 and self.scheme != "temperature":
            raise ValueError(f"temperature applies to scheme temperature, not {self.scheme}")
        if self.max_epochs is not None and self.scheme != "unimax":
            raise ValueError(f"weighting.max_epochs applies to scheme unimax, not {self.scheme}")
        return self


class Replay(BaseModel):
    """A ``share`` of the phase's budget drawn from an earlier phase's whole mix (its sources,
    replays included, in its planned proportions): the guard against forgetting that
    mid-training recipes keep when they shift the data."""

    model_config = ConfigDict(extra="forbid")

    phase: str
    share: float = Field(gt=0.0, lt=1.0)


class PhaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    tokens: int = Field(gt=0)
    seq_len: int = Field(gt=0)
    sources: list[SourceSpec] = Field(min_length=1)
    weighting: Weighting = Field(default_factory=Weighting)
    replay: Replay | None = None
    packing: Packing = Field(default_factory=Packing)

    @model_validator(mode="after")
    def _weights(self) -> "PhaseSpec":
        total = sum(source.weight for source in self.sources)
        if total <= 0:
            raise ValueError(f"phase {self.name!r}: weights sum to zero")
        duplicates = repeated([source.name for source in self.sources])
        if duplicates:
            raise ValueError(f"phase {self.name!r}: duplicate source names {duplicates}")
        return self


class MixtureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    corpus: list[str] = Field(min_length=1)  # curated outputs (contract 1 directories)
    tokenizer: str  # HF tokenizers JSON file
    seed: int = 0
    phases: list[PhaseSpec] = Field(min_length=1)

    _listify = field_validator("corpus", mode="before")(_as_list)

    @model_validator(mode="after")
    def _unique_phases(self) -> "MixtureSpec":
        duplicates = repeated([phase.name for phase in self.phases])
        if duplicates:
            raise ValueError(f"duplicate phase names {duplicates}")
        for number, phase in enumerate(self.phases):
            if phase.replay is None:
                continue
            earlier = [before.name for before in self.phases[:number]]
            if phase.replay.phase not in earlier:
                raise ValueError(f"phase {phase.name!r}: replay.phase {phase.replay.phase!r} is not an earlier "
                                 f"phase (earlier: {earlier})")
            clashes = repeated([source.name for source in self.sources_of(phase)])
            if clashes:
                raise ValueError(f"phase {phase.name!r}: source names {clashes} clash with the replayed ones")
        for phase in self.phases:
            # concat packing cuts documents at every sequence boundary: a retrieval task's
            # questions would land in another sequence than its facts
            retrieval = [source.name for source in self.sources_of(phase) if source.retrieval is not None]
            if retrieval and phase.packing.method != "best_fit":
                raise ValueError(f"phase {phase.name!r}: sources {retrieval} have retrieval, which needs "
                                 "packing method best_fit (concat would split the tasks)")
        return self

    def sources_of(self, phase: PhaseSpec) -> list[SourceSpec]:
        """The phase's own sources, then with a replay the earlier phase's sources (its replays
        included) renamed ``<earlier phase>.<source>``."""
        if phase.replay is None:
            return list(phase.sources)
        earlier = self.phase(phase.replay.phase)
        return [*phase.sources, *(source.model_copy(update={"name": f"{earlier.name}.{source.name}"})
                                  for source in self.sources_of(earlier))]

    def phase(self, name: str) -> PhaseSpec:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(f"mixture {self.name!r} has no phase {name!r}")


def load_mixture(path: str | Path) -> MixtureSpec:
    """Read a YAML or JSON mixture spec; relative paths in it are relative to the working
    directory. Raises SpecError naming the file and the field."""
    return load_spec(path, MixtureSpec)
