"""Building a mixture: every phase planned, tokenised, FIM'd, interleaved, packed and written.

Per phase and source, documents are taken in a seeded shuffled order (a fresh order for every
further pass when the source must repeat), each one tokenised with its end-of-document token
appended and, for sources with document-level ``fim``, turned into a FIM document at the
source's rate (:mod:`mixer.fim`), or for sources with ``retrieval`` into a synthetic retrieval
task that fits one sequence (:mod:`mixer.retrieval`). Documents are taken until the source's
planned target is reached, the last one truncated (its head kept, then its end-of-document
token, so every document in a stream still ends with one), so the tokens taken per source equal
the plan's targets and sum to the phase budget exactly. Sources are interleaved by the
error-minimising rule of :mod:`mixer.pack` and packed into ``seq_len`` sequences by the phase's
``packing``: concat-and-chunk drops the partial last sequence (under ``seq_len`` tokens per
phase), best-fit writes every token and pads instead. Sources with context-level FIM are then
transformed inside each packed sequence. The report counts, per source, the tokens written and
dropped, the documents truncated, the FIM'd documents or fragments and the retrieval documents,
and per phase the padding.

Randomness comes from generators seeded by sha256 of ``(spec.seed, phase, source, purpose)``:
stable across processes and machines (unlike Python's ``hash``), independent per source, and
the shuffle, FIM and retrieval draws use separate streams, so changing a FIM rate leaves the
document order alone. Nothing depends on the time or on the output directory (the only paths
written are the spec's own), so the same spec and corpora give byte-identical outputs.

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
from mixer.fim import ContextFimCounts, draw_split, fim_contexts, fim_layout
from mixer.pack import interleave, pack, pack_best_fit
from mixer.pieces import PieceEncoder
from mixer.plan import (
    MixturePlan,
    PhasePlan,
    phase_documents,
    plan_mixture,
    write_plan,
)
from mixer.retrieval import draw_needles, retrieval_document
from mixer.spec import MixtureSpec, PhaseSpec, SourceSpec
from mixer.stream import PhaseArrays, PhaseInfo, write_phase
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
    tokens_written: int  # real tokens of this source in the phase's sequences
    tokens_dropped: int  # taken but not written: the concat tail, context-FIM overflow
    documents_available: int
    documents_used: int  # counting every repetition and the truncated last document
    documents_truncated: int  # split across sequences, or cut by the dropped tail
    epochs: float  # documents_used / documents_available
    fim_documents: int  # document-level FIM
    fim_spm_documents: int
    fim_fragments: int  # context-level FIM: fragments transformed, and of those SPM
    fim_spm_fragments: int
    fim_skipped: int  # context-level FIM fragments left alone: not whole UTF-8 characters
    retrieval_documents: int = 0  # documents given needles and questions (mixer.retrieval)
    target_share: float  # tokens_target / phase budget
    realised_share: float  # tokens_written / the phase's real tokens written


class PhaseReport(BaseModel):
    name: str
    seq_len: int
    packing: str
    tokens_budget: int
    n_sequences: int
    tokens_written: int  # n_sequences * seq_len, padding included
    tokens_real: int  # tokens_written - padding
    padding: int
    tokens_dropped: int  # summed over sources
    documents_truncated: int
    sources: list[SourceReport]

    @property
    def max_share_error(self) -> float:
        """The largest |realised - target| share over the phase's sources."""
        return max(abs(source.realised_share - source.target_share) for source in self.sources)


class BuildReport(BaseModel):
    mixture: str
    fingerprint: str
    phases: list[PhaseReport]


@dataclass(frozen=True)
class Encoder:
    """What turns a selected document into its token ids in a stream."""

    tokenizer: Tokenizer
    special: SpecialTokens
    pieces: PieceEncoder

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> "Encoder":
        return cls(tokenizer, SpecialTokens.from_tokenizer(tokenizer), PieceEncoder(tokenizer))


@dataclass
class SourceTake:
    """The documents one source contributes to a phase, in the order they were taken."""

    documents: list[np.ndarray] = field(default_factory=list)
    tokens: int = 0
    fim_documents: int = 0
    fim_spm_documents: int = 0
    retrieval_documents: int = 0


def derive_seed(seed: int, *labels: str) -> int:
    """A 128-bit seed from sha256 of the seed and labels: stable across runs and machines."""
    digest = hashlib.sha256(json.dumps([seed, *labels]).encode()).digest()
    return int.from_bytes(digest[:16], "little")


def derive_rng(seed: int, *labels: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *labels))


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
    seq_len: int,
) -> SourceTake:
    """Take shuffled documents of one source until ``target`` tokens, FIM'd or given retrieval
    needles as the source says (a retrieval document fits one ``seq_len`` sequence)."""
    if target > 0 and len(documents) == 0:
        raise ValueError(f"source {source.name!r} has no documents for its {target:,}-token target")
    order = shuffled_passes(derive_rng(seed, phase_name, source.name, "shuffle"), len(documents))
    fim_rng = derive_rng(seed, phase_name, source.name, "fim")
    retrieval_rng = derive_rng(seed, phase_name, source.name, "retrieval")
    take = SourceTake()
    eod = np.asarray([encoder.special.eod], dtype=np.uint32)
    parts: list[np.ndarray] = []  # bodies and end tokens, joined once at the end
    lengths: list[int] = []
    while take.tokens < target:
        index = next(order)
        body = documents.token_ids(index)
        if source.fim is not None and source.fim.level == "document":
            split = draw_split(fim_rng, len(documents.texts[index]), source.fim)
            if split is not None:
                pieces = encoder.pieces.pieces(documents.tokenised(index), [split.start, split.end])
                body = fim_layout(*pieces, split.spm, encoder.special)
                take.fim_documents += 1
                take.fim_spm_documents += int(split.spm)
        if source.retrieval is not None:
            drawn = draw_needles(retrieval_rng, source.retrieval)
            task = drawn and retrieval_document(documents.tokenised(index), drawn, encoder.pieces, seq_len - 1)
            if task is not None:
                body = task
                take.retrieval_documents += 1
        body = body[: target - take.tokens - 1]  # the last document is cut to fit its target
        parts += (body, eod)
        lengths.append(len(body) + 1)
        take.tokens += len(body) + 1
    if parts:
        flat = np.concatenate(parts)
        ends = np.cumsum(lengths).tolist()
        take.documents = [flat[end - length:end] for end, length in zip(ends, lengths)]
    return take


def pack_phase(
    phase: PhaseSpec,
    sources: list[SourceSpec],
    plan: PhasePlan,
    documents: dict[str, SourceDocuments],
    seed: int,
    fingerprint: str,
    encoder: Encoder,
) -> tuple[PhaseArrays, PhaseReport]:
    """One phase's stream, in memory, and its report."""
    takes = [
        take_source(
            documents[source.name], source, source_plan.tokens_target, seed, phase.name, encoder,
            phase.seq_len,
        )
        for source, source_plan in zip(sources, plan.sources)
    ]
    targets = [source_plan.tokens_target for source_plan in plan.sources]
    assert [take.tokens for take in takes] == targets, "sources must supply their targets exactly"
    order = interleave([[len(doc) for doc in take.documents] for take in takes], targets)
    stream_documents = [takes[source].documents[position] for source, position in order]
    stream_sources = [source for source, _ in order]
    if phase.packing.method == "best_fit":
        packed = pack_best_fit(
            stream_documents, stream_sources, phase.seq_len, len(sources), encoder.special.pad,
            window_tokens=phase.packing.window * phase.seq_len,
            shuffle_seed=derive_seed(seed, phase.name, "bins"),
        )
    else:
        packed = pack(stream_documents, stream_sources, phase.seq_len, len(sources))
    context_fim = {
        index: source.fim for index, source in enumerate(sources)
        if source.fim is not None and source.fim.level == "context"
    }
    fim_counts = ContextFimCounts.zeros(len(sources))
    if context_fim:
        packed, fim_counts = fim_contexts(
            packed, context_fim, derive_seed(seed, phase.name, "fim-context"),
            encoder.tokenizer, encoder.special,
        )
    info = PhaseInfo(
        name=phase.name,
        seq_len=phase.seq_len,
        n_sequences=packed.tokens.shape[0],
        tokens=int(packed.tokens.size),
        sources=[source.name for source in sources],
        domains=[source_plan.domain for source_plan in plan.sources],
        fingerprint=fingerprint,
        seed=seed,
        padding=packed.padding,
    )
    real = info.tokens - packed.padding
    source_reports = [
        SourceReport(
            name=source_plan.name,
            domain=source_plan.domain,
            tokens_target=source_plan.tokens_target,
            tokens_taken=take.tokens,
            tokens_written=int(packed.written_by_source[i]),
            tokens_dropped=int(packed.dropped_by_source[i]),
            documents_available=source_plan.documents,
            documents_used=len(take.documents),
            documents_truncated=int(packed.truncated_by_source[i]),
            epochs=len(take.documents) / source_plan.documents if source_plan.documents else 0.0,
            fim_documents=take.fim_documents,
            fim_spm_documents=take.fim_spm_documents,
            fim_fragments=int(fim_counts.fragments[i]),
            fim_spm_fragments=int(fim_counts.spm[i]),
            fim_skipped=int(fim_counts.skipped[i]),
            retrieval_documents=take.retrieval_documents,
            target_share=source_plan.tokens_target / phase.tokens,
            realised_share=int(packed.written_by_source[i]) / real if real else 0.0,
        )
        for i, (source_plan, take) in enumerate(zip(plan.sources, takes))
    ]
    report = PhaseReport(
        name=phase.name,
        seq_len=phase.seq_len,
        packing=phase.packing.method,
        tokens_budget=phase.tokens,
        n_sequences=info.n_sequences,
        tokens_written=info.tokens,
        tokens_real=real,
        padding=packed.padding,
        tokens_dropped=int(packed.dropped_by_source.sum()),
        documents_truncated=int(packed.truncated_by_source.sum()),
        sources=source_reports,
    )
    return PhaseArrays(info, packed.tokens, packed.segments, packed.sources), report


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


@dataclass(frozen=True)
class PlannedMixture:
    """A spec with everything needed to pack any of its phases: its tokenizer, its documents
    (tokenised once, shared by phases), its plan and its fingerprint."""

    spec: MixtureSpec
    encoder: Encoder
    cache: DocumentCache
    plan: MixturePlan
    record: dict[str, Any]

    @classmethod
    def of(cls, spec: MixtureSpec, progress: Progress | None = None) -> "PlannedMixture":
        """Plan ``spec``; raises PlanError (before anything is written) when it cannot be met."""
        tokenizer = load_tokenizer(spec.tokenizer)
        encoder = Encoder.of(tokenizer)
        cache = DocumentCache(list(spec.corpus), tokenizer, progress=progress)
        return cls(spec, encoder, cache, plan_mixture(spec, cache), mixture_record(spec))

    def pack(self, phase: PhaseSpec) -> tuple[PhaseArrays, PhaseReport]:
        """One phase's stream, in memory, and its report."""
        phase_plan = next(planned for planned in self.plan.phases if planned.name == phase.name)
        return pack_phase(
            phase, self.spec.sources_of(phase), phase_plan, phase_documents(self.spec, phase, self.cache),
            self.spec.seed, self.record["fingerprint"], self.encoder,
        )


def phase_on_the_fly(spec: MixtureSpec, phase: str, progress: Progress | None = None) -> PhaseArrays:
    """A phase built in memory, for ``mixer.dataset.PhaseDataset``: the same arrays (and so the
    same stream) as ``build_mixture`` writes, with nothing written."""
    return PlannedMixture.of(spec, progress).pack(spec.phase(phase))[0]


def build_mixture(
    spec: MixtureSpec, output_dir: str, progress: Progress | None = None
) -> BuildReport:
    """Plan, build and write every phase of ``spec`` under ``output_dir``.

    Everything is planned before anything is written, so a PlanError leaves the output alone.
    """
    say = progress or (lambda message: None)
    planned = PlannedMixture.of(spec, progress)
    out = Path(output_dir)
    prepare_output(out, spec)
    write_text_atomic(out / MIXTURE_FILE, json.dumps(planned.record, indent=2, ensure_ascii=False) + "\n")
    write_plan(planned.plan, out / PLAN_FILE)
    shutil.copyfile(spec.tokenizer, out / TOKENIZER_FILE)

    phases: list[PhaseReport] = []
    for phase in spec.phases:
        say(f"mix: building phase {phase.name} ({phase.tokens:,} tokens, seq_len {phase.seq_len})")
        arrays, report = planned.pack(phase)
        write_phase(out, arrays.info, arrays.tokens, arrays.segments, arrays.sources)
        say(
            f"mix: phase {phase.name}: {report.n_sequences:,} sequences written, "
            f"{report.padding} padding, {report.tokens_dropped} tokens dropped, "
            f"{report.documents_truncated} documents truncated"
        )
        phases.append(report)
    build = BuildReport(mixture=spec.name, fingerprint=planned.record["fingerprint"], phases=phases)
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
            "truncated": source.documents_truncated,
            "epochs": round(source.epochs, 2),
            "fim": source.fim_documents + source.fim_fragments,
            "needles": source.retrieval_documents,
            "share": round(source.target_share, 4),
            "realised": round(source.realised_share, 4),
        }
        for phase in report.phases
        for source in phase.sources
    ]


def format_report_table(report: BuildReport) -> str:
    totals = "\n".join(
        f"phase {phase.name} ({phase.packing}): {phase.n_sequences:,} sequences x {phase.seq_len} = "
        f"{phase.tokens_written:,} tokens written ({phase.padding} padding), {phase.tokens_dropped} dropped, "
        f"{phase.documents_truncated} documents truncated, largest share error {phase.max_share_error:.4f}"
        for phase in report.phases
    )
    return format_table(report_rows(report)) + f"\n{totals}\nfingerprint {report.fingerprint}"
