"""The command line: one-line errors with a non-zero exit, and tables on success."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from api.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_bad_config_is_one_line_naming_file_and_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(json.dumps({"output": "x", "sources": [{"name": "a", "path": "*.jsonl", "format": "csv"}]}))
    result = run_cli("curate", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(config) in lines[0] and "sources.0.format" in lines[0]


def test_missing_config_file(tmp_path, capsys):
    assert main(["curate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_mixture_with_zero_weights_is_rejected(tmp_path, capsys):
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        "name: m\ncorpus: x\ntokenizer: t.json\nphases:\n"
        "  - {name: p, tokens: 10, seq_len: 8, sources: [{name: a, weight: 0}]}\n"
    )
    assert main(["mix", "plan", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "phases.0" in err and "weights sum to zero" in err


def test_catalog_of_a_directory_without_shards(tmp_path, capsys):
    assert main(["catalog", str(tmp_path)]) == 2
    assert "no shards" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["--help"], ["mix", "--help"], ["tokenizer", "train", "--help"]])
def test_help(command):
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 0
