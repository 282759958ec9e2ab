"""GUI-side owner of everything about models: catalog, local files, downloads, fit advice.

Core objects report from their own worker threads through plain callbacks; this controller turns
those into Qt signals, so widgets only ever change on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.profile.app_paths import AppPaths
from app.core.models.fit_estimate import (
    QWEN35_SHAPES,
    FitAssessment,
    ModelShape,
    Recommendation,
    assess_fit,
    largest_context,
    recommend_model,
)
from app.core.domain.hardware import HardwareInfo
from app.core.models.hardware_probe import HardwareProbe
from app.core.models.hub_access import HubSettings, OfflineError, make_hf_api
from app.core.models.local_models import LocalModel, ModelSource, find_local_models
from app.core.models.model_catalog import CatalogEntry, CatalogError, ModelCatalog
from app.core.models.model_downloads import (
    DownloadManager,
    DownloadProgress,
    DownloadRequest,
    DownloadState,
    move_models_folder,
)
from app.core.profile.secret_store import SecretStore
from app.core.profile.settings import Settings

logger = logging.getLogger(__name__)


class ModelsController(QObject):
    sig_local_models_changed = Signal()
    """The list of models on this computer changed (download finished, import, delete)."""
    sig_download_progress = Signal(object)
    """A download moved on: its ``DownloadProgress``."""
    sig_catalog_refreshed = Signal()
    """The catalog was read again from the Hub."""
    sig_catalog_refresh_failed = Signal(str)
    """Refreshing the catalog failed: a message for the user; the old catalog stays."""
    sig_settings_changed = Signal()
    """Model-related settings changed and should be saved."""

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        secrets: SecretStore,
        probe_hardware: HardwareProbe,
        parent: QObject | None = None,
    ) -> None:
        """``probe_hardware(models_dir)`` measures this computer (memory, backend, GPUs, disk)."""
        super().__init__(parent)
        self._probe_hardware = probe_hardware
        self._paths = paths
        self._settings = settings
        self.secrets = secrets
        self.catalog = ModelCatalog(paths.catalog_cache)
        self.hardware: HardwareInfo = probe_hardware(self.models_dir)
        self._shapes: dict[Path, ModelShape | None] = {}
        self._progress: dict[str, DownloadProgress] = {}
        self.downloads = self._new_download_manager()

    # ----------------------------------------------------------------------------- settings

    @property
    def models_dir(self) -> Path:
        return Path(self._settings.models_dir) if self._settings.models_dir else self._paths.default_models_dir

    @property
    def hub_settings(self) -> HubSettings:
        return HubSettings(
            endpoint=self._settings.hub_endpoint or None,
            proxy=self._settings.hub_proxy or None,
            offline=self._settings.offline_mode,
        )

    def apply_hub_settings(self, endpoint: str, proxy: str, offline: bool) -> None:
        self._settings.hub_endpoint, self._settings.hub_proxy, self._settings.offline_mode = endpoint, proxy, offline
        self.sig_settings_changed.emit()
        self.downloads.set_hub_settings(self.hub_settings)

    def _new_download_manager(self) -> DownloadManager:
        return DownloadManager(self.models_dir, self.hub_settings, self.secrets.token, self.sig_download_progress.emit)

    def change_models_dir(self, folder: Path, *, move_files: bool) -> None:
        """Uses ``folder`` for models from now on, moving the app's downloads there if asked
        (otherwise the new folder is simply scanned, and the old files stay where they are)."""
        self.downloads.shutdown()
        if move_files:
            move_models_folder(self.models_dir, folder)
        self._settings.models_dir = str(folder)
        self.sig_settings_changed.emit()
        self.downloads = self._new_download_manager()
        self.hardware = self._probe_hardware(folder)
        self.sig_local_models_changed.emit()

    # ------------------------------------------------------------------------- local models

    def local_models(self) -> list[LocalModel]:
        return find_local_models(
            [installed.path for installed in self.downloads.installed_files()],
            [Path(path) for path in self._settings.imported_models],
        )

    def import_model(self, path: Path) -> None:
        self._settings.remember_import(path)
        self.sig_settings_changed.emit()
        self.sig_local_models_changed.emit()

    def remove_model(self, model: LocalModel) -> None:
        """Deletes a downloaded file, or forgets an imported one (the user's file is kept)."""
        if model.source == ModelSource.DOWNLOADED:
            self.downloads.delete_installed(model.path)
        elif model.source == ModelSource.IMPORTED:
            self._settings.imported_models = [p for p in self._settings.imported_models if Path(p).absolute() != model.path]
            self.sig_settings_changed.emit()
        self.sig_local_models_changed.emit()

    def shape_of(self, path: Path) -> ModelShape | None:
        """The model's shapes from its GGUF header (cached; None if the header is unreadable)."""
        if path not in self._shapes:
            try:
                self._shapes[path] = ModelShape.from_gguf(path)
            except Exception as error:  # any unreadable header just means "no advice"
                logger.info("No shape for %s: %s", path, error)
                self._shapes[path] = None
        return self._shapes[path]

    # -------------------------------------------------------------------------- fit advice

    def context_size(self) -> int:
        return self._settings.context_size

    def assess_entry(self, entry: CatalogEntry) -> FitAssessment | None:
        if entry.model.size is None:
            return None
        return assess_fit(QWEN35_SHAPES[entry.size_label], entry.model.size, self.hardware, self.context_size())

    def assess_local(self, model: LocalModel) -> FitAssessment | None:
        shape = self.shape_of(model.path)
        if shape is None:
            return None
        return assess_fit(shape, model.size, self.hardware, self.context_size())

    def recommendation(self) -> tuple[CatalogEntry | None, Recommendation | None]:
        """The best catalog entry for this computer (Q4_K_M of the largest size that runs well)."""
        entries = {
            f"Qwen3.5 {entry.size_label}": entry
            for entry in self.catalog.entries()
            if entry.quantization == "Q4_K_M" and entry.model.size
        }
        candidates = [(label, QWEN35_SHAPES[entry.size_label], entry.model.size) for label, entry in entries.items()]
        chosen = recommend_model(candidates, self.hardware)
        if chosen is None:
            return None, None
        return entries[chosen.label], chosen

    def largest_context_for(self, path: Path, size: int) -> int:
        """The largest context this model runs well with here (0: unknown or none)."""
        shape = self.shape_of(path)
        return largest_context(shape, size, self.hardware) if shape else 0

    # --------------------------------------------------------------------------- downloads

    @staticmethod
    def request_for(entry: CatalogEntry) -> DownloadRequest:
        model = entry.model
        return DownloadRequest(
            repo_id=model.repo_id,
            filename=model.filename,
            revision=model.revision,
            expected_size=model.size if model.is_pinned else None,
            expected_sha256=model.sha256 if model.is_pinned else None,
        )

    def progress_of(self, entry: CatalogEntry) -> DownloadProgress | None:
        key = self.request_for(entry).key
        return next((progress for progress in self.downloads.downloads() if progress.request.key == key), None)

    def download(self, entry: CatalogEntry) -> None:
        """Queues the model's download; offline mode and other refusals arrive as a FAILED report."""
        try:
            self.downloads.enqueue(self.request_for(entry))
        except OfflineError as error:
            self.sig_download_progress.emit(
                DownloadProgress(self.request_for(entry), DownloadState.FAILED, 0, entry.model.size, None, None, str(error), None)
            )

    def pause(self, entry: CatalogEntry) -> None:
        self.downloads.pause(self.request_for(entry))

    def resume(self, entry: CatalogEntry) -> None:
        self.downloads.resume(self.request_for(entry))

    def cancel(self, entry: CatalogEntry) -> None:
        self.downloads.cancel(self.request_for(entry))

    def installed_path(self, entry: CatalogEntry) -> Path | None:
        request = self.request_for(entry)
        return self.downloads.path_for(request) if self.downloads.is_installed(request) else None

    # ----------------------------------------------------------------------------- catalog

    def refresh_catalog(self) -> None:
        """Reads the catalog from the Hub on a worker thread (an explicit user action)."""
        settings, token = self.hub_settings, self.secrets.token()

        def run() -> None:
            try:
                self.catalog.refresh(make_hf_api(settings, token))
            except (CatalogError, OfflineError) as error:
                self.sig_catalog_refresh_failed.emit(str(error))
                return
            self.sig_catalog_refreshed.emit()

        threading.Thread(target=run, name="catalog-refresh", daemon=True).start()

    def shutdown(self) -> None:
        self.downloads.shutdown()


def download_is_active(progress: DownloadProgress | None) -> bool:
    return progress is not None and progress.state in (DownloadState.QUEUED, DownloadState.DOWNLOADING, DownloadState.VERIFYING)
