"""A model finds its vision projector: the user's choice, else the matching one beside it."""

from __future__ import annotations

from pathlib import Path

from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.models.projector_pairing import find_projector


def test_the_projector_beside_a_model_is_found_only_when_it_is_made_for_its_width(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "Qwen3.5-tiny-Q4_K_M.gguf")
    assert find_projector(model) is None
    write_tiny_qwen35_projector(tmp_path / "mmproj-a-wide.gguf", overrides={"clip.vision.projection_dim": 128})
    assert find_projector(model) is None  # another size's: never paired
    matching = write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")
    assert find_projector(model) == matching


def test_the_users_pairing_wins_while_its_file_exists(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    beside = write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    chosen = write_tiny_qwen35_projector(elsewhere / "mmproj-chosen.gguf")
    assert find_projector(model, {str(model): str(chosen)}) == chosen
    chosen.unlink()
    assert find_projector(model, {str(model): str(chosen)}) == beside


def test_a_damaged_file_beside_the_model_is_not_taken_for_a_projector(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    (tmp_path / "mmproj-broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00 not really")
    assert find_projector(model) is None
