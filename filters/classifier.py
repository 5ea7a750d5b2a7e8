"""fastText quality classifiers: train one from positive and negative examples, load one from
a local path, and score documents with it.

The recipe is the one DCLM made popular: a binary fastText supervised classifier, reference
text (``__label__hq``) against text one does not want (``__label__lq``), word bigrams, and the
probability of ``__label__hq`` as the score. fastText does the learning; this module adds
what it lacks: reading jsonl/text/Parquet inputs with bad records counted rather than fatal,
one-line normalisation shared by training and prediction, a seeded held-out split with
precision/recall at a fixed threshold, and a report written beside the model.

Determinism: fastText's threads update the model without synchronisation, so only
``thread=1`` is reproducible. With it, the same ``seed``, inputs and settings, and each
training in a fresh process (see ``ClassifierTrainer``), two runs write models that predict
identically (``tests/test_classifier.py`` checks this). ``seed`` also drives the held-out
split and the example order.
Nothing here downloads anything: a model is a local ``.bin`` or ``.ftz`` file.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import random
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Mapping

from corpus.files import write_text_atomic
from filters.base import KEEP, Document, DocumentFilter, Verdict

LABEL_HQ = "__label__hq"
LABEL_LQ = "__label__lq"
SCORE_KEY = "quality_classifier"  # the ``scores`` key a classifier's P(hq) is recorded under
THRESHOLD = 0.5  # the held-out metrics call a document hq when P(hq) >= this
MAX_CHARS = 100_000  # of normalised text per document: bounds the cost of one prediction
MAX_REPORTED_BAD = 100  # bad records listed in the report; all are counted
MAX_RECORD_BYTES = 16 * 2**20  # a longer line is a bad record, read without holding it whole

Progress = Callable[[str], None]

_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_TEXT_SUFFIXES = (".txt", ".text")
_PARQUET_SUFFIXES = (".parquet",)
_COMPRESSED = (".gz", ".zst")
_WHITESPACE = re.compile(r"\s+")
# Punctuation becomes its own token so that "here!" and "here" share a feature.
_PUNCTUATION = re.compile(r"([^\w\s])")


def normalise(text: str) -> str:
    """One lowercase line with punctuation split off, as fastText reads one line per example.
    A literal ``__label__`` inside a document would be read as a label, so it is defused."""
    text = text[: MAX_CHARS * 2].replace("__label__", "label ").replace("\x00", " ")
    text = _PUNCTUATION.sub(r" \1 ", text.lower())
    return _WHITESPACE.sub(" ", text).strip()[:MAX_CHARS]


# --------------------------------------------------------------------------- reading inputs


def input_format(path: str | Path) -> str:
    """``jsonl``, ``text`` or ``parquet`` from the file name (``.gz``/``.zst`` allowed on the
    first two); a ValueError naming the file otherwise."""
    name = str(path).lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(_TEXT_SUFFIXES):
        return "text"
    raise ValueError(
        f"{path}: unsupported input; want .jsonl/.ndjson or .txt (optionally .gz/.zst), or .parquet"
    )


def _readable_files(pattern: str) -> list[str]:
    """The supported files a glob matches, sorted; other files are left out."""
    found = []
    for path in glob.glob(pattern, recursive=True):
        try:
            input_format(path)
        except ValueError:
            continue  # e.g. a manifest.json beside the shards: not training text
        if Path(path).is_file():
            found.append(path)
    return sorted(found)


def resolve_inputs(patterns: list[str], role: str) -> list[str]:
    """The files named by paths, folders (searched recursively) and globs, each once, in a
    stable order; a FileNotFoundError naming ``role`` for an entry that matches nothing."""
    if not patterns:
        raise ValueError(f"{role}: no input given")
    files: dict[str, None] = {}  # ordered and unique
    for pattern in patterns:
        if Path(pattern).is_file():
            input_format(pattern)  # a file named outright must be readable, not skipped
            found = [pattern]
        elif Path(pattern).is_dir():
            found = _readable_files(os.path.join(pattern, "**", "*"))
        else:
            found = _readable_files(pattern)
        if not found:
            raise FileNotFoundError(f"{role}: no readable input file matches {pattern!r}")
        files.update(dict.fromkeys(found))
    return list(files)


@dataclass
class InputCounts:
    """What reading one side (positive or negative) found."""

    files: int = 0
    records: int = 0  # every record read, bad ones included
    bad: int = 0  # unparseable, wrong type, unreadable rest of a file
    empty: int = 0  # nothing left after normalisation
    duplicates: int = 0  # same normalised text as an earlier record of the same side
    used: int = 0  # distinct texts kept for training or held-out evaluation


class TrainingInputReader:
    """Reads training texts, normalised and distinct. A bad record is reported on one line
    naming its file and line (or row), counted, and skipped; it never stops the run."""

    def __init__(self, text_field: str = "text", progress: Progress = print) -> None:
        self.text_field = text_field
        self.progress = progress
        self.bad_records: list[str] = []  # the first MAX_REPORTED_BAD, for the report

    def read(self, patterns: list[str], role: str) -> tuple[list[str], InputCounts]:
        counts = InputCounts()
        seen: set[str] = set()
        texts: list[str] = []
        for path in resolve_inputs(patterns, role):
            counts.files += 1
            for location, text, error in self._records(path):
                counts.records += 1
                if error is not None:
                    self._bad(counts, f"{path}: {location}: {error}")
                    continue
                normalised = normalise(text)
                if not normalised:
                    counts.empty += 1
                elif normalised in seen:
                    counts.duplicates += 1
                else:
                    seen.add(normalised)
                    texts.append(normalised)
        counts.used = len(texts)
        return texts, counts

    def _bad(self, counts: InputCounts, message: str) -> None:
        counts.bad += 1
        if len(self.bad_records) < MAX_REPORTED_BAD:
            self.bad_records.append(message)
            self.progress(f"classifier: skipped bad record {message}")

    def _records(self, path: str) -> Iterator[tuple[str, str, str | None]]:
        """(location, text, error) per record; error is None for a good one."""
        kind = input_format(path)
        if kind == "jsonl":
            yield from self._jsonl(path)
        elif kind == "text":
            yield from self._text(path)
        else:
            yield from self._parquet(path)

    def _jsonl(self, path: str) -> Iterator[tuple[str, str, str | None]]:
        # The curation reader, so a training file fails exactly as a curated source would.
        from pipelines.readers.jsonl import read_jsonl

        source = {"name": "classifier", "kind": "auto", "text_field": self.text_field,
                  "id_field": None, "max_document_bytes": MAX_RECORD_BYTES}
        for record in read_jsonl(source, path):
            yield record["location"], record["text"] or "", record["error"]

    def _text(self, path: str) -> Iterator[tuple[str, str, str | None]]:
        from pipelines.readers.streams import bounded_lines, open_binary

        last = 0
        try:
            with open_binary(path) as handle:
                for line in bounded_lines(handle, MAX_RECORD_BYTES):
                    last = line.number
                    location = f"line {line.number}"
                    if line.oversized:
                        yield location, "", f"line is {line.size:,} bytes, over {MAX_RECORD_BYTES:,}"
                    elif line.data.strip():  # blank lines are not documents
                        try:
                            yield location, line.data.decode("utf-8"), None
                        except UnicodeDecodeError as error:
                            yield location, "", f"invalid UTF-8 at byte {error.start}"
        except (OSError, EOFError, ValueError) as error:
            yield f"after line {last}", "", f"unreadable file: {error}"

    def _parquet(self, path: str) -> Iterator[tuple[str, str, str | None]]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            yield "whole file", "", f"unreadable Parquet: {error}"
            return
        names = parquet.schema_arrow.names
        if self.text_field not in names:
            # A whole file without the column is a wrong --text-field, not a bad record.
            raise ValueError(
                f"{path}: no column {self.text_field!r} (columns: {', '.join(names)}); set --text-field"
            )
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=1024, columns=[self.text_field]):
                for value in batch.column(0).to_pylist():
                    row += 1
                    if isinstance(value, str):
                        yield f"row {row}", value, None
                    else:
                        kind = "null" if value is None else type(value).__name__
                        yield f"row {row}", "", f"column {self.text_field!r} is {kind}, not a string"
        except (OSError, ValueError) as error:
            yield f"after row {row}", "", f"unreadable Parquet: {error}"


# ------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class HoldoutMetrics:
    """Confusion counts at ``threshold`` with hq as the positive class."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def from_scores(
        cls, is_hq: list[bool], p_hq: list[float], threshold: float = THRESHOLD
    ) -> "HoldoutMetrics":
        predicted = [p >= threshold for p in p_hq]
        pairs = list(zip(is_hq, predicted))
        return cls(
            threshold=threshold,
            tp=sum(1 for truth, guess in pairs if truth and guess),
            fp=sum(1 for truth, guess in pairs if not truth and guess),
            tn=sum(1 for truth, guess in pairs if not truth and not guess),
            fn=sum(1 for truth, guess in pairs if truth and not guess),
        )

    @staticmethod
    def _ratio(numerator: int, denominator: int) -> float:
        # No predictions of a class: its precision is 0 by convention, not undefined.
        return numerator / denominator if denominator else 0.0

    def class_rows(self) -> list[dict]:
        """Precision, recall, F1 (to 4 places) and support for hq and for lq."""
        rows = []
        # For lq the roles swap: a false hq is a missed lq and a missed hq a false lq.
        for name, hit, false_alarm, miss in (
            ("hq", self.tp, self.fp, self.fn), ("lq", self.tn, self.fn, self.fp)
        ):
            precision = self._ratio(hit, hit + false_alarm)
            recall = self._ratio(hit, hit + miss)
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append({"class": name, "precision": round(precision, 4), "recall": round(recall, 4),
                         "f1": round(f1, 4), "support": hit + miss})
        return rows

    @property
    def accuracy(self) -> float:
        return round(self._ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn), 4)

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "classes": self.class_rows(),
            "confusion": {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn},
        }


# ------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class TrainingSettings:
    """fastText hyperparameters and the split. ``dim`` and ``bucket`` are below fastText's
    defaults (100, 2M) because the input matrix is (words + bucket) × dim floats: the defaults
    make an 800 MB model that every curation worker would load."""

    epochs: int = 5
    lr: float = 0.1
    dim: int = 64
    word_ngrams: int = 2
    bucket: int = 500_000
    min_count: int = 1
    holdout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "dim": self.dim, "word_ngrams": self.word_ngrams,
                    "bucket": self.bucket, "min_count": self.min_count}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be a fraction between 0 and 1 (exclusive), got {self.holdout}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


def split_holdout(texts: list[str], fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """(train, held out): a seeded shuffle, at least one text on each side."""
    order = list(texts)
    rng.shuffle(order)
    n_held = min(len(order) - 1, max(1, round(len(order) * fraction)))
    return order[n_held:], order[:n_held]


def fit_fasttext(train_file: str, model_file: str, params: dict, quantize: bool) -> None:
    """Train a supervised fastText model on one thread (the only reproducible setting) and
    save it; run in a child process by ``ClassifierTrainer``."""
    import fasttext

    model = fasttext.train_supervised(
        input=train_file, loss="softmax", thread=1, verbose=0, **params
    )
    if quantize:
        model.quantize(input=train_file, retrain=False, qnorm=True)
    model.save_model(model_file)


class ClassifierTrainer:
    """Trains a binary fastText quality classifier and writes ``<model>`` plus
    ``<model stem>.report.json``; the report's metrics come from the saved file, so a
    quantised ``.ftz`` is measured as it will be used."""

    def __init__(self, settings: TrainingSettings, progress: Progress = print) -> None:
        self.settings = settings
        self.progress = progress

    @staticmethod
    def report_path(output: str | Path) -> Path:
        output = Path(output)
        return output.with_name(f"{output.stem}.report.json")

    def train_files(
        self, positive: list[str], negative: list[str], output: str | Path, text_field: str = "text"
    ) -> dict:
        """Read the inputs, drop texts found on both sides, train, evaluate, save; the report."""
        output = Path(output)
        if output.suffix not in (".bin", ".ftz"):
            raise ValueError(f"{output}: the model file must end in .bin, or .ftz for a quantised model")
        started = time.perf_counter()
        reader = TrainingInputReader(text_field, self.progress)
        hq, hq_counts = reader.read(positive, "positive")
        lq, lq_counts = reader.read(negative, "negative")
        # A text labelled both ways teaches nothing and would make the held-out numbers lie.
        conflicting = set(hq) & set(lq)
        if conflicting:
            hq = [text for text in hq if text not in conflicting]
            lq = [text for text in lq if text not in conflicting]
        for role, texts in (("positive", hq), ("negative", lq)):
            if len(texts) < 2:
                raise ValueError(f"{role}: {len(texts)} usable documents; need at least 2 to hold one out")
        report = self.train_texts(hq, lq, output)
        report["inputs"] = {
            "text_field": text_field,
            "positive": {"paths": list(positive), **asdict(hq_counts)},
            "negative": {"paths": list(negative), **asdict(lq_counts)},
            "conflicting": len(conflicting),
        }
        report["bad_records"] = reader.bad_records
        report["total_seconds"] = round(time.perf_counter() - started, 2)
        report["report"] = str(self.report_path(output).resolve())
        write_text_atomic(self.report_path(output), json.dumps(report, indent=2) + "\n")
        return report

    def train_texts(self, hq: list[str], lq: list[str], output: Path) -> dict:
        """Split, train and evaluate normalised texts; writes the model, returns the report."""
        settings = self.settings
        rng = random.Random(settings.seed)
        hq_train, hq_held = split_holdout(hq, settings.holdout, rng)
        lq_train, lq_held = split_holdout(lq, settings.holdout, rng)
        # fastText reads its input in file order: shuffle so the classes interleave.
        lines = [f"{LABEL_HQ} {text}" for text in hq_train] + [f"{LABEL_LQ} {text}" for text in lq_train]
        rng.shuffle(lines)
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="midtrain-classifier-") as workdir:
            train_file = os.path.join(workdir, "train.txt")
            with open(train_file, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
            mark = time.perf_counter()
            params = {
                "epoch": settings.epochs, "lr": settings.lr, "dim": settings.dim,
                "wordNgrams": settings.word_ngrams, "bucket": settings.bucket,
                "minCount": settings.min_count, "seed": settings.seed,
            }
            partial = output.with_name(output.name + ".tmp")
            # A fresh interpreter per training: in a process that had already trained fastText
            # models, a later training was seen to stop on NaN where the same one in a new
            # process did not, so only a new process makes the outcome depend on inputs alone.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                try:
                    quantize = output.suffix == ".ftz"
                    pool.submit(fit_fasttext, train_file, str(partial), params, quantize).result()
                except RuntimeError as error:
                    raise ValueError(
                        f"fastText training failed ({error}); "
                        "try another seed, a lower lr or a larger dim/bucket"
                    ) from error
            train_seconds = time.perf_counter() - mark
            os.replace(partial, output)
        classifier = QualityClassifier(output)
        held = hq_held + lq_held
        metrics = HoldoutMetrics.from_scores(
            [True] * len(hq_held) + [False] * len(lq_held), classifier.predict_normalised(held)
        )
        self.progress(
            f"classifier: trained on {len(hq_train)} hq + {len(lq_train)} lq documents in "
            f"{train_seconds:.1f}s; held out {len(hq_held)} hq + {len(lq_held)} lq → {output}"
        )
        return {
            "model": str(output.resolve()),
            "quantized": output.suffix == ".ftz",
            "labels": {"positive": LABEL_HQ, "negative": LABEL_LQ},
            "settings": asdict(settings),
            "split": {
                "train": {"hq": len(hq_train), "lq": len(lq_train)},
                "holdout": {"hq": len(hq_held), "lq": len(lq_held)},
            },
            "holdout_metrics": metrics.as_dict(),
            "train_seconds": round(train_seconds, 2),
        }


# ----------------------------------------------------------------------------- inference


class QualityClassifier:
    """A trained classifier loaded from a local ``.bin``/``.ftz`` file; ``predict`` is P(hq)."""

    def __init__(self, path: str | Path) -> None:
        import fasttext

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: quality classifier model not found")
        try:
            self._model = fasttext.load_model(str(self.path))
        except ValueError as error:
            raise ValueError(f"{self.path}: not a fastText model ({error})") from error
        labels = set(self._model.get_labels())
        if labels != {LABEL_HQ, LABEL_LQ}:
            raise ValueError(
                f"{self.path}: not a quality classifier: labels {sorted(labels)}, "
                f"want {LABEL_HQ} and {LABEL_LQ}"
            )

    def predict(self, text: str) -> float:
        return self.predict_normalised([normalise(text)])[0]

    def predict_many(self, texts: list[str]) -> list[float]:
        return self.predict_normalised([normalise(text) for text in texts])

    def predict_normalised(self, texts: list[str]) -> list[float]:
        """P(hq) for texts already passed through ``normalise``."""
        if not texts:
            return []
        all_labels, all_probabilities = self._model.predict(texts, k=2)
        scores = []
        for labels, probabilities in zip(all_labels, all_probabilities):
            p_hq = dict(zip(labels, probabilities)).get(LABEL_HQ, 0.0)
            # fastText's softmax output can exceed 1 by a rounding hair.
            scores.append(min(1.0, max(0.0, float(p_hq))))
        return scores


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> QualityClassifier:
    return QualityClassifier(path)


def load_classifier(path: str | Path) -> QualityClassifier:
    """The classifier at ``path``, loaded once per process (a rewritten file is reloaded)."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"{path}: quality classifier model not found")
    stat = resolved.stat()
    return _load(str(resolved), stat.st_mtime_ns, stat.st_size)


class ClassifierScorer(DocumentFilter):
    """Records P(hq) as ``scores["quality_classifier"]`` for documents of the domains it has a
    classifier for; never drops (``quality`` thresholds belong in the mixture's selectors)."""

    name = "quality_classifier"
    needs = ("text", "domain")
    adds = (f"scores.{SCORE_KEY}",)

    def __init__(self, classifiers: Mapping[str, QualityClassifier]) -> None:
        self.classifiers = dict(classifiers)

    def applies_to(self, doc: Document) -> bool:
        return doc.domain in self.classifiers

    def check(self, doc: Document) -> Verdict:
        doc.scores[SCORE_KEY] = round(self.classifiers[doc.domain].predict(doc.text), 6)
        return KEEP


def classifier_filters(paths: Mapping[str, str]) -> list[DocumentFilter]:
    """The scorer for a ``{domain: model path}`` map, or nothing when the map is empty."""
    if not paths:
        return []
    return [ClassifierScorer({domain: load_classifier(path) for domain, path in paths.items()})]


__all__ = [
    "ClassifierScorer",
    "ClassifierTrainer",
    "HoldoutMetrics",
    "QualityClassifier",
    "TrainingInputReader",
    "TrainingSettings",
    "classifier_filters",
    "load_classifier",
    "normalise",
]
