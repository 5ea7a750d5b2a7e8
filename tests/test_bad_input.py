"""Issue 8: the bad-input corpus (tests/bad_inputs.py) through the real pipeline.

One ``midtrain curate`` run reads every kind of bad input together with good documents: each
bad record is quarantined with its file, location and error, or dropped with its reason; the
good ones are kept; every input file is in the manifest with its records, the counting
invariant holds and ``midtrain verify`` passes. Mixture problems go through ``midtrain mix
plan`` and the REST API over that run's output."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from bad_inputs import DROPPED, KEPT, QUARANTINED, write_bad_inputs
from fastapi.testclient import TestClient
from mixer_fixtures import TEST_VOCAB_SIZE
from test_curate_inputs import clean_articles

from api.app import create_app
from api.cli import main
from api.paths import DataRoots
from corpus.manifest import check_invariant, read_manifest
from mixer.tokenizer import train_tokenizer
from pipelines.config import SourceConfig
from pipelines.readers import read_input

pytestmark = pytest.mark.slow

CURATE_KINDS = [
    "truncated_gzip", "truncated_zstd", "invalid_utf8", "invalid_utf8_file", "nul_bytes_raw",
    "nul_bytes_escaped", "nul_bytes_file", "json_array", "json_number", "json_string", "invalid_json",
    "text_missing", "text_null", "text_not_string", "id_not_scalar", "lone_surrogate", "deep_nesting",
    "duplicate_ids", "huge_document", "empty_file", "parquet_other_schema", "parquet_corrupt_footer",
    "binary_in_code_tree", "symlink_loop", "unreadable_dangling_symlink", "unreadable_fifo",
    "html_no_text", "unexpected_script",
]


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad")
    corpus = write_bad_inputs(root, clean_articles(12))
    (root / "curate.json").write_text(json.dumps(corpus.config))
    return {"root": root, "corpus": corpus, "out": Path(corpus.config["output"])}


@pytest.fixture(scope="module")
def curated(ray_runtime, bad) -> dict:
    assert main(["curate", str(bad["root"] / "curate.json")]) == 0
    out, root = bad["out"], bad["root"]
    (root / "jsonl" / "huge.jsonl").unlink()  # 100 MB: read, no longer needed

    def where(row: dict) -> tuple[str, str]:
        return Path(row["file"]).relative_to(root).as_posix(), row["location"]

    quarantine = pq.read_table(out / "quarantine").to_pylist()
    # A bad record keeps at most its first 200 characters, however large it was (100 MB).
    assert all(row["raw"] is None or len(row["raw"]) <= 200 for row in quarantine)

    return {
        "manifest": read_manifest(out),
        "quarantined": {where(row): row["error"] for row in quarantine},
        "dropped": {where(row): row["reason"] for row in pq.read_table(out / "dropped").to_pylist()},
    }


def test_the_corpus_has_every_kind(bad):
    assert {e.kind for e in bad["corpus"].expected} - {"good"} | set(bad["corpus"].empty_files.values()) == set(
        CURATE_KINDS)


@pytest.mark.parametrize("kind", CURATE_KINDS)
def test_each_kind_is_quarantined_or_dropped_with_its_location_and_reason(curated, bad, kind):
    expected = [e for e in bad["corpus"].expected if e.kind == kind]
    inputs = {Path(r.path).relative_to(bad["root"]).as_posix(): r.documents for r in curated["manifest"].inputs}
    empty = [file for file, of_kind in bad["corpus"].empty_files.items() if of_kind == kind]
    assert expected or empty
    for file in empty:
        assert inputs[file] == 0, f"{file}: an empty input has no records"
    for e in expected:
        key = (e.file, e.location)
        if e.outcome == QUARANTINED:
            assert key in curated["quarantined"], f"{key} not quarantined: {sorted(curated['quarantined'])}"
            assert curated["quarantined"][key].startswith(e.reason), curated["quarantined"][key]
            assert "\n" not in curated["quarantined"][key]
        elif e.outcome == DROPPED:
            assert curated["dropped"].get(key) == e.reason, (key, curated["dropped"].get(key))
        else:
            assert e.outcome == KEPT
            assert key not in curated["quarantined"] and key not in curated["dropped"], key


def test_every_record_of_every_file_is_accounted_for_once(curated, bad):
    """Files that cannot be read are inputs with one record; a folder symlink loop does not
    make a file an input twice; every record is kept, dropped or quarantined."""
    manifest, corpus = curated["manifest"], bad["corpus"]
    check_invariant(manifest.counts)
    inputs = Counter()
    for record in manifest.inputs:
        inputs[Path(record.path).relative_to(bad["root"]).as_posix()] += record.documents
    expected = Counter(e.file for e in corpus.expected)
    expected.update(dict.fromkeys(corpus.empty_files, 0))
    assert dict(inputs) == dict(expected)
    assert len(manifest.inputs) == len(expected)  # each file once
    assert manifest.counts.input == len(corpus.expected)
    assert manifest.counts.kept == sum(e.outcome == KEPT for e in corpus.expected)
    assert manifest.counts.quarantined == len(curated["quarantined"])
    assert sum(manifest.counts.dropped.values()) == len(curated["dropped"])


def test_verify_passes_on_the_output(curated, bad, capsys):
    assert main(["verify", str(bad["out"])]) == 0, capsys.readouterr()


def test_a_file_without_read_permission_is_quarantined():
    """As root every file is readable, so there the reader runs in a child that drops to nobody."""
    folder = tempfile.mkdtemp(dir="/tmp")  # tmp_path's parents are closed to other users
    path = os.path.join(folder, "secret.jsonl")
    try:
        os.chmod(folder, 0o755)
        Path(path).write_text('{"text": "hidden"}\n')
        os.chmod(path, 0)
        source = SourceConfig(name="s", path=path, format="jsonl").model_dump()
        if os.geteuid() != 0:
            result = [(r["location"], r["error"], r["text"]) for r in read_input(source, path)]
            assert result == [("file", "unreadable file: Permission denied", None)]
            return
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child's result travels through the pipe
            try:
                os.setgid(65534)
                os.setuid(65534)
                result = [(r["location"], r["error"], r["text"]) for r in read_input(source, path)]
            except BaseException as error:  # noqa: BLE001
                result = repr(error)
            os.write(write, pickle.dumps(result))
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            result = pickle.loads(pipe.read())
        os.waitpid(child, 0)
    finally:
        os.chmod(path, 0o600)
        Path(path).unlink()
        os.rmdir(folder)
    assert result == [("file", "unreadable file: Permission denied", None)]


# --- mixture problems over the curated output -----------------------------------------------

def plan_spec(out: Path, tokenizer: Path, **phase) -> dict:
    base = {"name": "p", "tokens": 512, "seq_len": 64,
            "sources": [{"name": "web", "select": {"domain": "web"}, "weight": 0.7},
                        {"name": "code", "select": {"domain": "code"}, "weight": 0.3}]}
    return {"name": "bad", "corpus": [str(out)], "tokenizer": str(tokenizer), "seed": 1,
            "phases": [{**base, **phase}]}


def sources(*changes: dict) -> list[dict]:
    web = {"name": "web", "select": {"domain": "web"}, "weight": 0.7}
    return [{**web, **change} for change in changes]


MIXTURE_KINDS = {
    # kind: (phase changes, where the error is found, the problem's field, words of the one line)
    "weights_sum_to_zero": ({"sources": sources({"weight": 0}, {"name": "code", "weight": 0})}, "spec",
                            "phases.0", "phase 'p': weights sum to zero"),
    "unknown_domain": ({"sources": sources({"select": {"domain": "poetry"}})}, "spec",
                       "phases.0.sources.0.select.domain", "unknown domain 'poetry'; expected one of web, code"),
    "budget_larger_than_corpus": ({"tokens": 50_000_000, "sources": sources({"max_epochs": 4})}, "plan",
                                  "phases.0.sources.0", "phase 'p', source 'web': needs "),
    "selector_matches_nothing": ({"sources": sources({}, {"name": "none", "select": {"source": "nobody"}})},
                                 "plan", "phases.0.sources.1",
                                 "phase 'p', source 'none': the selector matches no documents"),
}


@pytest.fixture(scope="module")
def mixing(curated, bad) -> dict:
    tokenizer = bad["root"] / "tok.json"
    train_tokenizer([str(bad["out"])], str(tokenizer), TEST_VOCAB_SIZE)
    return {"out": bad["out"], "tokenizer": tokenizer, "root": bad["root"]}


@pytest.mark.parametrize("kind", sorted(MIXTURE_KINDS))
def test_mixture_problem_is_one_line_naming_phase_source_and_field(mixing, kind, tmp_path, capsys):
    changes, found_in, field, words = MIXTURE_KINDS[kind]
    spec = plan_spec(mixing["out"], mixing["tokenizer"], **changes)
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(spec))
    assert main(["mix", "plan", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and words in error, error
    if found_in == "spec":
        assert f"field {field}" in error

    app = create_app(str(tmp_path / "state.duckdb"), data_roots=DataRoots((mixing["root"],)))
    with TestClient(app) as client:
        if found_in == "spec":
            response = client.post("/mixtures/validate", json=spec)
        else:
            assert client.post("/mixtures", json=spec).status_code == 201
            response = client.get("/mixtures/bad/plan")
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field and words in problem["detail"], problem


def test_a_budget_larger_than_the_corpus_without_a_cap_is_planned_as_repetition(mixing, tmp_path, capsys):
    """Without max_epochs repetition is allowed: the plan says how many epochs it takes."""
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(plan_spec(mixing["out"], mixing["tokenizer"], tokens=5_000_000)))
    assert main(["mix", "plan", str(path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("p ")]
    epochs = {row[1]: float(row[7].replace(",", "")) for row in rows}
    assert epochs["web"] > 10 and epochs["code"] > 10, rows
