"""The Qwen3.5 models the app offers, with file metadata pinned from the Hugging Face Hub.

What exists (sizes, quantizations, repositories, file names) is defined here in code. What the
Hub says about each file (the commit it was read at, its size and sha256) is data: a snapshot
shipped in ``resources/catalog.json`` so the catalog shows offline, replaced by a cached copy
when the user explicitly refreshes the catalog. Downloads verify against these figures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.atomic_file import write_text_atomically
from app.core.models.hub_access import API_TIMEOUT_SECONDS, describe_hub_error
from app.core.profile.app_paths import RESOURCES_DIR

logger = logging.getLogger(__name__)

SIZES = ("0.8B", "2B", "4B", "9B")
QUANTIZATIONS = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")
PROJECTOR_FILENAME = "mmproj-F16.gguf"
SNAPSHOT_PATH = RESOURCES_DIR / "catalog.json"
CATALOG_FORMAT = 1

QUALITY_HINTS = {
    "Q4_K_M": "Recommended: good quality, smallest download",
    "Q5_K_M": "Better quality, a little larger",
    "Q6_K": "Near-original quality",
    "Q8_0": "Practically original quality, largest",
}

# File size relative to Q4_K_M, from published Qwen3.5 files (9B Q5_K_M and Q8_0, 4B Q6_K);
# used only to show "≈ size" for files whose exact size the catalog has not read yet.
_SIZE_RATIO_TO_Q4_K_M = {"Q4_K_M": 1.0, "Q5_K_M": 1.158, "Q6_K": 1.286, "Q8_0": 1.677}


def repository_of(size_label: str) -> str:
    return f"unsloth/Qwen3.5-{size_label}-GGUF"


def filename_of(size_label: str, quantization: str) -> str:
    return f"Qwen3.5-{size_label}-{quantization}.gguf"


@dataclass(frozen=True)
class CatalogFile:
    """One file on the Hub. ``revision`` is the commit its size and sha256 were read at."""

    repo_id: str
    filename: str
    revision: str | None
    size: int | None
    sha256: str | None
    size_is_estimate: bool = False

    @property
    def is_pinned(self) -> bool:
        """True when downloads can be verified against figures read from the Hub."""
        return bool(self.revision and self.sha256 and self.size)


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable model: a size in one quantization, plus its vision projector."""

    size_label: str
    quantization: str
    model: CatalogFile
    projector: CatalogFile | None

    @property
    def display_name(self) -> str:
        return f"Qwen3.5 {self.size_label} · {self.quantization}"

    @property
    def quality_hint(self) -> str:
        return QUALITY_HINTS[self.quantization]


class CatalogError(Exception):
    """The catalog could not be refreshed; the message is written for the user."""


class ModelCatalog:
    """The catalog, from the cached refresh if there is one, else the shipped snapshot."""

    def __init__(self, cache_path: Path, snapshot_path: Path = SNAPSHOT_PATH) -> None:
        self._cache_path = cache_path
        self._snapshot_path = snapshot_path
        self._metadata = self._load_metadata()

    @property
    def refreshed_at(self) -> float | None:
        """When the metadata was read from the Hub (None: only the shipped snapshot)."""
        return self._metadata.get("fetched_at")

    def entries(self) -> list[CatalogEntry]:
        metadata = self._metadata  # one snapshot: a refresh on another thread replaces it whole
        return [_entry(metadata, size, quantization) for size in SIZES for quantization in QUANTIZATIONS]

    def entry(self, size_label: str, quantization: str) -> CatalogEntry:
        return _entry(self._metadata, size_label, quantization)

    def refresh(self, api, endpoint: str | None = None) -> dict[str, str]:
        """Reads every repository's current commit and file sizes and hashes from the Hub.

        ``api`` is a ``huggingface_hub.HfApi`` already set up for endpoint, proxy and token.
        Each repository is read on its own: one that fails keeps its earlier figures and is
        reported, the others are updated. Returns the failures, ``{repository: message}``;
        raises ``CatalogError`` when every repository failed (and then nothing changes).
        """
        # Imported here: huggingface_hub is only needed for this explicit action, and importing
        # it would slow every start of the app.
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        repositories: dict[str, dict] = dict(self._metadata.get("repositories", {}))
        failures: dict[str, str] = {}
        for size_label in SIZES:
            repo_id = repository_of(size_label)
            try:
                info = api.model_info(repo_id, files_metadata=True, timeout=API_TIMEOUT_SECONDS)
            except (HfHubHTTPError, httpx2.HTTPError, OSError) as error:
                failures[repo_id] = describe_hub_error(error, repo_id=repo_id, endpoint=endpoint)
                continue
            files = {}
            for sibling in info.siblings or []:
                if not sibling.rfilename.endswith(".gguf"):
                    continue
                lfs = sibling.lfs
                files[sibling.rfilename] = {
                    "size": lfs.size if lfs else sibling.size,
                    "sha256": lfs.sha256 if lfs else None,
                }
            repositories[repo_id] = {"revision": info.sha, "files_complete": True, "files": files}
        if len(failures) == len(SIZES):
            first = next(iter(failures.values()))
            raise CatalogError(f"The catalog could not be refreshed: {first}")
        metadata = {"format": CATALOG_FORMAT, "fetched_at": time.time(), "repositories": repositories}
        self._write_cache(metadata)
        # Readers on other threads take one reference to the metadata per call and never see it
        # change under them: it is replaced in one assignment, never modified in place.
        self._metadata = metadata
        return failures

    # ---------------------------------------------------------------------------------- internals

    def _load_metadata(self) -> dict:
        for path in (self._cache_path, self._snapshot_path):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as error:
                logger.warning("Ignoring unreadable catalog %s: %s", path, error)
                continue
            if isinstance(data, dict) and data.get("format") == CATALOG_FORMAT:
                return data
        return {"format": CATALOG_FORMAT, "repositories": {}}

    def _write_cache(self, metadata: dict) -> None:
        write_text_atomically(self._cache_path, json.dumps(metadata, indent=1))


def _entry(metadata: dict, size_label: str, quantization: str) -> CatalogEntry:
    repo_id = repository_of(size_label)
    model = _file(metadata, repo_id, filename_of(size_label, quantization))
    if model.size is None:
        base = _file(metadata, repo_id, filename_of(size_label, "Q4_K_M")).size
        if base is not None:
            estimate = round(base * _SIZE_RATIO_TO_Q4_K_M[quantization])
            model = CatalogFile(repo_id, model.filename, model.revision, estimate, None, size_is_estimate=True)
    projector = _file(metadata, repo_id, PROJECTOR_FILENAME)
    repository = metadata.get("repositories", {}).get(repo_id, {})
    if repository.get("files_complete") and PROJECTOR_FILENAME not in repository.get("files", {}):
        projector = None  # a full listing from the Hub says this repository has none
    return CatalogEntry(size_label, quantization, model, projector)


def _file(metadata: dict, repo_id: str, filename: str) -> CatalogFile:
    repository = metadata.get("repositories", {}).get(repo_id, {})
    facts = repository.get("files", {}).get(filename, {})
    return CatalogFile(repo_id, filename, repository.get("revision"), facts.get("size"), facts.get("sha256"))
