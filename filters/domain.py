"""Domain tagging into contract 1's domains, and the tags that follow from the domain.

A source's ``kind`` hint wins when given. For ``kind: auto`` rules look at markers that are
cheap and reliable on curated text (chat/QA templates, step-by-step reasoning, LaTeX density,
code-shaped lines), and their signals are always kept in ``scores``. When the run names a
domain classifier, its top label decides instead, unless its probability is below a minimum
confidence; then the rules decide and ``scores["domain_from_rules"]`` says so.

The classifier is a multi-class fastText model (one ``__label__<domain>`` per domain it was
trained on) built with ``filters/classifier.py``'s machinery: the same input readers and
normalisation, dedup, texts labelled two ways dropped, a seeded held-out split, training in a
fresh process, and a per-class report (precision/recall/F1 and a confusion matrix) written
beside the model.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

from corpus.schema import DOMAINS
from filters.base import KEEP, Document, DocumentFilter, Verdict
from filters.classifier import (
    LABEL_PREFIX,
    ConfusionMatrix,
    FastTextModel,
    Progress,
    TrainingSettings,
    check_model_path,
    load_model,
    normalise,
    read_labelled,
    train_split,
    write_report,
)
from filters.signals import code_line_fraction, math_density

MIN_CONFIDENCE = 0.5  # below this top-label probability the rules decide
CONFIDENCE_KEY = "domain_confidence"
FROM_RULES_KEY = "domain_from_rules"

_INSTRUCTION = re.compile(
    r"^(###\s*(Instruction|Question|User)|Question:|Q:|User:|<\|user\|>)", re.MULTILINE | re.IGNORECASE
)
_REASONING = re.compile(
    r"(let'?s think step by step|step \d+[:.)]|first,.*then,|therefore,|so the answer is)",
    re.IGNORECASE,
)


def infer_domain(text: str, scores: dict[str, float]) -> str:
    """Rule-based domain for ``kind: auto``; records the signals it used in ``scores``."""
    scores["code_line_fraction"] = code_fraction = code_line_fraction(text)
    scores["math_density"] = math = math_density(text)
    if _INSTRUCTION.search(text[:2000]):
        return "instruction"
    if len(_REASONING.findall(text[:20_000])) >= 2:
        return "reasoning"
    if code_fraction >= 0.5:
        return "code"
    if math >= 0.5:
        return "math"
    return "web"


def probability_key(domain: str) -> str:
    """The ``scores`` key of the domain classifier's probability for ``domain``."""
    return f"domain_{domain}"


class DomainClassifier(FastTextModel):
    """A multi-class fastText domain classifier; ``predict`` maps each domain it knows to its
    probability."""

    what = "domain classifier"

    def check_labels(self, labels: set[str]) -> None:
        known = {LABEL_PREFIX + domain for domain in DOMAINS}
        if len(labels) < 2 or not labels <= known:
            raise ValueError(
                f"{self.path}: not a domain classifier: labels {sorted(labels)}, "
                f"want two or more of {sorted(known)}"
            )

    @property
    def domains(self) -> list[str]:
        return sorted(label.removeprefix(LABEL_PREFIX) for label in self.labels)

    def predict(self, text: str) -> dict[str, float]:
        return self.predict_normalised([normalise(text)])[0]

    def predict_normalised(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text already passed through ``normalise``: {domain: probability}."""
        return [
            {label.removeprefix(LABEL_PREFIX): p for label, p in scores.items()}
            for scores in self.probabilities(texts)
        ]

    @staticmethod
    def top(probabilities: Mapping[str, float]) -> tuple[str, float]:
        """The most probable domain; ties go to the domain listed first in ``DOMAINS``."""
        domain = min(probabilities, key=lambda name: (-probabilities[name], DOMAINS.index(name)))
        return domain, probabilities[domain]


def load_domain_classifier(path: str | Path) -> DomainClassifier:
    """The domain classifier at ``path``, loaded once per process."""
    return load_model(DomainClassifier, path)


class DomainClassifierTrainer:
    """Trains a domain classifier from labelled inputs per domain and writes ``<model>`` plus
    ``<model stem>.report.json`` with held-out precision/recall/F1 per domain and a confusion
    matrix, measured on the saved file."""

    def __init__(self, settings: TrainingSettings, progress: Progress = print) -> None:
        self.settings = settings
        self.progress = progress

    def train_files(
        self,
        labelled: Mapping[str, list[str]],
        output: str | Path,
        text_field: str = "text",
        text_fields: Mapping[str, str] | None = None,
    ) -> dict:
        """``labelled`` maps a domain to its inputs (files, folders, globs); ``text_fields``
        overrides ``text_field`` per domain (e.g. ``{"code": "content"}``). Returns the report."""
        output = check_model_path(output)
        fields = dict(text_fields or {})
        unknown = sorted((set(labelled) | set(fields)) - set(DOMAINS))
        if unknown:
            raise ValueError(f"unknown domain {unknown[0]!r}; known: {', '.join(DOMAINS)}")
        unlabelled = sorted(set(fields) - set(labelled))
        if unlabelled:
            raise ValueError(f"text field given for {unlabelled[0]!r}, which has no labelled input")
        if len(labelled) < 2:
            raise ValueError(f"labelled inputs for {len(labelled)} domain(s); a classifier needs at least 2")
        started = time.perf_counter()
        domains = [domain for domain in DOMAINS if domain in labelled]  # a stable label order
        roles = {domain: f"labelled {domain}" for domain in domains}
        inputs = read_labelled(
            {roles[domain]: list(labelled[domain]) for domain in domains},
            {roles[domain]: fields.get(domain, text_field) for domain in domains},
            self.progress,
        )
        texts = {domain: inputs.texts[roles[domain]] for domain in domains}
        split = train_split(texts, output, self.settings)
        # Measured on the saved file, so a quantised .ftz is measured as it will be used.
        classifier = DomainClassifier(output)
        truth = [domain for domain in domains for _ in split.held[domain]]
        held = [text for domain in domains for text in split.held[domain]]
        predicted = [classifier.top(scores)[0] for scores in classifier.predict_normalised(held)]
        metrics = ConfusionMatrix.from_predictions(domains, truth, predicted)
        self.progress(
            f"domain classifier: trained on {sum(split.train.values())} documents of {len(domains)} "
            f"domains in {split.seconds:.1f}s; held out {len(truth)}, "
            f"accuracy {metrics.accuracy:.3f} → {output}"
        )
        report = {
            "model": str(output.resolve()),
            "quantized": output.suffix == ".ftz",
            "labels": domains,
            "settings": asdict(self.settings),
            "split": {"train": split.train, "holdout": split.holdout_counts()},
            "holdout_metrics": metrics.as_dict(),
            "train_seconds": round(split.seconds, 2),
            "inputs": {
                "text_field": text_field,
                "domains": {
                    domain: {"paths": list(labelled[domain]), "text_field": fields.get(domain, text_field),
                             **asdict(inputs.counts[roles[domain]])}
                    for domain in domains
                },
                "conflicting": inputs.conflicting,
            },
            "bad_records": inputs.bad_records,
        }
        return write_report(report, output, started)


class DomainTagger(DocumentFilter):
    """Sets ``domain`` and the domain-derived tags; never drops. With a ``classifier``,
    ``kind: auto`` documents take its top label when its probability is at least
    ``min_confidence``, and every domain's probability is recorded as ``domain_<name>``."""

    name = "domain"
    needs = ('text', 'kind')
    adds = ('domain', 'tags', 'scores')

    def __init__(
        self, classifier: DomainClassifier | None = None, min_confidence: float = MIN_CONFIDENCE
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence}")
        self.classifier = classifier
        self.min_confidence = min_confidence

    @classmethod
    def from_model(cls, path: str | None, min_confidence: float = MIN_CONFIDENCE) -> "DomainTagger":
        """A tagger with the classifier at ``path`` (loaded once per process), or rules only."""
        return cls(load_domain_classifier(path) if path else None, min_confidence)

    def check(self, doc: Document) -> Verdict:
        if doc.kind in DOMAINS:
            doc.domain = doc.kind
            if doc.domain == "math":
                doc.scores["math_density"] = math_density(doc.text)
        else:
            doc.domain = infer_domain(doc.text, doc.scores)
            if self.classifier is not None:
                self._classify(doc)
        if doc.domain == "code":
            doc.add_tag("fim_eligible")
        if doc.domain == "synthetic":
            doc.add_tag("synthetic")
        return KEEP

    def _classify(self, doc: Document) -> None:
        """Replace the rules' domain by the classifier's top label when it is confident."""
        probabilities = self.classifier.predict(doc.text)
        for domain, probability in probabilities.items():
            doc.scores[probability_key(domain)] = round(probability, 6)
        domain, confidence = self.classifier.top(probabilities)
        doc.scores[CONFIDENCE_KEY] = round(confidence, 6)
        confident = confidence >= self.min_confidence
        doc.scores[FROM_RULES_KEY] = 0.0 if confident else 1.0
        if confident:
            doc.domain = domain


class LongDocumentTagger(DocumentFilter):
    """Tags ``long_doc`` once ``n_tokens`` is known; the threshold is in reference tokens."""

    name = "long_doc"
    needs = ('n_tokens',)
    adds = ('tags',)

    def __init__(self, min_tokens: int = 8192) -> None:
        self.min_tokens = min_tokens

    def check(self, doc: Document) -> Verdict:
        if doc.n_tokens >= self.min_tokens:
            doc.add_tag("long_doc")
        return KEEP
