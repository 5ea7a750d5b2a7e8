"""fastText classifiers: the shared machinery (reading labelled inputs, training in a fresh
process, held-out metrics for any number of classes, loading once per process) and the
binary quality classifier built on it. The multi-class domain classifier that uses the same
machinery lives beside its tagger in ``filters/domain.py``.

The recipe is the one DCLM made popular: a binary fastText supervised classifier, reference
text (``__label__hq``) against text one does not want (``__label__lq``), word bigrams, and the
probability of ``__label__hq`` as the score. fastText does the learning; this module adds
what it lacks: reading jsonl/text/Parquet inputs with bad records counted rather than fatal,
one-line normalisation shared by training and prediction, a seeded held-out split with
precision/recall at a fixed threshold (per class and a confusion matrix when there are more
than two), and a report written beside the model.

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
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar

from corpus.files import write_text_atomic
from filters.base import KEEP, Document, DocumentFilter, Verdict

LABEL_PREFIX = "__label__"
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
    """What reading one role's inputs (positive, negative, a domain) found."""

    files: int = 0
    records: int = 0  # every record read, bad ones included
    bad: int = 0  # unparseable, wrong type, unreadable rest of a file
    empty: int = 0  # nothing left after normalisation
    duplicates: int = 0  # same normalised text as an earlier record of the same role
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


@dataclass
class LabelledTexts:
    """Distinct normalised training texts per role (a class's name in messages), and what
    reading them found."""

    texts: dict[str, list[str]]
    counts: dict[str, InputCounts]
    conflicting: int  # distinct texts found under more than one role, dropped from all
    bad_records: list[str] = field(default_factory=list)


def read_labelled(
    inputs: Mapping[str, list[str]], text_fields: Mapping[str, str], progress: Progress = print
) -> LabelledTexts:
    """Read each role's inputs (``text_fields`` names each role's jsonl field / Parquet column)
    and drop every text found under more than one role: a text labelled two ways teaches
    nothing and would make the held-out numbers lie. A ValueError names a role left with fewer
    than the 2 texts a held-out split needs."""
    texts: dict[str, list[str]] = {}
    counts: dict[str, InputCounts] = {}
    bad_records: list[str] = []
    for role, patterns in inputs.items():
        reader = TrainingInputReader(text_fields[role], progress)
        texts[role], counts[role] = reader.read(patterns, role)
        bad_records.extend(reader.bad_records[: MAX_REPORTED_BAD - len(bad_records)])
    # Texts are distinct within a role, so this counts the roles each text is under.
    roles_of = Counter(text for role_texts in texts.values() for text in role_texts)
    conflicting = {text for text, n in roles_of.items() if n > 1}
    if conflicting:
        texts = {role: [t for t in role_texts if t not in conflicting] for role, role_texts in texts.items()}
    for role, role_texts in texts.items():
        if len(role_texts) < 2:
            raise ValueError(f"{role}: {len(role_texts)} usable documents; need at least 2 to hold one out")
    return LabelledTexts(texts, counts, len(conflicting), bad_records)


# ------------------------------------------------------------------------------- metrics


def _ratio(numerator: int, denominator: int) -> float:
    # No predictions of a class: its precision is 0 by convention, not undefined.
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class ConfusionMatrix:
    """Held-out counts for any number of classes: ``counts[i][j]`` documents of true class
    ``labels[i]`` were predicted as ``labels[j]``."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    @classmethod
    def from_predictions(
        cls, labels: list[str], truth: list[str], predicted: list[str]
    ) -> "ConfusionMatrix":
        index = {label: number for number, label in enumerate(labels)}
        counts = [[0] * len(labels) for _ in labels]
        for true, guess in zip(truth, predicted, strict=True):
            counts[index[true]][index[guess]] += 1
        return cls(tuple(labels), tuple(tuple(row) for row in counts))

    def class_rows(self) -> list[dict]:
        """Precision, recall, F1 (to 4 places) and support per class, in ``labels`` order."""
        rows = []
        for number, name in enumerate(self.labels):
            hit = self.counts[number][number]
            predicted = sum(row[number] for row in self.counts)
            support = sum(self.counts[number])
            precision = _ratio(hit, predicted)
            recall = _ratio(hit, support)
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append({"class": name, "precision": round(precision, 4), "recall": round(recall, 4),
                         "f1": round(f1, 4), "support": support})
        return rows

    @property
    def accuracy(self) -> float:
        total = sum(sum(row) for row in self.counts)
        return round(_ratio(sum(self.counts[i][i] for i in range(len(self.labels))), total), 4)

    def as_dict(self) -> dict:
        rows = self.class_rows()
        return {
            "accuracy": self.accuracy,
            "macro_f1": round(sum(row["f1"] for row in rows) / len(rows), 4),
            "classes": rows,
            "confusion": {"labels": list(self.labels), "matrix": [list(row) for row in self.counts]},
        }


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

    def matrix(self) -> ConfusionMatrix:
        """The same counts as a two-class confusion matrix (rows true, columns predicted)."""
        return ConfusionMatrix(("hq", "lq"), ((self.tp, self.fn), (self.fp, self.tn)))

    def class_rows(self) -> list[dict]:
        """Precision, recall, F1 (to 4 places) and support for hq and for lq."""
        return self.matrix().class_rows()

    @property
    def accuracy(self) -> float:
        return self.matrix().accuracy

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


def check_model_path(output: str | Path) -> Path:
    """``output`` as a Path; a ValueError unless it ends in ``.bin`` or ``.ftz``."""
    output = Path(output)
    if output.suffix not in (".bin", ".ftz"):
        raise ValueError(f"{output}: the model file must end in .bin, or .ftz for a quantised model")
    return output


@dataclass
class TrainedSplit:
    """What ``train_split`` did: documents trained on per label, the held-out texts per label
    (never seen in training), and fastText's own training time."""

    train: dict[str, int]
    held: dict[str, list[str]]
    seconds: float

    def holdout_counts(self) -> dict[str, int]:
        return {label: len(texts) for label, texts in self.held.items()}


def train_split(texts: Mapping[str, list[str]], output: Path, settings: TrainingSettings) -> TrainedSplit:
    """Hold out ``settings.holdout`` of each label's normalised texts (seeded, in label order),
    train a fastText model on the rest in a fresh process, and save it to ``output``
    (quantised when it ends in ``.ftz``). Labels are given without the ``__label__`` prefix."""
    rng = random.Random(settings.seed)
    train: dict[str, int] = {}
    held: dict[str, list[str]] = {}
    lines: list[str] = []
    for label, label_texts in texts.items():
        train_texts, held[label] = split_holdout(label_texts, settings.holdout, rng)
        train[label] = len(train_texts)
        lines.extend(f"{LABEL_PREFIX}{label} {text}" for text in train_texts)
    # fastText reads its input in file order: shuffle so the classes interleave.
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
        seconds = time.perf_counter() - mark
        os.replace(partial, output)
    return TrainedSplit(train, held, seconds)


def report_path(output: str | Path) -> Path:
    """Where a model's report is written: ``<model stem>.report.json`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}.report.json")


def write_report(report: dict, output: Path, started: float) -> dict:
    """Add the total time and the report's own path to ``report``, write it beside the model."""
    report["total_seconds"] = round(time.perf_counter() - started, 2)
    report["report"] = str(report_path(output).resolve())
    write_text_atomic(report_path(output), json.dumps(report, indent=2) + "\n")
    return report


class ClassifierTrainer:
    """Trains a binary fastText quality classifier and writes ``<model>`` plus
    ``<model stem>.report.json``; the report's metrics come from the saved file, so a
    quantised ``.ftz`` is measured as it will be used."""

    def __init__(self, settings: TrainingSettings, progress: Progress = print) -> None:
        self.settings = settings
        self.progress = progress

    def train_files(
        self, positive: list[str], negative: list[str], output: str | Path, text_field: str = "text"
    ) -> dict:
        """Read the inputs, drop texts found on both sides, train, evaluate, save; the report."""
        output = check_model_path(output)
        started = time.perf_counter()
        inputs = read_labelled(
            {"positive": positive, "negative": negative},
            {"positive": text_field, "negative": text_field}, self.progress,
        )
        report = self.train_texts(inputs.texts["positive"], inputs.texts["negative"], output)
        report["inputs"] = {
            "text_field": text_field,
            "positive": {"paths": list(positive), **asdict(inputs.counts["positive"])},
            "negative": {"paths": list(negative), **asdict(inputs.counts["negative"])},
            "conflicting": inputs.conflicting,
        }
        report["bad_records"] = inputs.bad_records
        return write_report(report, output, started)

    def train_texts(self, hq: list[str], lq: list[str], output: Path) -> dict:
        """Split, train and evaluate normalised texts; writes the model, returns the report."""
        split = train_split({"hq": hq, "lq": lq}, output, self.settings)
        classifier = QualityClassifier(output)
        hq_held, lq_held = split.held["hq"], split.held["lq"]
        metrics = HoldoutMetrics.from_scores(
            [True] * len(hq_held) + [False] * len(lq_held), classifier.predict_normalised(hq_held + lq_held)
        )
        self.progress(
            f"classifier: trained on {split.train['hq']} hq + {split.train['lq']} lq documents in "
            f"{split.seconds:.1f}s; held out {len(hq_held)} hq + {len(lq_held)} lq → {output}"
        )
        return {
            "model": str(output.resolve()),
            "quantized": output.suffix == ".ftz",
            "labels": {"positive": LABEL_HQ, "negative": LABEL_LQ},
            "settings": asdict(self.settings),
            "split": {"train": split.train, "holdout": split.holdout_counts()},
            "holdout_metrics": metrics.as_dict(),
            "train_seconds": round(split.seconds, 2),
        }


# ----------------------------------------------------------------------------- inference


class FastTextModel:
    """A trained fastText classifier loaded from a local ``.bin``/``.ftz`` file. Subclasses
    name what they are (``what``) and check that the file's labels are theirs."""

    what = "fastText classifier"

    def __init__(self, path: str | Path) -> None:
        import fasttext

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: {self.what} model not found")
        try:
            self._model = fasttext.load_model(str(self.path))
        except ValueError as error:
            raise ValueError(f"{self.path}: not a fastText model ({error})") from error
        self.labels: list[str] = list(self._model.get_labels())
        self.check_labels(set(self.labels))

    def check_labels(self, labels: set[str]) -> None:
        """Raise a ValueError naming the file when ``labels`` are not this model's kind."""

    def probabilities(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text already passed through ``normalise``: every label's probability."""
        if not texts:
            return []
        all_labels, all_probabilities = self._model.predict(texts, k=len(self.labels))
        # fastText's softmax output can exceed 1 by a rounding hair.
        return [
            {label: min(1.0, max(0.0, float(p))) for label, p in zip(labels, probabilities)}
            for labels, probabilities in zip(all_labels, all_probabilities)
        ]


class QualityClassifier(FastTextModel):
    """A binary quality classifier; ``predict`` is P(hq)."""

    what = "quality classifier"

    def check_labels(self, labels: set[str]) -> None:
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
        return [scores.get(LABEL_HQ, 0.0) for scores in self.probabilities(texts)]


Model = TypeVar("Model", bound=FastTextModel)


@lru_cache(maxsize=8)
def _load(model_type: type[FastTextModel], path: str, mtime_ns: int, size: int) -> FastTextModel:
    return model_type(path)


def load_model(model_type: type[Model], path: str | Path) -> Model:
    """The ``model_type`` model at ``path``, loaded once per process (a rewritten file is
    reloaded, since its modification time and size are part of the cache key)."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"{path}: {model_type.what} model not found")
    stat = resolved.stat()
    return _load(model_type, str(resolved), stat.st_mtime_ns, stat.st_size)  # type: ignore[return-value]


def load_classifier(path: str | Path) -> QualityClassifier:
    """The quality classifier at ``path``, loaded once per process."""
    return load_model(QualityClassifier, path)


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
    "ConfusionMatrix",
    "FastTextModel",
    "HoldoutMetrics",
    "LabelledTexts",
    "QualityClassifier",
    "TrainedSplit",
    "TrainingInputReader",
    "TrainingSettings",
    "check_model_path",
    "classifier_filters",
    "load_classifier",
    "load_model",
    "normalise",
    "read_labelled",
    "train_split",
    "write_report",
]
