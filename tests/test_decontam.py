"""Decontamination against user evaluation sets: n-gram matching, the config's checks at the
door, and a curation run whose manifest and report show the contaminated documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from corpus.manifest import check_invariant
from corpus.specfile import SpecError
from filters.base import Document
from filters.decontam import (CONTAMINATED, HITS_SCORE, MAX_ITEMS_RECORDED, Decontaminator, EvalSet,
                              load_eval_index, ngram_hash, words)
from pipelines.config import CurateConfig, DecontaminationSettings, load_curate_config
from pipelines.curate import config_hash, run_curation
from pipelines.report import load_stats, report_dir

QUESTION = ("Natalia sold clips to forty-eight of her friends in April, and then she sold half as "
            "many clips in May. How many clips did Natalia sell altogether in April and May?")
ANSWER = "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May."
SHORT = "What is the boiling point of water at sea level"  # 10 words: shorter than 13
OTHER = ("Weng earns twelve dollars an hour for babysitting. Yesterday she just did fifty minutes of "
         "babysitting. How much did she earn?")
FILLER = "The weather in the valley was mild this week and the farmers planted their early crops. "


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def gsm8k(tmp_path) -> EvalSet:
    path = write_jsonl(tmp_path / "gsm8k_test.jsonl", [
        {"idx": "q1", "question": QUESTION, "answer": ANSWER},
        "",  # a blank line is not an item
        {"idx": "q2", "question": OTHER, "answer": "Weng earns 12/60 = 0.2 dollars per minute."},
        {"idx": "q3", "question": SHORT, "answer": "100 C"},
    ])
    return EvalSet(name="gsm8k", path=str(path), fields=["question", "answer"], id_field="idx")


def decontaminator(*sets: EvalSet, ngram: int = 13, min_words: int = 8) -> Decontaminator:
    return Decontaminator.from_sets(list(sets), ngram, min_words)


def check(filter_: Decontaminator, text: str) -> tuple[bool, Document]:
    doc = Document(id="d", text=text, source="s")
    return filter_.check(doc).keep, doc


def test_words_normalise_case_punctuation_and_compatibility_forms():
    assert words("Natalia SOLD: clips—to ‘forty-eight’ ﬁne") == ["natalia", "sold", "clips", "to", "forty",
                                                                 "eight", "fine"]


def test_a_shared_13_gram_with_other_case_and_punctuation_drops_and_names_the_item(gsm8k):
    # 13 words of the question, shouted and re-punctuated, inside unrelated text.
    copied = "NATALIA SOLD CLIPS, TO FORTY EIGHT OF HER FRIENDS IN APRIL; AND THEN SHE SOLD... HALF"
    keep, doc = check(decontaminator(gsm8k), FILLER + copied + " " + FILLER)
    assert not keep
    assert decontaminator(gsm8k).check(doc).reason == CONTAMINATED
    assert doc.scores["contaminated:gsm8k:q1"] == 1.0
    assert doc.scores[HITS_SCORE] >= 1.0
    assert not any(key.startswith("contaminated:gsm8k:q2") for key in doc.scores)


def test_twelve_shared_words_are_kept(gsm8k):
    twelve = " ".join(words(QUESTION)[:12])
    keep, doc = check(decontaminator(gsm8k), FILLER + twelve + ". " + FILLER)
    assert keep and doc.scores == {}


def test_the_ngram_length_is_configurable(gsm8k):
    eight = " ".join(words(QUESTION)[3:11])
    assert check(decontaminator(gsm8k), FILLER + eight + " " + FILLER)[0]
    keep, doc = check(decontaminator(gsm8k, ngram=8), FILLER + eight + " " + FILLER)
    assert not keep and "contaminated:gsm8k:q1" in doc.scores
    assert check(decontaminator(gsm8k, ngram=9), FILLER + eight + " " + FILLER)[0]


def test_a_short_passage_is_matched_whole_and_a_tiny_one_not_at_all(gsm8k):
    keep, doc = check(decontaminator(gsm8k), f"Quiz night. {SHORT.upper()}? Nobody knew.")
    assert not keep and "contaminated:gsm8k:q3" in doc.scores
    # Nine of its ten words are not the whole passage; the 2-word answer "100 C" is never checked.
    assert check(decontaminator(gsm8k), " ".join(words(SHORT)[1:]) + " 100 C")[0]
    assert load_eval_index(gsm8k, 13, 8).passages_skipped == 1
    # With min_words above its length the short question is not checked either.
    assert check(decontaminator(gsm8k, min_words=11), f"Quiz night. {SHORT}? Nobody knew.")[0]


def test_items_hit_are_recorded_in_document_order_and_capped(tmp_path):
    records = [{"q": f"item {i} " + " ".join(f"w{i}x{j}" for j in range(13))} for i in range(MAX_ITEMS_RECORDED + 3)]
    spec = EvalSet(name="many", path=str(write_jsonl(tmp_path / "many.jsonl", records)), fields=["q"])
    text = " . ".join(record["q"] for record in reversed(records))
    keep, doc = check(decontaminator(spec), text)
    named = [key for key in doc.scores if key.startswith("contaminated:")]
    assert not keep and len(named) == MAX_ITEMS_RECORDED
    # No id_field: items are named by line number; the last line appears first in the text.
    assert named[0] == f"contaminated:many:{len(records)}"


def test_list_fields_give_one_passage_per_string(tmp_path):
    choice = "the mitochondria is the organelle that produces most of the energy in the cell"
    spec = EvalSet(name="mmlu", path=str(write_jsonl(tmp_path / "mmlu.jsonl", [
        {"question": "Which is right?", "choices": ["a plant", choice]}])), fields=["question", "choices"])
    keep, doc = check(decontaminator(spec), f"Biology notes: {choice}.")
    assert not keep and "contaminated:mmlu:1" in doc.scores


def test_the_ngram_hash_is_stable_across_processes():
    gram = words(QUESTION)[:13]
    script = f"from filters.decontam import ngram_hash; print(ngram_hash({gram!r}))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1], env={"PYTHONHASHSEED": "12345"})
    assert int(result.stdout) == ngram_hash(gram)
    assert 0 <= ngram_hash(gram) < 2**64


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not JSON"),
    ('[1, 2]', "line 2: a list, not a JSON object"),
    ('{"idx": "b", "answer": "x"}', "line 2: no field 'question'"),
    ('{"idx": "b", "question": 3, "answer": "x"}', "line 2: field 'question' is int"),
    ('{"question": "x", "answer": "y"}', "line 2: id field 'idx' is missing"),
    ('{"idx": "a", "question": "x", "answer": "y"}', "line 2: duplicate item id 'a'"),
])
def test_a_bad_line_fails_the_config_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"idx": "a", "question": "q", "answer": "a"}) + "\n" + line + "\n")
    settings = {"sets": [{"name": "bad", "path": str(path), "fields": ["question", "answer"], "id_field": "idx"}]}
    with pytest.raises(ValidationError) as error:
        DecontaminationSettings.model_validate(settings)
    assert f"{path} {message}" in str(error.value)


def test_config_errors_are_one_line_and_paths_made_absolute(tmp_path, monkeypatch, gsm8k):
    monkeypatch.chdir(tmp_path)
    settings = DecontaminationSettings.model_validate(
        {"sets": [{"name": "gsm8k", "path": "gsm8k_test.jsonl", "fields": ["question"]}]})
    assert settings.sets[0].path == str(tmp_path / "gsm8k_test.jsonl")
    assert DecontaminationSettings().sets == []  # off by default
    spec = tmp_path / "curate.yaml"
    spec.write_text(json.dumps({"output": "out", "sources": [{"name": "s", "path": "*.jsonl", "format": "jsonl"}],
                                "decontamination": {"sets": [{"name": "x", "path": "missing.jsonl",
                                                              "fields": ["q"]}]}}))
    with pytest.raises(SpecError) as error:
        load_curate_config(spec)
    assert "\n" not in str(error.value) and "missing.jsonl" in str(error.value)
    for bad in ({"ngram": 5, "min_words": 6}, {"sets": [gsm8k.model_dump(), gsm8k.model_dump()]}):
        with pytest.raises(ValidationError):
            DecontaminationSettings.model_validate(bad)


def test_an_unreadable_gzip_names_the_file(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValidationError) as error:
        DecontaminationSettings.model_validate({"sets": [{"name": "b", "path": str(path), "fields": ["q"]}]})
    assert f"{path}: cannot read" in str(error.value)


def test_a_changed_eval_file_is_read_again_and_changes_the_config_hash(tmp_path, gsm8k):
    config = CurateConfig.model_validate({
        "output": str(tmp_path / "out"), "sources": [{"name": "s", "path": "x", "format": "jsonl"}],
        "decontamination": {"sets": [gsm8k.model_dump()]}})
    before = config_hash(config)
    assert load_eval_index(gsm8k, 13, 8).item_ids == ("q1", "q2", "q3")
    with open(gsm8k.path, "a") as handle:
        handle.write(json.dumps({"idx": "q4", "question": "new", "answer": "item"}) + "\n")
    assert load_eval_index(gsm8k, 13, 8).item_ids == ("q1", "q2", "q3", "q4")
    assert config_hash(config) != before


def test_curation_drops_contaminated_documents_and_reports_the_items(ray_runtime, tmp_path, gsm8k):
    prose = [FILLER * 3 + f"Entry {i} of the village diary records the harvest and the rain." for i in range(6)]
    docs = [{"id": f"clean{i}", "text": text} for i, text in enumerate(prose)]
    docs.append({"id": "leak1", "text": prose[0] + " " + QUESTION.upper() + " " + FILLER})
    docs.append({"id": "leak2", "text": FILLER + ANSWER + " " + FILLER * 2})
    docs.append({"id": "leak3", "text": FILLER * 2 + OTHER.replace(".", " !") + " " + FILLER})
    write_jsonl(tmp_path / "web.jsonl", docs)
    config = CurateConfig.model_validate({
        "output": str(tmp_path / "out"),
        "sources": [{"name": "web", "path": str(tmp_path / "web.jsonl"), "format": "jsonl",
                     "kind": "web", "id_field": "id"}],
        "filters": {"gopher_repetition": False, "gopher_quality": False, "c4_quality": False,
                    "fineweb_quality": False},
        "decontamination": {"sets": [gsm8k.model_dump()]},
    })
    manifest = run_curation(config, progress=lambda line: None)
    check_invariant(manifest.counts)
    assert manifest.counts.dropped.get(CONTAMINATED) == 3
    assert manifest.counts.kept == 6
    assert "decontaminate" in manifest.stages
    assert gsm8k.path in manifest.models  # the eval file's sha256 is part of the run's identity
    stats = load_stats(report_dir(config.output))
    assert stats["contamination"] == {"gsm8k": {"q1": 2, "q2": 1}}
    index = (report_dir(config.output) / "index.md").read_text()
    assert "## Contamination" in index and "| gsm8k | q1 | 2 |" in index
