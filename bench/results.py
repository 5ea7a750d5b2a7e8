"""Where every benchmark's JSON goes: ``OUTPUT/<name>.json`` (``bench/results/`` by default),
also printed, so a run's figures are on the terminal and on disk alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(output: Path, name: str, result: dict[str, Any]) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{name}.json"
    text = json.dumps(result, indent=2)
    path.write_text(text + "\n")
    print(text)
    print(f"bench: wrote {path}")
    return path
