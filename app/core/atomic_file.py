"""Small files the app rewrites (settings, caches, verdicts, tool settings), written so that a
crash or power cut leaves the old file or the new one, never half of either."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    """Writes ``text`` to a file beside ``path``, flushes it to the disk, then renames it over
    ``path`` (creating the folder first). Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())  # else a power cut can leave the new name on an empty file
    os.replace(temporary, path)
