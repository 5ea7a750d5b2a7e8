"""A Ray worker SIGKILLed in the middle of a curation run.

The run (``pipelines.curate.run_curation``, as ``midtrain curate`` and ``api.service.curate``
call it) goes in a thread on the session's Ray. The test waits for a staging task to open its
unit's ``*.<pid>.partial`` file, checks that the pid is a Ray worker running the staging map
(``ray::Map(stage_row)``), and SIGKILLs it. The partial file still being there after the worker
is dead proves the kill landed mid-task, before the unit was whole.

Checked: Ray Data retries the lost task (its tasks default to ``max_retries=-1`` for system
failures such as a dead worker; nothing in pipelines/ lowers it), the run completes, and its
output equals an undisturbed run of the same config: the same counts and the same shards,
byte for byte (finalize's writer is deterministic), and ``verify`` passes it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from corpus.verify import verify_output
from fault_corpus import curate_config, write_corpus
from pipelines.curate import config_hash, run_curation
from pipelines.staging import staging_dir

FILES, PER_FILE = 4, 400


def process_title(pid: int) -> str:
    """What Ray set as the process's title (``ray::<task>``); empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def wait_for_exit(pid: int, deadline: float) -> None:
    while process_title(pid):  # a zombie's title is empty too
        assert time.monotonic() < deadline, f"worker {pid} still alive after SIGKILL"
        time.sleep(0.01)


def kill_a_staging_worker(directory: Path, run: threading.Thread) -> tuple[int, Path]:
    """SIGKILL the first Ray worker seen writing a staged unit; returns its pid and its
    partial file, which must still be there (the unit unfinished) once the worker is dead."""
    deadline, titles = time.monotonic() + 120, set()
    while True:
        assert run.is_alive(), "the run ended before a worker could be killed"
        assert time.monotonic() < deadline, f"no staging task seen within 120 s (writers' titles: {titles})"
        for partial in directory.glob("*.partial") if directory.is_dir() else []:
            pid = int(partial.name.split(".")[-2])
            titles.add(title := process_title(pid))
            if title.startswith("ray::Map(stage_row)"):
                os.kill(pid, signal.SIGKILL)
                wait_for_exit(pid, time.monotonic() + 30)
                return pid, partial
        time.sleep(0.01)


def test_a_worker_killed_mid_staging_is_retried_and_the_output_is_unchanged(ray_runtime, tmp_path):
    glob = write_corpus(tmp_path / "input", FILES, PER_FILE)
    config = curate_config(glob, tmp_path / "disturbed")
    outcome: dict = {}

    def curate() -> None:
        try:
            outcome["manifest"] = run_curation(config, progress=lambda line: None)
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    run = threading.Thread(target=curate, name="curation")
    run.start()
    try:
        pid, partial = kill_a_staging_worker(staging_dir(config.output, config_hash(config)), run)
        assert partial.exists(), "the killed task had already finished its unit: the kill was not mid-task"
    finally:
        run.join(timeout=300)
    assert not run.is_alive()
    if "error" in outcome:
        raise AssertionError(f"the run failed after worker {pid} was killed") from outcome["error"]
    disturbed = outcome["manifest"]

    clean = run_curation(config.model_copy(update={"output": str(tmp_path / "clean")}),
                         progress=lambda line: None)
    assert disturbed.counts == clean.counts and disturbed.counts.input == FILES * PER_FILE
    assert disturbed.counts.kept > 0
    assert [(s.path, s.rows, s.sha256) for s in disturbed.shards] == [(s.path, s.rows, s.sha256) for s in clean.shards]
    assert verify_output(config.output).ok
    assert not (Path(config.output) / ".staging").exists()  # the dead task's partial file went with it
