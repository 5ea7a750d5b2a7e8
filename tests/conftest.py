"""Shared fixtures. One Ray instance serves the whole test session (ray.init costs seconds)."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
# The planner's token-count cache (mixer/counts.py) goes to a folder of this session, not ~/.cache.
os.environ.setdefault("MIDTRAIN_CACHE", tempfile.mkdtemp(prefix="midtrain-test-cache-"))


@pytest.fixture(scope="session")
def ray_runtime():
    """A local Ray instance shared by every test that asks for it."""
    import ray

    from pipelines.runtime import ensure_ray

    ensure_ray()
    yield ray
    ray.shutdown()
