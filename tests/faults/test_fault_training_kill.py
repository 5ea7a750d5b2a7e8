"""A training run SIGKILLed during and between checkpoint writes, then resumed.

A child process runs ``trainer.train.run_training`` on a small synthetic mixture (as
tests/test_trainer_train.py builds them: 12 + 6 steps, a checkpoint every 5 steps and at each
phase's end) and SIGKILLs itself at one of these moments:

- ``torn_checkpoint``: inside the step-10 checkpoint's ``torch.save``, once half of the
  serialised bytes are on disk in ``step-0000010.pt.tmp`` (fsynced): a torn file is left;
- ``before_pointer``: after ``step-0000010.pt`` is renamed whole, before ``latest`` is
  rewritten to name it;
- ``between_checkpoints``: at step 8, with no checkpoint being written.

Checked: ``latest`` still names step 5 (never the torn file); the torn temporary file does
not load as a checkpoint; ``run_training(resume=True)`` says it resumes after step 5, ignores
the torn file (the resumed run overwrites it through its own temporary name and leaves no
``.tmp``), and the losses of every step equal an uninterrupted run's exactly (CPU training is
deterministic), as does the summary's per-phase record.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_trainer_train import losses, make_mixture, train_spec
from trainer.train import run_training

CHILD = r"""
import io, os, signal, sys
from pathlib import Path

import torch
from trainer import train
from trainer.spec import TrainSpec

mode, spec_file = sys.argv[1], sys.argv[2]
spec = TrainSpec.model_validate_json(Path(spec_file).read_text())


def die():
    os.kill(os.getpid(), signal.SIGKILL)


real_save = torch.save


def save_torn_at_step_10(state, path, *args, **kwargs):
    if mode == "torn_checkpoint" and str(path).endswith("step-0000010.pt.tmp"):
        buffer = io.BytesIO()
        real_save(state, buffer, *args, **kwargs)
        data = buffer.getvalue()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        die()
    return real_save(state, path, *args, **kwargs)


real_write = train.write_text_atomic


def die_before_pointing_at_step_10(path, text):
    if mode == "before_pointer" and Path(path).name == "latest" and text.startswith("step-0000010.pt"):
        die()
    return real_write(path, text)


def die_at_step_8(line):
    if mode == "between_checkpoints" and " step 8/" in line:
        die()


torch.save = save_torn_at_step_10
train.write_text_atomic = die_before_pointing_at_step_10
train.run_training(spec, progress=die_at_step_8)
sys.exit(3)  # the fault never fired
"""


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> str:
    return make_mixture(tmp_path_factory.mktemp("mix"), {"short": (32, 48), "long": (64, 24)})


@pytest.fixture(scope="module")
def reference(mixture, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("uninterrupted")
    summary = run_training(train_spec(mixture, output, log_every=1))
    return {"output": output, "summary": summary}


@pytest.mark.parametrize("moment", ["torn_checkpoint", "before_pointer", "between_checkpoints"])
def test_a_training_run_killed_at_a_checkpoint_resumes_from_the_last_whole_one(reference, mixture, tmp_path,
                                                                                 moment):
    output = tmp_path / "killed"
    spec = train_spec(mixture, output, log_every=1)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    child = subprocess.run([sys.executable, "-c", CHILD, moment, str(spec_file)],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, f"the child was not killed: {child.returncode}\n{child.stderr[-2000:]}"

    checkpoints = output / "checkpoints"
    assert (checkpoints / "latest").read_text() == "step-0000005.pt\n"
    torn = checkpoints / "step-0000010.pt.tmp"
    if moment == "torn_checkpoint":
        assert 0 < torn.stat().st_size
        with pytest.raises(Exception):  # whatever torch raises for half a zip archive
            torch.load(torn, weights_only=True)
        assert not (checkpoints / "step-0000010.pt").exists()
    elif moment == "before_pointer":
        assert torch.load(checkpoints / "step-0000010.pt", weights_only=True)["position"]["step"] == 10
    else:
        assert sorted(path.name for path in checkpoints.iterdir()) == ["latest", "step-0000005.pt"]

    lines: list[str] = []
    summary = run_training(spec, progress=lines.append, resume=True)
    assert any("resuming after step 5" in line for line in lines), lines[:3]
    assert not list(checkpoints.glob("*.tmp"))
    assert (checkpoints / "latest").read_text() == "step-0000018.pt\n"
    assert torch.load(checkpoints / "step-0000010.pt", weights_only=True)["position"]["step"] == 10
    assert losses(output) == losses(reference["output"])
    assert len(losses(output)) == 12 + 6
    assert summary["phases"] == reference["summary"]["phases"]
