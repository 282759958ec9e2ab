"""Models already on this computer: downloaded, imported, or in the Hugging Face cache."""

from __future__ import annotations

import shutil
from pathlib import Path

from huggingface_hub import hf_hub_download

from app.core.models.local_models import ModelSource, find_local_models
from tests.hub_server import HubServer


def test_downloaded_and_imported_models_are_listed_once_each(tmp_path: Path, tiny_model: Path) -> None:
    downloaded = tmp_path / "models" / "Qwen3.5-2B-Q4_K_M.gguf"
    imported = tmp_path / "mine" / "my-finetune.gguf"
    for path in (downloaded, imported):
        path.parent.mkdir(parents=True)
        shutil.copy(tiny_model, path)

    models = find_local_models([downloaded], [imported, downloaded], hugging_face_cache=tmp_path / "no-cache")

    assert [(model.name, model.source) for model in models] == [
        ("my-finetune", ModelSource.IMPORTED),
        ("Qwen3.5-2B-Q4_K_M", ModelSource.DOWNLOADED),
    ]
    assert all(model.size == tiny_model.stat().st_size for model in models)


def test_missing_files_and_vision_projectors_are_not_offered(tmp_path: Path, tiny_model: Path) -> None:
    projector = tmp_path / "mmproj-F16.gguf"
    shutil.copy(tiny_model, projector)
    models = find_local_models([projector], [tmp_path / "deleted-since.gguf"], hugging_face_cache=tmp_path / "none")
    assert models == []


def test_gguf_files_in_the_hugging_face_cache_are_found(tmp_path: Path, tiny_model: Path, hub_server: HubServer) -> None:
    hub_server.add_file("someone/Other-GGUF", "other-Q4_K_M.gguf", tiny_model)
    hub_server.add_file("someone/Other-GGUF", "README.md", b"# readme", lfs=False)
    cache = tmp_path / "hf-cache"
    for filename in ("other-Q4_K_M.gguf", "README.md"):
        hf_hub_download("someone/Other-GGUF", filename, cache_dir=cache, endpoint=hub_server.endpoint, token=False)

    models = find_local_models([], [], hugging_face_cache=cache)

    assert [(model.name, model.source) for model in models] == [("other-Q4_K_M", ModelSource.HUGGING_FACE_CACHE)]
    assert models[0].path.read_bytes() == tiny_model.read_bytes()
