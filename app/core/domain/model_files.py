"""The first check every model file gets, before anything reads it further."""

from __future__ import annotations

import stat
from pathlib import Path

GGUF_MAGIC = b"GGUF"


def gguf_file_problem(path: Path) -> str | None:
    """Why ``path`` is plainly no GGUF model (missing, not a regular file, unreadable, another
    format), as a sentence for the user; None when it starts like one."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return f"The model file “{path}” does not exist."
    if not stat.S_ISREG(mode):  # a folder, a device or a pipe would block or fail the read
        return f"“{path.name}” is not a regular file."
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as error:
        return f"The model file “{path.name}” cannot be read: {error.strerror}."
    if magic != GGUF_MAGIC:
        return f"“{path.name}” is not a GGUF model file."
    return None
