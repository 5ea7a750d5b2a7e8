"""Atomic file writes, shared by every stage: a reader sees the old file or the new one,
never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


class OutputWriteError(OSError):
    """An output file could not be written (disk full, file too large, ...): the message
    names the file and the cause on one line."""

    @classmethod
    def of(cls, path: str | Path, error: OSError) -> "OutputWriteError":
        """``error`` (from Python or from pyarrow, whose messages span lines) as one line
        that names ``path``; the errno is kept."""
        number = getattr(error, "errno", None)
        if not number:  # pyarrow raises a bare OSError: "[Errno 28] Error writing bytes ... Detail: ..."
            import re

            found = re.search(r"\[errno (\d+)\]", str(error), re.IGNORECASE)
            number = int(found.group(1)) if found else None
        cause = os.strerror(number) if number else " ".join(str(error).split()) or type(error).__name__
        return cls(number or 0, f"cannot write {path}: {cause}")

    def __str__(self) -> str:
        return self.strerror
