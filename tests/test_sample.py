"""The bundled sample corpus (examples/sample/) agrees with its ground truth and regenerates.

Fast and Ray-free: these tests read the committed files directly. The ground truth in
``examples/sample/ground_truth.json`` is what other tests may rely on (planted junk, duplicates,
bad lines, languages), so here we check that it describes the files exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SAMPLE = EXAMPLES / "sample"
MAX_SAMPLE_BYTES = 10 * 1024 * 1024
CODE_COLUMNS = ["id", "content", "path", "language", "license"]


@lru_cache(maxsize=None)
def generator() -> ModuleType:
    """examples/make_sample.py, imported by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_sample", EXAMPLES / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def truth() -> dict[str, Any]:
    return json.loads((SAMPLE / "ground_truth.json").read_text(encoding="utf-8"))


def raw_lines(name: str) -> list[str]:
    path = SAMPLE / name
    data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    return data.decode("utf-8").splitlines()


@lru_cache(maxsize=None)
def records(source: str) -> tuple[dict[str, Any], ...]:
    """Every parseable record of a source, in file order (bad lines left out)."""
    rows: list[dict[str, Any]] = []
    for name in sorted(name for name, entry in truth()["files"].items() if entry["source"] == source):
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            rows += pq.read_table(SAMPLE / name).to_pylist()
            continue
        bad = {entry["line"] for entry in truth()["sources"].get(source, {}).get("bad_lines", []) if entry["file"] == name}
        rows += [json.loads(line) for number, line in enumerate(raw_lines(name), start=1) if number not in bad]
    return tuple(rows)


def by_id(source: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in records(source)}


def shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[index : index + size]) for index in range(len(words) - size + 1)}


# --- size and presence ---------------------------------------------------------------------------


def test_total_size_is_small():
    total = sum(path.stat().st_size for path in SAMPLE.rglob("*") if path.is_file())
    assert total <= MAX_SAMPLE_BYTES, f"the sample is {total:,} bytes"


def test_every_file_set_is_present_and_matches_the_ground_truth():
    files = truth()["files"]
    assert {entry["source"] for entry in files.values()} == set(generator().SOURCES)
    on_disk = {path.relative_to(SAMPLE).as_posix() for path in SAMPLE.rglob("*") if path.is_file()}
    assert on_disk == set(files) | {"ground_truth.json"}
    for name, entry in files.items():
        data = (SAMPLE / name).read_bytes()
        assert len(data) == entry["bytes"], name
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name


def test_curate_config_reads_every_file_set(monkeypatch):
    from pipelines.config import load_curate_config

    monkeypatch.chdir(REPO)  # the config's globs are relative to the repository root
    config = load_curate_config(EXAMPLES / "curate.yaml")
    assert {source.name for source in config.sources} == set(generator().SOURCES)
    for source in config.sources:
        expected = sorted(f"examples/sample/{name}" for name, entry in truth()["files"].items() if entry["source"] == source.name)
        assert source.files() == expected, source.name
        assert source.id_field == "id"
        assert source.text_field == ("content" if source.name == "code" else "text")


def test_record_counts_and_ids():
    seen: set[str] = set()
    for source in generator().SOURCES:
        rows = records(source)
        assert len(rows) == truth()["sources"][source]["documents"], source
        ids = [row["id"] for row in rows]
        assert len(set(ids)) == len(ids), f"{source}: repeated ids"
        assert seen.isdisjoint(ids), f"{source}: ids shared with another source"
        seen.update(ids)


# --- web: junk, duplicates, bad lines ------------------------------------------------------------


def test_bad_lines_are_where_the_ground_truth_says():
    web = truth()["sources"]["web"]
    assert [entry["problem"] for entry in web["bad_lines"]] == ["invalid_json", "invalid_json", "null_text"]
    for entry in web["bad_lines"]:
        line = raw_lines(entry["file"])[entry["line"] - 1]
        assert line == entry["content"]
        if entry["problem"] == "invalid_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
        else:
            assert json.loads(line)["text"] is None
    total_lines = sum(len(raw_lines(name)) for name, entry in truth()["files"].items() if entry["source"] == "web")
    assert total_lines == web["records"] == web["documents"] + 3


def test_web_shares_of_junk_and_duplicates():
    web = truth()["sources"]["web"]
    documents = web["documents"]
    assert 1500 <= documents <= 2500
    junk = [doc_id for ids in web["junk"].values() for doc_id in ids]
    exact = [entry["id"] for entry in web["exact_duplicates"]]
    near = [entry["id"] for entry in web["near_duplicates"]]
    assert set(web["junk"]) == {"spam", "boilerplate", "lorem_ipsum", "char_soup", "short"}
    assert all(len(ids) >= 20 for ids in web["junk"].values())
    assert len(set(junk) | set(exact) | set(near)) == len(junk) + len(exact) + len(near)
    assert 0.13 <= len(junk) / documents <= 0.17
    assert 0.04 <= len(exact) / documents <= 0.06
    assert 0.04 <= len(near) / documents <= 0.06
    assert web["clean"] == documents - len(junk) - len(exact) - len(near)


def test_planted_exact_duplicates_have_identical_text():
    docs = by_id("web")
    web = truth()["sources"]["web"]
    for entry in web["exact_duplicates"]:
        copy, original = docs[entry["id"]], docs[entry["duplicate_of"]]
        assert copy["text"] == original["text"]
        assert copy["url"] != original["url"]
    members = sorted(doc_id for group in web["exact_duplicate_groups"] for doc_id in group)
    planted = sorted({entry["id"] for entry in web["exact_duplicates"]} | {entry["duplicate_of"] for entry in web["exact_duplicates"]})
    assert members == planted


def test_planted_near_duplicates_are_close_but_not_equal():
    docs = by_id("web")
    for entry in truth()["sources"]["web"]["near_duplicates"]:
        copy, original = docs[entry["id"]]["text"], docs[entry["near_duplicate_of"]]["text"]
        assert copy != original
        a, b = shingles(copy), shingles(original)
        assert len(a & b) / len(a | b) >= 0.6, entry
        assert entry["change"] in ("words", "footer")


def test_only_planted_duplicates_collide_after_normalisation():
    """Across every source, the exact-dedup key (normalised text) repeats only for the planted
    groups, so curation's exact_duplicate drops are predictable."""
    from filters.normalize import normalize_text

    groups: dict[str, list[str]] = {}
    for source in generator().SOURCES:
        field = "content" if source == "code" else "text"
        for row in records(source):
            groups.setdefault(normalize_text(row[field]), []).append(row["id"])
    collisions = sorted(sorted(ids) for ids in groups.values() if len(ids) > 1)
    assert collisions == truth()["sources"]["web"]["exact_duplicate_groups"]


# --- the other sources -----------------------------------------------------------------------------


def test_multilingual_languages_are_recognised():
    from filters.langid import LanguageIdentifier

    languages = truth()["sources"]["multilingual"]["languages"]
    rows = records("multilingual")
    assert 60 <= len(rows) <= 150
    assert {"fr", "de", "es"} <= set(languages.values()) and set(languages.values()) - {"fr", "de", "es"}
    identifier = LanguageIdentifier()
    for row in rows:
        lang, score = identifier.predict(row["text"])
        assert (lang, row["id"]) == (languages[row["id"]], row["id"]) and score >= 0.65


def test_code_columns_and_planted_files():
    import pyarrow.parquet as pq

    for name in (name for name, entry in truth()["files"].items() if entry["source"] == "code"):
        assert pq.read_schema(SAMPLE / name).names == CODE_COLUMNS
    rows = by_id("code")
    assert 300 <= len(rows) <= 500
    assert all(len(row["content"]) <= truth()["sources"]["code"]["max_chars"] for row in rows.values())
    planted = truth()["sources"]["code"]["planted"]
    assert "DO NOT EDIT" in rows[planted["autogenerated"]]["content"].splitlines()[0]
    assert max(len(line) for line in rows[planted["minified"]]["content"].splitlines()) > 1000
    data = rows[planted["data"]]["content"].splitlines()
    assert sum(len(line) for line in data) / len(data) > 100
    assert {row["license"] for row in rows.values()} == {"PSF-2.0", "CC0-1.0"}


def test_long_documents_are_long():
    long = truth()["sources"]["long"]
    rows = records("long")
    assert 6 <= len(rows) <= 10
    for row in rows:
        assert 20_000 <= len(row["text"]) <= 80_000
        assert len(row["text"]) == long["chars"][row["id"]] and row["title"]


def test_math_has_formulas():
    formula = re.compile(r"(\.\. math ?::|\\frac|\\sum|\\int|\\sqrt|\\left|\\binom|:math:`|\$[^$\n]+\$)")
    rows = records("math")
    assert 300 <= len(rows) <= 600
    assert all(formula.search(row["text"]) for row in rows)
    assert {row["source_package"] for row in rows} == {"mpmath", "sympy", "midtrain-templates"}


def test_instruction_synthetic_and_reasoning_formats():
    for row in records("instruction"):
        assert row["text"] == f"### Instruction:\n{row['prompt']}\n\n### Response:\n{row['response']}"
    for row in records("synthetic"):
        assert row["generator"] == "template-v1"
        assert row["text"].endswith(f"\nThe answer is {row['answer']}.")
    for row in records("reasoning"):
        assert "Let's think step by step." in row["text"]
        assert row["text"].splitlines()[-1].startswith("Therefore, ")
    assert 300 <= len(records("instruction")) <= 500
    assert 300 <= len(records("synthetic")) <= 600
    assert 150 <= len(records("reasoning")) <= 300


# --- reproducibility ---------------------------------------------------------------------------------


def assert_regenerated(out: Path, sources: tuple[str, ...]) -> None:
    """``out`` holds a fresh build of ``sources``: same files, bytes and ground truth."""
    regenerated = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    for source in sources:
        assert regenerated["sources"][source] == truth()["sources"][source], source
    names = sorted(name for name, entry in truth()["files"].items() if entry["source"] in sources)
    assert names == sorted(regenerated["files"])
    for name in names:
        assert (out / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_template_sources_regenerate_byte_identically(tmp_path, capsys):
    """Sources made only from this repository's own text regenerate on any Python."""
    sources = generator().VERSION_INDEPENDENT
    assert generator().main(["--out", str(tmp_path), "--only", ",".join(sources)]) == 0
    assert_regenerated(tmp_path, sources)


def test_stdlib_sources_regenerate_byte_identically(tmp_path):
    """Sources built from stdlib/mpmath/sympy text regenerate where the recorded versions run.
    In a fresh interpreter, as `make_sample.py` is meant to run: the test runner's own imports
    and hooks must not leak into the harvest of docstrings."""
    from importlib.metadata import version

    recorded = truth()["generator"]
    python = ".".join(map(str, sys.version_info[:3]))
    packages = {package: version(package) for package in recorded["packages"]}
    if set(recorded["python"].values()) != {python} or packages != recorded["packages"]:
        pytest.skip(f"sample made with Python {recorded['python']} and {recorded['packages']}")
    sources = tuple(name for name in generator().SOURCES if name not in generator().VERSION_INDEPENDENT)
    command = [sys.executable, str(EXAMPLES / "make_sample.py"), "--out", str(tmp_path), "--only", ",".join(sources)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert_regenerated(tmp_path, sources)
