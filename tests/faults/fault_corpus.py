"""A small generated web corpus and its curate config, shared by the fault-injection tests."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from pipelines.config import CurateConfig

WORDS = ("river field library bridge market square church children garden station winter "
         "harbour valley orchard lantern meadow quarry ferry chapel cottage").split()


def document(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(6, 12)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        sentences.append(f"The {' and the '.join(words[:2])} were near the {' '.join(words[2:])}.")
    return " ".join(sentences)


def write_corpus(root: Path, files: int, per_file: int, seed: int = 11) -> str:
    """``files`` jsonl files of ``per_file`` English documents each; returns their glob."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for number in range(files):
        with open(root / f"part-{number}.jsonl", "w") as handle:
            for line in range(per_file):
                handle.write(json.dumps({"id": f"{number}-{line}", "text": document(rng)}) + "\n")
    return str(root / "part-*.jsonl")


def curate_config(glob: str, output: Path, **settings) -> CurateConfig:
    return CurateConfig.model_validate({
        "output": str(output),
        "sources": [{"name": "web", "path": glob, "format": "jsonl", "kind": "web", "id_field": "id"}],
        **settings,
    })


def ray_child_env() -> dict[str, str]:
    """The environment for a child process that should drive the test session's Ray instance
    (no second cluster to start) rather than a local one of its own."""
    import ray

    return {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
