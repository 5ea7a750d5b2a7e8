"""pipelines.runtime.ensure_ray started from a short-lived thread, as an API request thread
starts it: the local Ray must outlive that thread (its daemons die with the thread that forked
them). Runs in a subprocess: the test session's own Ray is already up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import os, threading, time
import ray
from pipelines.runtime import ensure_ray

starter = threading.Thread(target=ensure_ray, kwargs={"num_cpus": 1})
starter.start()
starter.join()
time.sleep(2)  # a head that died with the thread is gone by now

@ray.remote
def pid():
    return os.getpid()

print("task ran in", ray.get(pid.remote(), timeout=30))
"""


def test_ray_started_from_a_thread_that_exits_stays_up():
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
           "HOME": str(Path.home())}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "task ran in" in done.stdout
