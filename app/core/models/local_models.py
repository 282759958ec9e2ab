"""Models already on this computer: downloaded by the app, imported by the user, or found in
the Hugging Face cache that other tools (huggingface-cli, transformers…) fill."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.core.domain.model_files import gguf_file_problem

logger = logging.getLogger(__name__)


class ModelSource(StrEnum):
    DOWNLOADED = "downloaded"  # in the app's models folder, verified after download
    IMPORTED = "imported"  # a file the user opened or dropped; it stays where it is
    HUGGING_FACE_CACHE = "hugging_face_cache"  # managed by huggingface_hub, not by the app


@dataclass(frozen=True)
class LocalModel:
    path: Path
    size: int
    source: ModelSource

    @property
    def name(self) -> str:
        return self.path.stem


def is_projector(path: Path) -> bool:
    """Vision projectors (``mmproj-*.gguf``) accompany a model; they cannot be chatted with."""
    return path.name.lower().startswith("mmproj")


def find_local_models(
    downloaded: Iterable[Path],
    imported: Iterable[Path],
    *,
    hugging_face_cache: Path | None = None,
) -> list[LocalModel]:
    """Every usable model file, each listed once (downloads first), missing files left out.

    ``downloaded`` must hold only complete, verified downloads: the download manager's list,
    never a scan of the folder, so a partial file is never offered.
    """
    found: dict[Path, LocalModel] = {}

    def add(path: Path, source: ModelSource) -> None:
        # Identity by the real file, but keep the path as given: the Hugging Face cache's
        # snapshot links carry the file's name, their targets only a hash.
        try:
            real = path.resolve()
            size = real.stat().st_size
        except OSError:
            return  # moved or deleted since it was recorded
        if real not in found and not is_projector(path):
            found[real] = LocalModel(path.absolute(), size, source)

    for path in downloaded:
        add(path, ModelSource.DOWNLOADED)
    for path in imported:
        if gguf_file_problem(path) is None:  # junk once opened by mistake is never offered
            add(path, ModelSource.IMPORTED)
    for path in _cached_gguf_files(hugging_face_cache):
        add(path, ModelSource.HUGGING_FACE_CACHE)
    return sorted(found.values(), key=lambda model: model.name.lower())


def _cached_gguf_files(cache_dir: Path | None) -> list[Path]:
    from huggingface_hub import constants  # cheap, unlike the scanner and its HTTP client

    if not Path(cache_dir or constants.HF_HUB_CACHE).is_dir():
        return []  # most users: no Hugging Face cache, so start without loading the Hub client
    # Imported here: the scanner brings huggingface_hub's HTTP stack (~0.2 s and ~25 MB).
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    except OSError as error:
        logger.warning("Could not read the Hugging Face cache: %s", error)
        return []
    return [
        cached_file.file_path
        for repository in cache.repos
        for revision in repository.revisions
        for cached_file in revision.files
        if cached_file.file_name.lower().endswith(".gguf")
    ]
