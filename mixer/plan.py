"""Mixture plans: how many tokens each source contributes to each phase, and how often its
documents must repeat to supply them.

A phase's token budget is split by the sources' normalised weights with largest-remainder
(Hamilton) rounding in exact rational arithmetic, so every phase's targets sum to its budget
exactly and the same spec always rounds the same way (ties go to the earlier source). The
tokens available from a source are counted exactly with the mixture's tokenizer, one
end-of-document token included per document; each shard is tokenised once per tokenizer and
its counts kept on disk (:mod:`mixer.counts`), so a repeated plan reads counts. A source whose selector matches nothing, or
whose target would need more than ``max_epochs`` passes over its documents, is a
:class:`PlanError` that names the phase and source, the best share it could supply and the
repetition its target would need.

Weights become shares by the phase's ``weighting`` (see :func:`effective_weights`): as given,
by temperature over the sources' sizes, or UniMax. A source with weight 0 gets no tokens and
is not checked. Epochs are planned on plain
documents; a FIM document is tokenised in three pieces plus three sentinels, so a source with
FIM reaches its target in slightly fewer passes than planned (the build report has the real
count).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from corpus.catalog import format_table
from mixer.counts import CountCache, count_cache
from mixer.documents import DocumentCache
from mixer.spec import MixtureSpec, PhaseSpec, SourceSpec, Weighting


class Selection(Protocol):
    """What a plan reads of a source's selected documents: :class:`mixer.counts.SelectionCounts`
    (counted, for plans alone) or :class:`mixer.documents.SourceDocuments` (tokenised, for a
    build, which plans with the documents it packs). Both count the same tokens."""

    @property
    def tokens(self) -> int: ...

    def __len__(self) -> int: ...

    def domain_label(self) -> str: ...


class PlanError(ValueError):
    """A mixture that the corpora cannot supply; one line per problem, joined by '; '."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class SourcePlan(BaseModel):
    name: str
    domain: str  # the selected documents' domain, or domains joined by '+'
    weight: float
    target_share: float  # the source's share of the phase (weights after the phase's weighting)
    documents: int
    tokens_available: int  # one pass, end-of-document tokens included
    tokens_target: int
    epochs: float  # tokens_target / tokens_available
    max_epochs: float | None
    fim_rate: float  # 0.0 when the source has no FIM


class PhasePlan(BaseModel):
    name: str
    tokens: int  # the phase budget; sum of the sources' tokens_target
    seq_len: int
    sequences: int  # whole sequences the budget packs into
    tokens_dropped: int  # the last partial sequence, dropped at packing
    sources: list[SourcePlan]


class MixturePlan(BaseModel):
    mixture: str
    tokenizer: str
    seed: int
    phases: list[PhasePlan]


def largest_remainder(total: int, weights: list[float] | list[Fraction]) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` exactly (Hamilton's method,
    ties broken by position)."""
    exact = [Fraction(weight) for weight in weights]
    denominator = sum(exact)
    if total < 0 or denominator <= 0:
        raise ValueError("largest_remainder needs a non-negative total and a positive weight")
    quotas = [total * weight / denominator for weight in exact]
    counts = [int(quota) for quota in quotas]  # floor: quotas are non-negative
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def effective_weights(weighting: Weighting, budget: int, weights: list[float], sizes: list[int],
                      max_epochs: list[float | None]) -> list[Fraction]:
    """The weights the budget is split by, in exact arithmetic so the split is the same on
    every machine. ``sizes`` are the sources' tokens available; ``max_epochs`` their caps.

    UniMax visits the sources from the smallest (ties by position) and gives each its weight's
    share of what is left, but at most ``max_epochs`` passes over it; the last sources take
    the rest. If every source hits its cap the shares sum to less than the budget, and the
    planner then reports the repetition the budget would need."""
    exact = [Fraction(weight) for weight in weights]
    if weighting.scheme == "weights":
        return exact
    if weighting.scheme == "temperature":
        total = sum(sizes) or 1
        return [Fraction(float(weight) * (size / total) ** (1.0 / weighting.temperature)) if size else Fraction(0)
                for weight, size in zip(exact, sizes)]
    shares = [Fraction(0)] * len(weights)
    left, open_weight = Fraction(budget), sum(exact)
    for i in sorted(range(len(weights)), key=lambda i: (sizes[i], i)):
        if not exact[i]:
            continue
        cap = max_epochs[i] if max_epochs[i] is not None else weighting.max_epochs
        share = left * exact[i] / open_weight
        if cap is not None:
            share = min(share, Fraction(cap) * sizes[i])
        shares[i], left, open_weight = share, left - share, open_weight - exact[i]
    return shares


def plan_source(
    phase: PhaseSpec, source: SourceSpec, documents: Selection, target: int, share: float
) -> SourcePlan:
    available = documents.tokens
    return SourcePlan(
        name=source.name,
        domain=documents.domain_label(),
        weight=source.weight,
        target_share=share,
        documents=len(documents),
        tokens_available=available,
        tokens_target=target,
        epochs=target / available if available else (0.0 if target == 0 else float("inf")),
        max_epochs=source.max_epochs if source.max_epochs is not None else phase.weighting.max_epochs,
        fim_rate=source.fim.rate if source.fim else 0.0,
    )


def source_problem(phase: PhaseSpec, plan: SourcePlan) -> str | None:
    """Why the corpora cannot supply ``plan``'s target, or None when they can."""
    if plan.tokens_target == 0:
        return None
    where = f"phase {phase.name!r}, source {plan.name!r}"
    if plan.documents == 0:
        return (
            f"{where}: the selector matches no documents; best achievable share 0 "
            f"of target {plan.target_share:.4f} ({plan.tokens_target:,} tokens would need "
            "infinite repetition)"
        )
    if plan.max_epochs is not None and plan.epochs > plan.max_epochs:
        best = int(plan.max_epochs * plan.tokens_available)
        return (
            f"{where}: needs {plan.epochs:.2f} epochs over its {plan.tokens_available:,} "
            f"tokens to reach {plan.tokens_target:,} but max_epochs is {plan.max_epochs:g}; "
            f"best achievable share {best / phase.tokens:.4f} of target {plan.target_share:.4f} "
            f"({best:,} tokens)"
        )
    return None


def phase_weights(spec: MixtureSpec, phase: PhaseSpec, documents: dict[str, Selection],
                  planned: dict[str, PhasePlan]) -> list[Fraction]:
    """Weights of ``spec.sources_of(phase)``: the phase's own sources by its weighting and,
    with a replay, the earlier phase's planned shares scaled to the replay's share."""
    own = effective_weights(
        phase.weighting, phase.tokens, [source.weight for source in phase.sources],
        [documents[source.name].tokens for source in phase.sources],
        [source.max_epochs for source in phase.sources],
    )
    if phase.replay is None:
        return own
    share = Fraction(phase.replay.share)
    total = sum(own)
    scaled = [weight / total * (1 - share) if total else Fraction(0) for weight in own]
    earlier = planned[phase.replay.phase]
    return scaled + [Fraction(source.tokens_target, earlier.tokens) * share for source in earlier.sources]


def plan_phase(phase: PhaseSpec, sources: list[SourceSpec], documents: dict[str, Selection],
               weights: list[Fraction]) -> PhasePlan:
    """Plan one phase: ``sources`` with their ``weights`` and documents (keyed by source
    name); raises PlanError."""
    if phase.tokens < phase.seq_len:
        raise PlanError([
            f"phase {phase.name!r}: {phase.tokens:,} tokens do not fill one "
            f"{phase.seq_len}-token sequence"
        ])
    if not any(weights):
        raise PlanError([f"phase {phase.name!r}: no source with a positive weight has documents"])
    targets = largest_remainder(phase.tokens, weights)
    total = sum(weights)
    plans = [
        plan_source(phase, source, documents[source.name], target, float(weight / total))
        for source, target, weight in zip(sources, targets, weights)
    ]
    problems = [problem for plan in plans if (problem := source_problem(phase, plan))]
    if problems:
        raise PlanError(problems)
    return PhasePlan(
        name=phase.name,
        tokens=phase.tokens,
        seq_len=phase.seq_len,
        sequences=phase.tokens // phase.seq_len,
        tokens_dropped=phase.tokens % phase.seq_len,
        sources=plans,
    )


def phase_documents(spec: MixtureSpec, phase: PhaseSpec, cache: DocumentCache | CountCache) -> dict[str, Selection]:
    return {
        source.name: cache.get(source.select, label=f"{phase.name}/{source.name}")
        for source in spec.sources_of(phase)
    }


def plan_mixture(spec: MixtureSpec, cache: DocumentCache | CountCache | None = None) -> MixturePlan:
    """Plan every phase in order (a replay needs its earlier phase's plan); problems of all
    phases are reported together in one PlanError. Without ``cache``, tokens are counted
    through the persistent count cache (:mod:`mixer.counts`), not by tokenising."""
    cache = cache or count_cache(spec.corpus, spec.tokenizer)
    planned: dict[str, PhasePlan] = {}
    problems: list[str] = []
    for phase in spec.phases:
        if phase.replay is not None and phase.replay.phase not in planned:
            problems.append(f"phase {phase.name!r}: cannot replay {phase.replay.phase!r}, which has problems")
            continue
        try:
            documents = phase_documents(spec, phase, cache)
            weights = phase_weights(spec, phase, documents, planned)
            planned[phase.name] = plan_phase(phase, spec.sources_of(phase), documents, weights)
        except PlanError as error:
            problems.extend(error.problems)
    if problems:
        raise PlanError(problems)
    return MixturePlan(mixture=spec.name, tokenizer=spec.tokenizer, seed=spec.seed, phases=list(planned.values()))


def plan_rows(plan: MixturePlan) -> list[dict]:
    return [
        {
            "phase": phase.name,
            "source": source.name,
            "domain": source.domain,
            "docs": source.documents,
            "available": source.tokens_available,
            "share": round(source.target_share, 4),
            "target": source.tokens_target,
            "epochs": round(source.epochs, 2),
            "max_epochs": source.max_epochs if source.max_epochs is not None else "-",
            "fim": source.fim_rate,
        }
        for phase in plan.phases
        for source in phase.sources
    ]


def format_plan_table(plan: MixturePlan) -> str:
    totals = "\n".join(
        f"phase {phase.name}: {phase.tokens:,} tokens = {phase.sequences:,} x {phase.seq_len} "
        f"+ {phase.tokens_dropped} dropped"
        for phase in plan.phases
    )
    return format_table(plan_rows(plan)) + "\n" + totals


def write_plan(plan: MixturePlan, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan.model_dump_json(indent=2) + "\n")
    return path
