"""Disk full while a curation run writes its shards.

``midtrain curate`` runs in a child process on the test session's Ray. Once staging and fuzzy
dedup are done, just before finalize writes the shards, the child makes the next writes fail
for real:

- ``tmpfs``: OUT is on a small tmpfs mounted for the test, and the child fills it with a
  filler file, leaving 112 KiB free: the first 300-row shard (about 70 KiB) is finished, the
  second gets ENOSPC from the kernel. Needs root (``mount``); skipped, with the reason, where mounting is refused.
- ``rlimit``: unprivileged, everywhere: the child lowers its ``RLIMIT_FSIZE`` to 64 KiB (with
  SIGXFSZ ignored), so the first shard's write gets EFBIG from the kernel. OUT already holds an
  earlier, finished run of the same config, whose manifest must not survive.

Checked: exit status 1 with one ``midtrain: error:`` line naming the shard and the cause, no
traceback; no Parquet file outside the staging area (no torn shard under a final name, no
finished shard without a manifest to account for it), no ``.tmp`` left; the staged units are
whole; ``verify`` does not pass the output; and once the disk has room, ``--resume`` finishes
the run from the staged units and ``verify`` passes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.verify import verify_output
from fault_corpus import curate_config, ray_child_env, write_corpus
from pipelines.curate import run_curation

FILES, PER_FILE, SHARD_ROWS = 3, 300, 300  # shards of about 70 KiB

CHILD = r"""
import errno, os, resource, signal, sys

import pipelines.curate as curate
from api.cli import main

mode, config, filler, leave = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
real_finalize = curate.finalize


def fill_the_disk():
    stat = os.statvfs(filler.rsplit("/", 1)[0])
    room = stat.f_bavail * stat.f_frsize - leave
    block = b"\0" * (1 << 20)
    with open(filler, "wb") as handle:
        try:
            while room > 0:
                room -= handle.write(block[:min(room, len(block))])
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error


def finalize_on_a_full_disk(*args, **kwargs):
    if mode == "tmpfs":
        fill_the_disk()
    else:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (leave, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return real_finalize(*args, **kwargs)


curate.finalize = finalize_on_a_full_disk
sys.exit(main(["curate", config]))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_corpus(tmp_path_factory.mktemp("disk-full-input"), FILES, PER_FILE)


@pytest.fixture
def tmpfs(tmp_path):
    """A 16 MiB tmpfs, unmounted afterwards; skips where mounting is not permitted."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the RLIMIT_FSIZE variant covers a failing shard write")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def run_child(mode: str, config_file: Path, filler: Path, leave: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, mode, str(config_file), str(filler), str(leave)],
                          env=ray_child_env(), capture_output=True, text=True, timeout=300)


def check_failed_run(done: subprocess.CompletedProcess, out: Path, shard: str, cause: str) -> None:
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("midtrain: error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0] == f"midtrain: error: cannot write {out / 'shards' / 'domain=web' / shard}: {cause}"

    assert not (out / "manifest.json").exists()
    staging = out / ".staging"
    outside = [path for path in out.rglob("*.parquet") if staging not in path.parents]
    assert outside == [], "a failed run left Parquet files that a reader globbing OUT would take as data"
    assert not [path for path in out.rglob("*.tmp")]
    staged = sorted(staging.rglob("input-*.parquet"))
    assert len(staged) == FILES
    assert sum(pq.read_metadata(path).num_rows for path in staged) == FILES * PER_FILE  # whole units

    verification = verify_output(out)
    assert not verification.ok and "no manifest" in verification.findings[0]


def test_disk_full_on_tmpfs_fails_cleanly_and_resume_finishes(ray_runtime, corpus, tmpfs, tmp_path):
    out = tmpfs / "out"
    config = curate_config(corpus, out, shard_rows=SHARD_ROWS)
    config_file = tmp_path / "curate.json"
    config_file.write_text(config.model_dump_json())
    filler = tmpfs / "filler"

    done = run_child("tmpfs", config_file, filler, 112 * 1024)
    assert filler.stat().st_size > 1 << 20  # the disk was filled, not just left small
    # part-00000 was finished and renamed before the disk ran out: it is gone too
    check_failed_run(done, out, "part-00001.parquet", "No space left on device")

    filler.unlink()
    manifest = run_curation(config, progress=lambda line: None, resume=True)
    assert manifest.units_resumed == FILES and manifest.counts.input == FILES * PER_FILE
    assert len(manifest.shards) >= 2
    assert verify_output(out).ok


def test_file_size_limit_on_shard_write_fails_cleanly_and_resume_finishes(ray_runtime, corpus, tmp_path):
    out = tmp_path / "out"
    config = curate_config(corpus, out, shard_rows=SHARD_ROWS)
    config_file = tmp_path / "curate.json"
    config_file.write_text(config.model_dump_json())
    earlier = run_curation(config, progress=lambda line: None)  # a finished run the failed one replaces
    assert verify_output(out).ok and (out / "manifest.json").exists()

    done = run_child("rlimit", config_file, tmp_path / "unused", 32 * 1024)
    check_failed_run(done, out, "part-00000.parquet", "File too large")

    manifest = run_curation(config, progress=lambda line: None, resume=True)
    assert manifest.units_resumed == FILES
    assert [(s.path, s.sha256) for s in manifest.shards] == [(s.path, s.sha256) for s in earlier.shards]
    assert verify_output(out).ok
    assert json.loads((out / "manifest.json").read_text())["run_id"] == manifest.run_id
