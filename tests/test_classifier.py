"""fastText quality classifiers: training on real sample text, held-out metrics, determinism,
loading, bad input, the CLI, the curate config and the quality combination."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from api import service
from api.cli import main
from api.demo import write_web_examples
from filters.base import Document
from filters.classifier import (
    SCORE_KEY,
    ClassifierScorer,
    ClassifierTrainer,
    HoldoutMetrics,
    QualityClassifier,
    TrainingInputReader,
    TrainingSettings,
    classifier_filters,
    load_classifier,
    normalise,
)
from filters.langid import bundled_model_path
from filters.quality import HEURISTIC_KEY, HeuristicQuality
from pipelines.config import CurateConfig, QualitySettings

SAMPLE = service.EXAMPLES / "sample"
# The demo's settings: small enough to train in well under a second on the sample.
SMALL = {"epochs": 10, "dim": 32, "bucket": 100_000, "holdout": 0.2}

FRESH_PROSE = (
    "The garbage collector frees memory that is no longer referenced. When an object can no "
    "longer be reached from any variable, the interpreter may reclaim it, and a finalizer can "
    "run before that happens."
)
FRESH_JUNK = "Home | About | Contact | Privacy Policy | Cookie settings. Subscribe to our newsletter!"


def _train(examples: Path, output: Path, seed: int = 0) -> dict:
    clean, junk = examples / "web-clean.jsonl", examples / "web-junk.jsonl"
    return service.train_classifier(
        [str(clean), str(SAMPLE / "synthetic")], [str(junk)], output,
        settings=TrainingSettings(seed=seed, **SMALL), progress=lambda line: None,
    )


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("examples")
    write_web_examples(directory)
    return directory


@pytest.fixture(scope="module")
def trained(examples, tmp_path_factory) -> dict:
    return _train(examples, tmp_path_factory.mktemp("model") / "web.bin")


def test_the_examples_follow_the_ground_truth(examples):
    truth = json.loads((SAMPLE / "ground_truth.json").read_text())["sources"]["web"]
    junk = (examples / "web-junk.jsonl").read_text().splitlines()
    clean = (examples / "web-clean.jsonl").read_text().splitlines()
    assert len(junk) == sum(len(ids) for ids in truth["junk"].values())
    assert len(clean) == truth["documents"] - len(junk)


def test_holdout_precision_recall_reported_and_high(trained):
    metrics = trained["holdout_metrics"]
    rows = {row["class"]: row for row in metrics["classes"]}
    split = trained["split"]
    assert rows["hq"]["support"] == split["holdout"]["hq"] > 0
    assert rows["lq"]["support"] == split["holdout"]["lq"] >= 40  # a fifth of the 233 junk pages
    # The planted junk is far from the reference text, so the bar is high; a classifier with
    # swapped labels or a broken split scores near 0 here.
    assert rows["hq"]["precision"] >= 0.97 and rows["hq"]["recall"] >= 0.97
    assert rows["lq"]["recall"] >= 0.9
    report = json.loads(Path(trained["report"]).read_text())
    assert report["holdout_metrics"] == metrics
    assert report["inputs"]["positive"]["duplicates"] > 0  # the sample's planted exact copies
    assert report["inputs"]["conflicting"] == 0


def test_unseen_text_orders_prose_over_junk(trained):
    classifier = load_classifier(trained["model"])
    assert classifier.predict(FRESH_JUNK) < 0.5 < classifier.predict(FRESH_PROSE)
    scores = classifier.predict_many([FRESH_PROSE, FRESH_JUNK, ""])
    assert all(0.0 <= score <= 1.0 for score in scores)


def test_same_seed_same_model_other_seed_other_model(examples, trained, tmp_path):
    again = _train(examples, tmp_path / "again.bin")
    other = _train(examples, tmp_path / "other.bin", seed=1)
    texts = [FRESH_PROSE, FRESH_JUNK, "Lorem ipsum dolor sit amet.", "How do I sort a list in Python?"]
    first = QualityClassifier(trained["model"]).predict_many(texts)
    assert QualityClassifier(again["model"]).predict_many(texts) == first
    assert again["holdout_metrics"] == trained["holdout_metrics"]
    assert QualityClassifier(other["model"]).predict_many(texts) != first


def test_load_from_path_once_and_reject_other_models(trained, tmp_path):
    assert load_classifier(trained["model"]) is load_classifier(Path(trained["model"]))
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        load_classifier(tmp_path / "missing.bin")
    # lid.176 is a real fastText model, but not a hq/lq classifier.
    with pytest.raises(ValueError, match="not a quality classifier"):
        QualityClassifier(bundled_model_path())


def test_bad_records_are_counted_with_file_and_line(tmp_path):
    jsonl = tmp_path / "mixed.jsonl.gz"
    with gzip.open(jsonl, "wt") as handle:
        handle.write('{"text": "a good document"}\n{"text": "cut off\n\n{"text": null}\n{"body": "x"}\n')
    text = tmp_path / "lines.txt"
    text.write_bytes(b"first document\n\xff\xfe not utf-8\nthird document\n   \n")
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": ["a row", None, "a row"]}), parquet)
    lines: list[str] = []
    reader = TrainingInputReader(progress=lines.append)
    texts, counts = reader.read([str(jsonl), str(text), str(parquet)], "positive")
    assert texts == ["a good document", "first document", "third document", "a row"]
    assert (counts.files, counts.bad, counts.duplicates, counts.used) == (3, 5, 1, 4)
    assert counts.records == counts.bad + counts.duplicates + counts.used + counts.empty
    assert reader.bad_records[0].startswith(f"{jsonl}: line 2: invalid JSON")
    assert any(record.startswith(f"{jsonl}: line 4: ") for record in reader.bad_records)
    assert any(record.startswith(f"{jsonl}: line 5: ") and "'text'" in record for record in reader.bad_records)
    assert any(record.startswith(f"{text}: line 2: invalid UTF-8") for record in reader.bad_records)
    assert any(record.startswith(f"{parquet}: row 2: ") for record in reader.bad_records)
    assert all("\n" not in line for line in lines) and len(lines) == 5
    with pytest.raises(ValueError, match="no column 'body'"):
        TrainingInputReader(text_field="body").read([str(parquet)], "negative")


def test_training_skips_bad_lines_and_drops_conflicting_texts(examples, tmp_path):
    positive = tmp_path / "positive.jsonl"
    negative = tmp_path / "negative.jsonl"
    lines = (examples / "web-clean.jsonl").read_text().splitlines()[:60]
    junk = (examples / "web-junk.jsonl").read_text().splitlines()[:40]
    positive.write_text("\n".join([*lines, "not json", lines[0].replace("text", "TEXT")]) + "\n")
    negative.write_text("\n".join([*junk, lines[1]]) + "\n")  # one text labelled both ways
    report = service.train_classifier(
        [str(positive)], [str(negative)], tmp_path / "m.bin", settings=TrainingSettings(**SMALL),
        progress=lambda line: None
    )
    assert report["inputs"]["positive"]["bad"] == 2 and report["inputs"]["conflicting"] == 1
    assert report["split"]["train"]["hq"] + report["split"]["holdout"]["hq"] == 59
    assert report["split"]["train"]["lq"] + report["split"]["holdout"]["lq"] == 40
    assert report["bad_records"][0] == f"{positive}: line 61: invalid JSON: Expecting value at column 1"


def test_quantised_model_is_written_and_measured(examples, tmp_path):
    positive, negative = tmp_path / "p.jsonl", tmp_path / "n.jsonl"
    positive.write_text("\n".join((examples / "web-clean.jsonl").read_text().splitlines()[:80]) + "\n")
    negative.write_text("\n".join((examples / "web-junk.jsonl").read_text().splitlines()[:40]) + "\n")
    # Quantisation's k-means dominates the time, so the vocabulary is kept tiny.
    report = service.train_classifier(
        [str(positive)], [str(negative)], tmp_path / "tiny.ftz",
        settings=TrainingSettings(epochs=10, dim=32, bucket=2_000, holdout=0.2), progress=lambda line: None,
    )
    assert report["quantized"] and report["split"]["holdout"] == {"hq": 16, "lq": 8}
    assert QualityClassifier(tmp_path / "tiny.ftz").predict(FRESH_PROSE) > 0.5
    assert json.loads((tmp_path / "tiny.report.json").read_text())["model"].endswith("tiny.ftz")


def test_cli_reports_one_line_errors_with_exit_2(tmp_path, capsys):
    missing = tmp_path / "absent.jsonl"
    code = main(["classifier", "train", "--positive", str(missing), "--negative", str(missing),
                 "--output", str(tmp_path / "m.bin")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "positive" in err and str(missing) in err
    (tmp_path / "p.jsonl").write_text('{"text": "x"}\n')
    code = main(["classifier", "train", "--positive", str(tmp_path / "p.jsonl"), "--negative",
                 str(tmp_path / "p.jsonl"), "--output", str(tmp_path / "m.txt")])
    assert code == 2 and "m.txt" in capsys.readouterr().err


def test_cli_prints_the_holdout_table(examples, tmp_path, capsys):
    code = main(["classifier", "train", "--positive", str(examples / "web-clean.jsonl"),
                 "--negative", str(examples / "web-junk.jsonl"), "--output", str(tmp_path / "m.bin"),
                 "--epochs", "10", "--dim", "32", "--bucket", "100000", "--holdout", "0.2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "precision" in out and "recall" in out and "\nhq " in out and "\nlq " in out


def test_scorer_only_scores_its_domains(trained):
    scorer = classifier_filters({"web": trained["model"]})[0]
    assert isinstance(scorer, ClassifierScorer) and classifier_filters({}) == []
    web, code = Document("w", FRESH_PROSE, "s", domain="web"), Document("c", FRESH_PROSE, "s", domain="code")
    assert scorer.applies_to(web) and not scorer.applies_to(code)
    assert scorer.check(web).keep and web.scores[SCORE_KEY] > 0.5


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_quality_combines_heuristic_and_classifier(weight):
    def scored(classifier: float | None) -> Document:
        doc = Document("d", FRESH_PROSE, "s", domain="web", lang="en", lang_score=0.9)
        if classifier is not None:
            doc.scores[SCORE_KEY] = classifier
        HeuristicQuality(classifier_weight=weight).check(doc)
        return doc

    plain = scored(None)
    assert plain.quality == plain.scores[HEURISTIC_KEY] > 0.5  # no classifier: the heuristic mean
    assert "stop_word_signal" in plain.scores
    low = scored(0.1)
    assert low.quality == pytest.approx((1 - weight) * low.scores[HEURISTIC_KEY] + weight * 0.1, abs=1e-6)
    assert low.scores[SCORE_KEY] == 0.1 and low.scores[HEURISTIC_KEY] == plain.scores[HEURISTIC_KEY]
    assert 0.0 <= low.quality <= 1.0


def test_quality_weight_is_checked():
    with pytest.raises(ValueError, match="classifier_weight"):
        HeuristicQuality(classifier_weight=1.5)


def test_curate_config_validates_classifiers(trained, tmp_path):
    source = {"name": "web", "path": "x", "format": "jsonl"}
    config = CurateConfig.model_validate(
        {"output": "o", "sources": [source], "quality": {"classifiers": {"web": trained["model"]}}}
    )
    assert config.quality.classifiers == {"web": str(Path(trained["model"]).resolve())}
    assert CurateConfig.model_validate({"output": "o", "sources": [source]}).quality == QualitySettings()
    with pytest.raises(ValidationError, match="unknown domains"):
        QualitySettings(classifiers={"forum": trained["model"]})
    with pytest.raises(ValidationError, match="model file not found.*nope.bin"):
        QualitySettings(classifiers={"web": str(tmp_path / "nope.bin")})
    with pytest.raises(ValidationError, match="classifier_weight"):
        QualitySettings(classifier_weight=2)


def test_normalise_is_one_line_and_defuses_labels():
    text = normalise("Hello,\nWorld!\t__label__hq  again")
    assert "\n" not in text and "__label__" not in text
    assert text == "hello , world ! label hq again"


def test_metrics_from_known_counts():
    metrics = HoldoutMetrics.from_scores([True, True, True, False, False], [0.9, 0.6, 0.2, 0.7, 0.1])
    rows = {row["class"]: row for row in metrics.class_rows()}
    assert (metrics.tp, metrics.fn, metrics.fp, metrics.tn) == (2, 1, 1, 1)
    assert rows["hq"]["precision"] == pytest.approx(2 / 3, abs=1e-4) and rows["hq"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows["lq"]["precision"] == 0.5 and rows["lq"]["recall"] == 0.5
    assert metrics.accuracy == 0.6


def test_trainer_refuses_other_suffixes_and_tiny_classes(tmp_path):
    from filters.classifier import TrainingSettings

    trainer = ClassifierTrainer(TrainingSettings(), progress=lambda line: None)
    with pytest.raises(ValueError, match="must end in .bin"):
        trainer.train_files([], [], tmp_path / "m.model")
    one = tmp_path / "one.txt"
    one.write_text("only one document\n")
    with pytest.raises(ValueError, match="negative: 1 usable documents"):
        trainer.train_files([str(SAMPLE / "synthetic")], [str(one)], tmp_path / "m.bin")
    with pytest.raises(ValueError, match="holdout"):
        TrainingSettings(holdout=1.0)
