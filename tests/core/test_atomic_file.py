"""Rewriting the app's small files: the new text replaces the old whole, and nothing is left beside it."""

from __future__ import annotations

from pathlib import Path

from app.core.atomic_file import write_text_atomically


def test_a_rewrite_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "new folder" / "settings.json"
    write_text_atomically(path, "first")
    write_text_atomically(path, "second, longer ✓")
    assert path.read_text(encoding="utf-8") == "second, longer ✓"
    assert [item.name for item in path.parent.iterdir()] == ["settings.json"]
