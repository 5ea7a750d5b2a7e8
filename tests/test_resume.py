"""``midtrain curate --resume`` after a real interruption: the CLI is killed mid-run, and the
resumed run stages only the inputs the killed one had not finished, yet writes exactly what
an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.config import CurateConfig
from pipelines.curate import config_hash, run_curation
from pipelines.staging import staging_dir

from faults.fault_corpus import document  # the fault tests' generated web pages

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow
FILES, PER_FILE = 6, 500


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> CurateConfig:
    root = tmp_path_factory.mktemp("resume")
    rng = random.Random(11)
    for number in range(FILES):
        with open(root / f"part-{number}.jsonl", "w") as handle:
            for line in range(PER_FILE):
                handle.write(json.dumps({"id": f"{number}-{line}", "text": document(rng)}) + "\n")
    return CurateConfig.model_validate({
        "output": str(root / "out"),
        "sources": [{"name": "web", "path": str(root / "part-*.jsonl"), "format": "jsonl",
                     "kind": "web", "id_field": "id"}],
    })


def kill_after_first_input(config: CurateConfig, config_file: Path) -> int:
    """Run the CLI in its own process group and kill the group once one input is staged;
    returns how many inputs were staged whole when it died."""
    directory = staging_dir(config.output, config_hash(config))
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    process = subprocess.Popen([str(BIN / "midtrain"), "curate", str(config_file)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(directory.glob("input-*.parquet")):
            assert process.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, "no input was staged within 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    return len(list(directory.glob("input-*.parquet")))


def test_resume_after_kill_finishes_only_what_is_missing(ray_runtime, config, tmp_path):
    config_file = tmp_path / "curate.json"
    config_file.write_text(config.model_dump_json())
    finished = kill_after_first_input(config, config_file)
    assert 1 <= finished < FILES
    assert not (Path(config.output) / "manifest.json").exists()

    lines: list[str] = []
    resumed = run_curation(config, progress=lines.append, resume=True)
    # Ray workers of the killed run can outlive it and finish more whole units before the
    # resume looks: it reuses at least what was there, and never the whole input.
    assert finished <= resumed.units_resumed < FILES
    assert any(f"from {FILES - resumed.units_resumed} units" in line for line in lines)

    clean = run_curation(config.model_copy(update={"output": str(tmp_path / "clean")}),
                         progress=lambda line: None)
    assert resumed.counts == clean.counts and resumed.counts.input == FILES * PER_FILE
    assert [(s.path, s.sha256) for s in resumed.shards] == [(s.path, s.sha256) for s in clean.shards]
