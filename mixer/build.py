"""Building a mixture: every phase planned, tokenised, FIM'd, interleaved, packed and written.

Per phase and source, documents are taken in a seeded shuffled order (a fresh order for every
further pass when the source must repeat), each one tokenised with its end-of-document token
appended and, for sources with ``fim``, turned into a FIM document at the source's rate
(:mod:`mixer.fim`). Documents are taken until the source's planned target is reached, the last
one truncated (its head kept, then its end-of-document token, so every document in a stream
still ends with one), so the tokens taken per source equal the plan's targets and sum to the
phase budget exactly. Sources are interleaved by the error-minimising rule of
:mod:`mixer.pack` and packed into ``seq_len`` sequences; the partial last sequence is dropped
and reported, so the tokens *written* per source are the target minus its part of that tail
(under ``seq_len`` tokens per phase in all).

Randomness comes from generators seeded by sha256 of ``(spec.seed, phase, source, purpose)``:
stable across processes and machines (unlike Python's ``hash``), independent per source, and
the shuffle and FIM draws use separate streams, so changing a FIM rate leaves the document
order alone. Nothing depends on the time or on the output directory (the only paths written
are the spec's own), so the same spec and corpora give byte-identical outputs.

Output layout of ``output_dir``::

    mixture.json            the spec, the hashes of its inputs and their fingerprint
    plan.json               the MixturePlan (mixer.plan)
    tokenizer.json          a copy of the mixture's tokenizer
    phases/<phase>/...      one stream per phase (mixer.stream.write_phase)
    report.json             the BuildReport; written last, so its presence means "complete"
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from pydantic import BaseModel
from tokenizers import Tokenizer

from corpus.catalog import format_table
from corpus.files import write_text_atomic
from corpus.manifest import sha256_file
from mixer.corpora import manifest_sha256
from mixer.documents import DocumentCache, SourceDocuments
from mixer.fim import draw_split, fim_token_ids
from mixer.pack import interleave, pack
from mixer.plan import (
    MixturePlan,
    PhasePlan,
    SourcePlan,
    phase_documents,
    plan_mixture,
    write_plan,
)
from mixer.spec import MixtureSpec, PhaseSpec, SourceSpec
from mixer.stream import PhaseInfo, write_phase
from mixer.tokenizer import SpecialTokens, load_tokenizer

Progress = Callable[[str], None]

MIXTURE_FILE = "mixture.json"
PLAN_FILE = "plan.json"
TOKENIZER_FILE = "tokenizer.json"
REPORT_FILE = "report.json"
PHASES_DIR = "phases"


class BuildError(ValueError):
    """An output directory the build must not write into."""


class SourceReport(BaseModel):
    name: str
    domain: str
    tokens_target: int
    tokens_taken: int  # == tokens_target: the last document is truncated to fit
    tokens_written: int  # taken minus this source's part of the dropped tail
    tokens_dropped: int
    documents_available: int
    documents_used: int  # counting every repetition and the truncated last document
    epochs: float  # documents_used / documents_available
    fim_documents: int
    fim_spm_documents: int
    target_share: float  # tokens_target / phase budget
    realised_share: float  # tokens_written / phase tokens_written


class PhaseReport(BaseModel):
    name: str
    seq_len: int
    tokens_budget: int
    n_sequences: int
    tokens_written: int  # n_sequences * seq_len
    tokens_dropped: int  # tokens_budget - tokens_written
    sources: list[SourceReport]


class BuildReport(BaseModel):
    mixture: str
    fingerprint: str
    phases: list[PhaseReport]


@dataclass(frozen=True)
class Encoder:
    """What turns a selected document into its token ids in a stream."""

    tokenizer: Tokenizer
    special: SpecialTokens


@dataclass
class SourceTake:
    """The documents one source contributes to a phase, in the order they were taken."""

    documents: list[np.ndarray] = field(default_factory=list)
    tokens: int = 0
    fim_documents: int = 0
    fim_spm_documents: int = 0


def derive_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator seeded by sha256 of the seed and labels: stable across runs and machines."""
    digest = hashlib.sha256(json.dumps([seed, *labels]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def shuffled_passes(rng: np.random.Generator, n: int) -> Iterator[int]:
    """Document indices, pass after pass, each pass in a new seeded order."""
    while True:
        yield from rng.permutation(n).tolist()


def take_source(
    documents: SourceDocuments,
    source: SourceSpec,
    target: int,
    seed: int,
    phase_name: str,
    encoder: Encoder,
) -> SourceTake:
    """Take shuffled (and possibly FIM'd) documents of one source until ``target`` tokens."""
    if target > 0 and len(documents) == 0:
        raise ValueError(f"source {source.name!r} has no documents for its {target:,}-token target")
    order = shuffled_passes(derive_rng(seed, phase_name, source.name, "shuffle"), len(documents))
    fim_rng = derive_rng(seed, phase_name, source.name, "fim")
    take = SourceTake()
    while take.tokens < target:
        index = next(order)
        body = documents.token_ids(index)
        if source.fim is not None:
            text = documents.texts[index]
            split = draw_split(fim_rng, len(text), source.fim)
            if split is not None:
                body = fim_token_ids(text, split, encoder.tokenizer, encoder.special)
                take.fim_documents += 1
                take.fim_spm_documents += int(split.spm)
        room = target - take.tokens
        tokens = np.append(body[: room - 1], np.uint32(encoder.special.eod))
        take.documents.append(tokens)
        take.tokens += len(tokens)
    return take


def build_phase(
    phase: PhaseSpec,
    sources: list[SourceSpec],
    plan: PhasePlan,
    documents: dict[str, SourceDocuments],
    seed: int,
    encoder: Encoder,
    output_dir: Path,
) -> PhaseReport:
    """Build and write one phase's stream; returns its report."""
    takes = [
        take_source(
            documents[source.name], source, source_plan.tokens_target, seed, phase.name, encoder
        )
        for source, source_plan in zip(sources, plan.sources)
    ]
    targets = [source_plan.tokens_target for source_plan in plan.sources]
    assert [take.tokens for take in takes] == targets, "sources must supply their targets exactly"
    order = interleave([[len(doc) for doc in take.documents] for take in takes], targets)
    packed = pack(
        [takes[source].documents[position] for source, position in order],
        [source for source, _ in order],
        phase.seq_len,
        len(sources),
    )
    info = PhaseInfo(
        name=phase.name,
        seq_len=phase.seq_len,
        n_sequences=packed.tokens.shape[0],
        tokens=int(packed.tokens.size),
        sources=[source.name for source in sources],
        domains=[source_plan.domain for source_plan in plan.sources],
    )
    write_phase(output_dir, info, packed.tokens, packed.segments, packed.sources)
    return PhaseReport(
        name=phase.name,
        seq_len=phase.seq_len,
        tokens_budget=phase.tokens,
        n_sequences=info.n_sequences,
        tokens_written=info.tokens,
        tokens_dropped=phase.tokens - info.tokens,
        sources=[
            source_report(source_plan, take, int(written), int(dropped), phase.tokens, info.tokens)
            for source_plan, take, written, dropped in zip(
                plan.sources, takes, packed.written_by_source, packed.dropped_by_source
            )
        ],
    )


def source_report(
    plan: SourcePlan, take: SourceTake, written: int, dropped: int, budget: int, phase_written: int
) -> SourceReport:
    return SourceReport(
        name=plan.name,
        domain=plan.domain,
        tokens_target=plan.tokens_target,
        tokens_taken=take.tokens,
        tokens_written=written,
        tokens_dropped=dropped,
        documents_available=plan.documents,
        documents_used=len(take.documents),
        epochs=len(take.documents) / plan.documents if plan.documents else 0.0,
        fim_documents=take.fim_documents,
        fim_spm_documents=take.fim_spm_documents,
        target_share=plan.tokens_target / budget,
        realised_share=written / phase_written if phase_written else 0.0,
    )


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def mixture_record(spec: MixtureSpec) -> dict[str, Any]:
    """The spec, the hashes of everything the build reads, and their combined fingerprint."""
    spec_data = spec.model_dump(mode="json")
    inputs = {
        "spec_sha256": hashlib.sha256(canonical_json(spec_data)).hexdigest(),
        "tokenizer_sha256": sha256_file(spec.tokenizer),
        "corpus_manifests_sha256": [manifest_sha256(corpus) for corpus in spec.corpus],
    }
    fingerprint = hashlib.sha256(canonical_json(inputs)).hexdigest()
    return {"fingerprint": fingerprint, "inputs": inputs, "spec": spec_data}


def prepare_output(output_dir: Path, spec: MixtureSpec) -> None:
    """Refuse a non-empty directory that is not a mixture; in an old mixture, forget its report
    (so an interrupted rebuild never looks complete) and remove phases the spec no longer has."""
    if output_dir.exists() and not output_dir.is_dir():
        raise BuildError(f"{output_dir}: exists and is not a directory")
    is_mixture = (output_dir / MIXTURE_FILE).is_file()
    if output_dir.is_dir() and any(output_dir.iterdir()) and not is_mixture:
        raise BuildError(f"{output_dir}: not empty and not a built mixture; choose another output")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / REPORT_FILE).unlink(missing_ok=True)
    phases = output_dir / PHASES_DIR
    wanted = {phase.name for phase in spec.phases}
    for stale in sorted(phases.iterdir()) if phases.is_dir() else []:
        if stale.name not in wanted:
            shutil.rmtree(stale)


def build_mixture(
    spec: MixtureSpec, output_dir: str, progress: Progress | None = None
) -> BuildReport:
    """Plan, build and write every phase of ``spec`` under ``output_dir``.

    Everything is planned before anything is written, so a PlanError leaves the output alone.
    """
    say = progress or (lambda message: None)
    tokenizer = load_tokenizer(spec.tokenizer)
    encoder = Encoder(tokenizer=tokenizer, special=SpecialTokens.from_tokenizer(tokenizer))
    cache = DocumentCache(list(spec.corpus), tokenizer, progress=progress)
    plan: MixturePlan = plan_mixture(spec, cache)
    record = mixture_record(spec)

    out = Path(output_dir)
    prepare_output(out, spec)
    write_text_atomic(out / MIXTURE_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    write_plan(plan, out / PLAN_FILE)
    shutil.copyfile(spec.tokenizer, out / TOKENIZER_FILE)

    phases: list[PhaseReport] = []
    for phase, phase_plan in zip(spec.phases, plan.phases):
        say(f"mix: building phase {phase.name} ({phase.tokens:,} tokens, seq_len {phase.seq_len})")
        documents = phase_documents(spec, phase, cache)
        report = build_phase(phase, spec.sources_of(phase), phase_plan, documents, spec.seed, encoder, out)
        say(
            f"mix: phase {phase.name}: {report.n_sequences:,} sequences written, "
            f"{report.tokens_dropped} tokens dropped"
        )
        phases.append(report)
    build = BuildReport(mixture=spec.name, fingerprint=record["fingerprint"], phases=phases)
    write_text_atomic(out / REPORT_FILE, build.model_dump_json(indent=2) + "\n")
    from mixer.composition import COMPOSITION_FILE, draw_composition  # matplotlib only when building

    draw_composition(build, out / COMPOSITION_FILE)
    return build


def report_rows(report: BuildReport) -> list[dict]:
    return [
        {
            "phase": phase.name,
            "source": source.name,
            "domain": source.domain,
            "target": source.tokens_target,
            "written": source.tokens_written,
            "dropped": source.tokens_dropped,
            "docs": source.documents_used,
            "epochs": round(source.epochs, 2),
            "fim": source.fim_documents,
            "share": round(source.target_share, 4),
            "realised": round(source.realised_share, 4),
        }
        for phase in report.phases
        for source in phase.sources
    ]


def format_report_table(report: BuildReport) -> str:
    totals = "\n".join(
        f"phase {phase.name}: {phase.n_sequences:,} sequences x {phase.seq_len} = "
        f"{phase.tokens_written:,} tokens written, {phase.tokens_dropped} dropped"
        for phase in report.phases
    )
    return format_table(report_rows(report)) + f"\n{totals}\nfingerprint {report.fingerprint}"
