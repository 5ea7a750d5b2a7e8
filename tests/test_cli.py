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


def test_schedule_plot(tmp_path, capsys):
    import numpy as np

    from mixer.stream import PhaseInfo, write_phase

    rng = np.random.default_rng(0)
    for name, seq_len, n in (("short", 32, 48), ("long", 64, 24)):
        info = PhaseInfo(name, seq_len, n, n * seq_len, ["web-a"], ["web"], fingerprint="a" * 64)
        tokens = rng.integers(0, 64, size=(n, seq_len))
        write_phase(tmp_path / "mix", info, tokens, np.zeros_like(tokens), np.zeros_like(tokens))
    spec = {
        "name": "t", "mixture": str(tmp_path / "mix"), "output": str(tmp_path / "run"),
        "model": {"vocab_size": 64, "d_model": 32, "n_layers": 1, "n_heads": 4},
        "schedule": {"kind": "cosine", "warmup_tokens": 256},
        "phases": [{"name": "short", "mixture_phase": "short", "seq_len": 32, "batch_size": 4},
                   {"name": "long", "mixture_phase": "long", "seq_len": 64, "batch_size": 4}],
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(spec))
    assert main(["schedule", "plot", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    default = tmp_path / "run" / "plots" / "schedule.png"
    assert lines[0] == str(default) and default.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines[1].startswith("short: tokens 0..1,536 (1,536 in 12 steps of 128), lr ")
    assert lines[2].startswith("long: tokens 1,536..3,072 (1,536 in 6 steps of 256), lr ") and len(lines) == 3
    assert main(["schedule", "plot", str(path), "--output", str(tmp_path / "s.png")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "s.png") and (tmp_path / "s.png").exists()

    spec["phases"][1]["seq_len"] = 128  # not what the mixture was packed to
    path.write_text(json.dumps(spec))
    assert main(["schedule", "plot", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "phase 'long': seq_len 128" in err
    spec["schedule"] = {"kind": "cosine", "warmup": 256}  # a typo
    path.write_text(json.dumps(spec))
    assert main(["schedule", "plot", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "schedule" in err and str(path) in err


def test_serve_passes_its_log_options_to_uvicorn(monkeypatch):
    import uvicorn

    import api.app

    runs: list[dict] = []
    monkeypatch.setattr(api.app, "create_app", lambda state_path=None: ("app", state_path))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append({"app": app, **options}))
    assert main(["serve", "--port", "8123", "--state", "s.duckdb"]) == 0
    assert main(["serve", "--no-access-log", "--log-level", "warning"]) == 0
    assert main(["serve", "--access-log"]) == 0
    assert runs[0] == {"app": ("app", "s.duckdb"), "host": "127.0.0.1", "port": 8123, "log_level": "info",
                       "access_log": True}  # the defaults: uvicorn's own, access log on
    assert (runs[1]["access_log"], runs[1]["log_level"]) == (False, "warning")
    assert runs[2]["access_log"] is True
    with pytest.raises(SystemExit):
        main(["serve", "--log-level", "loud"])
