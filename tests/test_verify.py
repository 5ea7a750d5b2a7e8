"""``corpus.verify``: a curated output checks clean, and each kind of damage is found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.verify import verify_output
from pipelines.config import CurateConfig
from pipelines.curate import run_curation


@pytest.fixture(scope="module")
def curated(ray_runtime, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    lines = [json.dumps({"id": str(i), "text": f"def f{i}(x):\n    return x * {i} + {i % 7}\n"}) for i in range(30)]
    lines[4] = "{not json"  # quarantined
    lines[9] = lines[8].replace('"id": "8"', '"id": "dup"')  # an exact duplicate of 8: dropped
    (root / "code.jsonl").write_text("\n".join(lines) + "\n")
    config = CurateConfig.model_validate({
        "output": str(root / "out"),
        "sources": [{"name": "code", "path": str(root / "code.jsonl"), "format": "jsonl", "kind": "code",
                     "id_field": "id"}],
    })
    run_curation(config, progress=lambda line: None)
    return root / "out"


@pytest.fixture
def copy(curated, tmp_path) -> Path:
    target = tmp_path / "out"
    shutil.copytree(curated, target)
    return target


def first_shard(out: Path) -> Path:
    manifest = json.loads((out / "manifest.json").read_text())
    return out / manifest["shards"][0]["path"]


def test_a_whole_output_verifies(curated):
    result = verify_output(curated)
    manifest = json.loads((curated / "manifest.json").read_text())
    assert result.ok, result.findings
    assert manifest["counts"]["quarantined"] == 1 and sum(manifest["counts"]["dropped"].values()) >= 1
    assert result.shards == len(manifest["shards"]) and result.rows == manifest["counts"]["kept"]


def test_a_changed_byte_is_found(copy):
    shard = first_shard(copy)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    findings = verify_output(copy).findings
    assert any("sha256" in line and shard.name in line for line in findings), findings


def test_a_torn_shard_is_found(copy):
    shard = first_shard(copy)
    shard.write_bytes(shard.read_bytes()[:-40])
    findings = verify_output(copy).findings
    assert any("bytes, the manifest says" in line for line in findings)
    assert any("unreadable Parquet" in line for line in findings), findings


def test_a_missing_shard_and_a_stray_one_are_found(copy):
    shard = first_shard(copy)
    stray = shard.with_name("part-99999.parquet")
    shard.rename(stray)
    findings = verify_output(copy).findings
    assert any(line.endswith(": missing") for line in findings)
    assert any("not in the manifest" in line and "part-99999" in line for line in findings), findings


def test_counts_that_do_not_add_up_are_found(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["counts"]["input"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    findings = verify_output(copy).findings
    assert any("counting invariant broken" in line for line in findings)
    assert any("inputs read" in line for line in findings), findings


def test_lost_quarantine_records_are_found(copy):
    for path in (copy / "quarantine").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.slice(0, 0), path)
    findings = verify_output(copy).findings
    assert any(line.startswith("quarantine/: 0 rows") for line in findings), findings


def test_no_manifest_is_one_finding(tmp_path):
    (tmp_path / "shards").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "shards" / "part-0.parquet")
    result = verify_output(tmp_path)
    assert not result.ok and len(result.findings) == 1 and "no manifest" in result.findings[0]


def test_the_command_says_ok_or_lists_the_problems_and_fails(curated, copy, capsys):
    from api.cli import main

    assert main(["verify", str(curated)]) == 0
    assert capsys.readouterr().out.strip().endswith("sha256 and counts as the manifest says")
    first_shard(copy).unlink()
    assert main(["verify", str(copy)]) == 1
    captured = capsys.readouterr()
    assert ": missing" in captured.out and "problems" in captured.err
