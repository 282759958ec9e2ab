"""A model finds its vision projector: the user's choice, else its download's, else the matching one beside it."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.engines.llama import self_test_model
from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.models.model_catalog import PROJECTOR_FILENAME, filename_of, repository_of
from app.core.models.projector_pairing import (
    TEXT_ONLY,
    catalog_projector_path,
    find_projector,
    pairing_key,
    projector_left_unused,
    projector_problem,
)
from app.core.profile.settings import Settings, load_settings, save_settings


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


def _catalog_folder(models_dir: Path, size_label: str) -> Path:
    """Where the download manager keeps a catalog repository's files."""
    folder = models_dir.joinpath(*repository_of(size_label).split("/"))
    folder.mkdir(parents=True)
    return folder


def test_a_catalog_download_finds_its_own_projector_before_any_other_beside_it(tmp_path: Path) -> None:
    folder = _catalog_folder(tmp_path, "0.8B")
    model = write_tiny_qwen35_gguf(folder / filename_of("0.8B", "Q4_K_M"))
    write_tiny_qwen35_projector(folder / "mmproj-a-first-by-name.gguf")  # fits too, but is not its own
    own = write_tiny_qwen35_projector(folder / PROJECTOR_FILENAME)
    assert catalog_projector_path(model) == own
    assert find_projector(model) == own


def test_every_size_keeps_its_projector_in_its_own_folder(tmp_path: Path) -> None:
    small = write_tiny_qwen35_gguf(_catalog_folder(tmp_path, "0.8B") / filename_of("0.8B", "Q4_K_M"))
    large = write_tiny_qwen35_gguf(_catalog_folder(tmp_path, "9B") / filename_of("9B", "Q8_0"))
    assert catalog_projector_path(small) != catalog_projector_path(large)
    assert catalog_projector_path(small).parent == small.parent and catalog_projector_path(large).parent == large.parent
    assert catalog_projector_path(tmp_path / "my-model.gguf") is None  # no catalog download
    assert catalog_projector_path(tmp_path / filename_of("0.8B", "Q4_K_M")) is None  # the name alone is not enough


def test_text_only_is_a_choice_that_wins_over_a_projector_beside_the_model(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")
    assert find_projector(model, {pairing_key(model): TEXT_ONLY}) is None


def test_a_pairing_with_a_projector_of_another_width_is_not_used(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    beside = write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    wide = write_tiny_qwen35_projector(elsewhere / "mmproj-wide.gguf", overrides={"clip.vision.projection_dim": 128})
    assert find_projector(model, {pairing_key(model): str(wide)}) == beside


def test_projectors_are_found_whatever_the_case_of_their_name(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    shouting = write_tiny_qwen35_projector(tmp_path / "MMPROJ-MODEL-F16.GGUF")
    assert find_projector(model) == shouting


def test_a_known_model_width_spares_reading_the_models_header(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF not a header anyone could read")
    projector = write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")
    assert find_projector(model) is None  # its width cannot be read: nothing can be paired
    assert find_projector(model, model_width=self_test_model.EMBEDDING_LENGTH) == projector
    assert find_projector(model, model_width=2 * self_test_model.EMBEDDING_LENGTH) is None


def test_a_chosen_file_that_cannot_give_the_model_image_support_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    another_model = write_tiny_qwen35_gguf(tmp_path / "another.gguf")
    wide = write_tiny_qwen35_projector(tmp_path / "mmproj-wide.gguf", overrides={"clip.vision.projection_dim": 128})
    notes = tmp_path / "notes.gguf"
    notes.write_text("shopping list")
    fitting = write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")

    assert projector_problem(model, another_model) == "“another.gguf” is not a vision projector (mmproj) file."
    assert projector_problem(model, wide) == (
        "“mmproj-wide.gguf” is made for a model 128 wide, and this model is 64 wide: choose the projector of the same model size."
    )
    assert projector_problem(model, notes) == "“notes.gguf” is not a GGUF model file."
    assert projector_problem(model, tmp_path / "gone.gguf").endswith("does not exist.")
    assert projector_problem(model, fitting) is None


def test_deleting_the_last_model_of_a_size_leaves_its_projector_unused(tmp_path: Path) -> None:
    folder = _catalog_folder(tmp_path, "2B")
    q4 = write_tiny_qwen35_gguf(folder / filename_of("2B", "Q4_K_M"))
    q8 = write_tiny_qwen35_gguf(folder / filename_of("2B", "Q8_0"))
    assert projector_left_unused(q4, [q4, q8]) is None  # not downloaded
    projector = write_tiny_qwen35_projector(folder / PROJECTOR_FILENAME)
    assert projector_left_unused(q4, [q4, q8]) is None  # Q8_0 still reads images with it
    assert projector_left_unused(q4, [q4]) == projector
    assert projector_left_unused(tmp_path / "imported.gguf", []) is None


def test_pairings_are_kept_in_the_settings_and_a_damaged_entry_is_dropped(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    settings = Settings(projector_pairings={pairing_key(model): str(tmp_path / "mmproj.gguf")})
    save_settings(settings, tmp_path / "settings.json")
    assert load_settings(tmp_path / "settings.json").projector_pairings == settings.projector_pairings
    (tmp_path / "settings.json").write_text(json.dumps({"projector_pairings": {"a": 3}, "context_size": 4096}))
    damaged = load_settings(tmp_path / "settings.json")
    assert damaged.projector_pairings == {} and damaged.context_size == 4096
    assert settings.load_settings(4096, tmp_path / "mmproj.gguf").projector == tmp_path / "mmproj.gguf"
    assert settings.load_settings(4096).projector is None
