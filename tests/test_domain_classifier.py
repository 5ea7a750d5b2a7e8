"""The fastText domain classifier: training on the sample's labelled text in every input
format, the held-out report per domain, determinism, the tagger's use of it for ``kind: auto``
only and its fallback to the rules, the CLI, and the curate config."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from pydantic import ValidationError

from api import service
from api.cli import main
from corpus.schema import DOMAINS
from filters.base import Document
from filters.classifier import ConfusionMatrix, HoldoutMetrics, QualityClassifier, TrainingSettings, normalise
from filters.domain import (
    CONFIDENCE_KEY,
    FROM_RULES_KEY,
    DomainClassifier,
    DomainTagger,
    infer_domain,
    load_domain_classifier,
    probability_key,
)
from filters.langid import LanguageIdentifier, bundled_model_path
from pipelines.config import CurateConfig, DomainSettings
from pipelines.stages import DocumentStage, build_chain

SAMPLE = service.EXAMPLES / "sample"
PER_DOMAIN = 200  # documents per domain in the fixture
# lr 0.5: at fastText's 0.1, ten epochs over 160 documents per domain underfit badly.
SMALL = {"epochs": 10, "lr": 0.5, "dim": 32, "bucket": 50_000, "holdout": 0.2}
CODE_TEXT = (
    "def merge(left, right):\n    result = []\n    while left and right:\n"
    "        result.append(left.pop(0) if left[0] <= right[0] else right.pop(0))\n"
    "    return result + left + right\n"
)


def _sample_texts(folder: str, field: str = "text") -> list[str]:
    """The first PER_DOMAIN non-empty texts of one sample folder, whatever its format."""
    texts: list[str] = []
    for path in sorted((SAMPLE / folder).iterdir()):
        if path.suffix == ".parquet":
            texts.extend(pq.read_table(path, columns=[field]).column(0).to_pylist())
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                try:
                    texts.append(json.loads(line).get(field))
                except json.JSONDecodeError:
                    continue  # the sample's planted bad lines
    return [text for text in texts if isinstance(text, str) and text.strip()][:PER_DOMAIN]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> dict[str, list[str]]:
    """A few hundred sample documents per domain, each domain in another input format."""
    root = tmp_path_factory.mktemp("labelled")

    def jsonl(texts: list[str]) -> bytes:
        return "".join(json.dumps({"text": text}) + "\n" for text in texts).encode()

    web = root / "web.jsonl.gz"
    web.write_bytes(gzip.compress(jsonl(_sample_texts("web"))))
    math = root / "math.jsonl.zst"
    math.write_bytes(zstandard.ZstdCompressor().compress(jsonl(_sample_texts("math"))))
    instruction = root / "instruction.txt"  # one document per line
    instruction.write_text("".join(" ".join(t.split()) + "\n" for t in _sample_texts("instruction")))
    reasoning = root / "reasoning" / "part.jsonl"  # a folder, read recursively
    reasoning.parent.mkdir()
    reasoning.write_bytes(jsonl(_sample_texts("reasoning")))
    code = root / "code.parquet"  # raw code rows: the text is in `content`
    pq.write_table(pa.table({"content": _sample_texts("code", "content")}), code)
    synthetic = root / "synthetic.parquet"  # shaped like curated shards: `text`
    pq.write_table(pa.table({"text": _sample_texts("synthetic")}), synthetic)
    return {"web": [str(web)], "code": [str(code)], "math": [str(math)],
            "instruction": [str(instruction)], "reasoning": [str(root / "reasoning")],
            "synthetic": [str(synthetic)]}


def _train(labelled: dict[str, list[str]], output: Path, seed: int = 0) -> dict:
    return service.train_domain_classifier(
        labelled, output, text_fields={"code": "content"}, settings=TrainingSettings(seed=seed, **SMALL),
        progress=lambda line: None
    )


@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory) -> dict:
    return _train(labelled, tmp_path_factory.mktemp("model") / "domain.bin")


def test_every_domain_is_read_from_its_format(trained):
    inputs = trained["inputs"]["domains"]
    assert list(inputs) == list(DOMAINS) and trained["labels"] == list(DOMAINS)
    assert inputs["code"]["text_field"] == "content" and inputs["web"]["text_field"] == "text"
    for domain, counts in inputs.items():
        assert counts["bad"] == 0 and counts["records"] == PER_DOMAIN, domain
        # Every distinct text is either trained on or held out, never both.
        assert trained["split"]["train"][domain] + trained["split"]["holdout"][domain] == counts["used"]
    assert inputs["web"]["duplicates"] > 0  # the sample plants exact copies among its web pages


def test_holdout_per_domain_is_high(trained):
    metrics = trained["holdout_metrics"]
    rows = {row["class"]: row for row in metrics["classes"]}
    assert list(rows) == list(DOMAINS)
    # The sample's domains are far apart, so the bar is high; swapped labels, a broken split
    # or a mis-read input (e.g. code read from the wrong column) land far below it.
    assert metrics["accuracy"] >= 0.95 and metrics["macro_f1"] >= 0.93
    for domain, row in rows.items():
        assert row["recall"] >= 0.85 and row["precision"] >= 0.85, (domain, row)
        assert row["support"] == trained["split"]["holdout"][domain] >= 30


def test_report_and_confusion_matrix_add_up(trained):
    metrics = trained["holdout_metrics"]
    labels, matrix = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    assert labels == list(DOMAINS) and len(matrix) == len(labels)
    assert sum(map(sum, matrix)) == sum(trained["split"]["holdout"].values())
    for number, row in enumerate(metrics["classes"]):
        predicted = sum(line[number] for line in matrix)
        assert sum(matrix[number]) == row["support"]
        assert row["recall"] == round(matrix[number][number] / row["support"], 4)
        assert row["precision"] == round(matrix[number][number] / predicted, 4)
    assert metrics["accuracy"] == round(sum(matrix[i][i] for i in range(len(labels))) / sum(map(sum, matrix)), 4)
    on_disk = json.loads(Path(trained["report"]).read_text())
    assert on_disk == trained and Path(trained["report"]).name == "domain.report.json"


def test_same_seed_same_model_other_seed_other_model(labelled, trained, tmp_path, capsys):
    # The same training through the CLI: the same model, and the table printed.
    argv = ["classifier", "train-domain", "--output", str(tmp_path / "again.bin"),
            "--domain-text-field", "code=content", "--epochs", "10", "--lr", "0.5", "--dim", "32",
            "--bucket", "50000", "--holdout", "0.2"]
    for domain, paths in labelled.items():
        argv += ["--labelled", f"{domain}={paths[0]}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "true \\ predicted" in out
    assert all(f"\n{domain} " in out for domain in DOMAINS)
    other = _train(labelled, tmp_path / "other.bin", seed=1)
    texts = [CODE_TEXT, "Solve $x^2 = 4$ for $x$.", "Buy cheap shoes online today!", "User: hello"]
    first = DomainClassifier(trained["model"]).predict_normalised([normalise(t) for t in texts])
    again = json.loads((tmp_path / "again.report.json").read_text())
    assert again["holdout_metrics"] == trained["holdout_metrics"]
    assert DomainClassifier(tmp_path / "again.bin").predict_normalised([normalise(t) for t in texts]) == first
    assert DomainClassifier(other["model"]).predict_normalised([normalise(t) for t in texts]) != first


def test_tagger_classifies_auto_documents_only(trained):
    tagger = DomainTagger(load_domain_classifier(trained["model"]))
    auto = Document("a", CODE_TEXT, "s", kind="auto")
    assert tagger.check(auto).keep and auto.domain == "code" and "fim_eligible" in auto.tags
    probabilities = {domain: auto.scores[probability_key(domain)] for domain in DOMAINS}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert auto.scores[CONFIDENCE_KEY] == max(probabilities.values()) >= 0.5
    assert auto.scores[FROM_RULES_KEY] == 0.0
    assert "code_line_fraction" in auto.scores and "math_density" in auto.scores  # the rules' signals
    # A kind hint wins, and the classifier is not consulted at all.
    hinted = Document("h", CODE_TEXT, "s", kind="web")
    tagger.check(hinted)
    assert hinted.domain == "web" and not any(key.startswith("domain_") for key in hinted.scores)


def test_low_confidence_falls_back_to_the_rules(trained):
    classifier = load_domain_classifier(trained["model"])
    # Synthetic text is a domain the rules never name, so whoever decided is visible.
    for text in _sample_texts("synthetic")[:50]:
        domain, confidence = classifier.top(classifier.predict(text))
        if domain == "synthetic" and confidence < 0.999:
            break
    else:
        pytest.fail("no synthetic document with a confidence below 0.999")
    confident = Document("c", text, "s")
    DomainTagger(classifier, min_confidence=confidence - 1e-4).check(confident)
    assert confident.domain == "synthetic" and "synthetic" in confident.tags
    doubtful = Document("d", text, "s")
    DomainTagger(classifier, min_confidence=confidence + 1e-4).check(doubtful)
    assert doubtful.domain == infer_domain(text, {}) != "synthetic"
    assert doubtful.scores[FROM_RULES_KEY] == 1.0 and doubtful.scores[CONFIDENCE_KEY] == round(confidence, 6)
    with pytest.raises(ValueError, match="min_confidence"):
        DomainTagger(classifier, min_confidence=1.5)


def test_config_validates_and_the_stage_uses_it(trained, tmp_path, monkeypatch):
    source = {"name": "mixed", "path": "x", "format": "jsonl"}
    monkeypatch.chdir(Path(trained["model"]).parent)
    config = CurateConfig.model_validate(
        {"output": str(tmp_path / "out"), "sources": [source, {**source, "name": "hinted", "kind": "web"}],
         "domain": {"classifier": "domain.bin", "min_confidence": 0.6}}
    )
    assert config.domain.classifier == str(Path(trained["model"]).resolve())
    assert CurateConfig.model_validate({"output": "o", "sources": [source]}).domain == DomainSettings()
    with pytest.raises(ValidationError, match=r"domain.classifier: model file not found \(.*nope.bin\)"):
        CurateConfig.model_validate({"output": "o", "sources": [source], "domain": {"classifier": "nope.bin"}})
    with pytest.raises(ValidationError, match="min_confidence"):
        DomainSettings(min_confidence=1.2)
    # The chain gets the classifier, loaded once per process.
    identifier = LanguageIdentifier(None)
    tagger = build_chain(config, config.filters, identifier)[0][1]
    assert isinstance(tagger, DomainTagger) and tagger.min_confidence == 0.6
    assert tagger.classifier is load_domain_classifier(trained["model"])
    assert build_chain(config.model_copy(update={"domain": DomainSettings()}), config.filters,
                       identifier)[0][1].classifier is None
    # Through the per-document stage, as a Ray worker runs it.
    stage = DocumentStage(config.model_dump_json())
    records = [
        {"source": name, "kind": kind, "file": "f.jsonl", "location": "line 1", "ordinal": 0,
         "input_id": name, "text": CODE_TEXT, "meta": "{}", "error": None, "raw": None, "skip_reason": None}
        for name, kind in (("mixed", "auto"), ("hinted", "web"))
    ]
    rows = {row["source"]: row for row in stage(records).to_pylist()}
    assert rows["mixed"]["domain"] == "code" and dict(rows["mixed"]["scores"])[probability_key("code")] > 0.6
    assert rows["hinted"]["domain"] == "web" and probability_key("code") not in dict(rows["hinted"]["scores"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--labelled", "forum=x.jsonl", "--labelled", "web=y.jsonl"], "unknown domain 'forum'"),
        (["--labelled", "web"], "want DOMAIN=VALUE"),
        (["--labelled", "web=a.jsonl", "--labelled", "code=b.jsonl", "--domain-text-field", "code"],
         "--domain-text-field 'code': want DOMAIN=VALUE"),
        (["--labelled", "web=a.jsonl", "--labelled", "code=b.jsonl", "--domain-text-field", "math=body"],
         "text field given for 'math'"),
        (["--labelled", "web=a.jsonl"], "at least 2"),
        (["--labelled", "web=absent.jsonl", "--labelled", "code=absent.jsonl"],
         "labelled web: no readable input file matches"),
    ],
)
def test_cli_bad_arguments_exit_2_on_one_line(arguments, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["classifier", "train-domain", *arguments, "--output", str(tmp_path / "m.bin")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and message in err, err
    assert not (tmp_path / "m.bin").exists()


def test_other_models_are_refused(trained):
    with pytest.raises(ValueError, match="not a domain classifier"):
        DomainClassifier(bundled_model_path())  # lid.176: a fastText model with language labels
    with pytest.raises(ValueError, match="not a quality classifier"):
        QualityClassifier(trained["model"])
    with pytest.raises(FileNotFoundError, match="domain classifier model not found"):
        load_domain_classifier("absent.bin")


def test_confusion_matrix_from_known_predictions():
    truth = ["web", "web", "web", "code", "code", "math"]
    guess = ["web", "web", "code", "code", "code", "math"]
    matrix = ConfusionMatrix.from_predictions(["web", "code", "math"], truth, guess)
    assert matrix.counts == ((2, 1, 0), (0, 2, 0), (0, 0, 1))
    rows = {row["class"]: row for row in matrix.class_rows()}
    assert rows["web"] == {"class": "web", "precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3}
    assert rows["code"]["precision"] == 0.6667 and rows["code"]["recall"] == 1.0 and rows["code"]["support"] == 2
    assert rows["math"]["f1"] == 1.0 and matrix.accuracy == round(5 / 6, 4)
    assert matrix.as_dict()["macro_f1"] == round((0.8 + 0.8 + 1.0) / 3, 4)
    # The binary metrics are the two-class case of the same matrix.
    binary = HoldoutMetrics.from_scores([True, True, False, False, False], [0.9, 0.1, 0.8, 0.2, 0.3])
    assert binary.matrix().counts == ((1, 1), (1, 2)) and binary.accuracy == 0.6

