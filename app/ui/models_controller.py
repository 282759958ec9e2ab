"""GUI-side owner of everything about models: catalog, local files, downloads, fit advice.

Core objects report from their own worker threads through plain callbacks; this controller turns
those into Qt signals, so widgets only ever change on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.profile.app_paths import AppPaths
from app.core.domain.generation import IMAGE_DETAIL_TOKENS
from app.core.models.fit_estimate import (
    DEFAULT_IMAGE_TOKENS,
    QWEN35_PROJECTOR_SHAPES,
    QWEN35_SHAPES,
    FitAssessment,
    ModelShape,
    Recommendation,
    VisionProjector,
    assess_fit,
    recommend_model,
)
from app.core.domain.hardware import HardwareInfo
from app.core.models.hardware_probe import HardwareProbe
from app.core.models.speed_calibration import (
    FROM_MEMORY_TEST,
    FROM_REPLIES,
    SpeedCalibration,
    calibrate_from_reply,
    probe_decode_bandwidth,
)
from app.core.models.hub_access import HubSettings, OfflineError, hub_endpoint, make_hf_api
from app.core.domain.model_files import gguf_file_problem
from app.core.models.local_models import LocalModel, ModelSource, find_local_models, is_projector
from app.core.models.model_catalog import PROJECTOR_FILENAME, CatalogEntry, CatalogError, CatalogFile, ModelCatalog
from app.core.models.model_downloads import (
    DownloadManager,
    DownloadProgress,
    DownloadRequest,
    DownloadState,
    move_models_folder,
)
from app.core.models.projector_pairing import (
    TEXT_ONLY,
    find_projector,
    pairing_key,
    projector_left_unused,
    projector_problem,
)
from app.core.profile.secret_store import SecretStore
from app.core.profile.settings import Settings

logger = logging.getLogger(__name__)


STALL_SECONDS = 5.0  # a running download that received nothing for this long is "stalled"
QUIT_WAIT_SECONDS = 0.5  # how long quitting waits for download workers to stop


@dataclass(frozen=True)
class ImageSupport:
    """How a model on this computer reads images: the projector it loads with (None: text only)
    and that projector's figures for the fit advice (None when unreadable)."""

    projector: Path | None
    vision: VisionProjector | None


class ModelsController(QObject):
    sig_local_models_changed = Signal()
    """The list of models on this computer changed (download finished, import, delete)."""
    sig_download_progress = Signal(object)
    """A download moved on: its ``DownloadProgress`` (``stalled`` set when no data came for a
    while)."""
    sig_download_finished = Signal(object)
    """A download was verified and installed: its ``DownloadProgress`` (``path`` set)."""
    _sig_reported = Signal(object)  # from the download threads; handled on the GUI thread
    sig_catalog_refreshed = Signal(object)
    """The catalog was read again from the Hub: ``{repository: message}`` for those that
    failed and kept their earlier figures (empty when all were read)."""
    sig_catalog_refresh_failed = Signal(str)
    """Refreshing the catalog failed: a message for the user; the old catalog stays."""
    sig_settings_changed = Signal()
    """Model-related settings changed and should be saved."""
    sig_hardware_changed = Signal()
    """What is known of this computer changed (its measured speed): fit advice may differ."""
    sig_model_headers_read = Signal()
    """A local model's header was read (on a worker thread): fit advice for it is known now."""
    _sig_shape_read = Signal(object, object)  # path, ModelShape or None; from the header reader
    _sig_image_support_read = Signal(object, object, int)  # path, ImageSupport, lookup generation
    _sig_speed_measured = Signal(float)  # from the memory-speed test's thread

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        secrets: SecretStore,
        probe_hardware: HardwareProbe,
        parent: QObject | None = None,
    ) -> None:
        """``probe_hardware(models_dir, speed)`` measures this computer (memory, backend, GPUs,
        disk), with ``speed`` the decoding speed measured so far."""
        super().__init__(parent)
        self._probe_hardware = probe_hardware
        self._paths = paths
        self._settings = settings
        self.secrets = secrets
        self.catalog = ModelCatalog(paths.catalog_cache)
        self.hardware: HardwareInfo = self._probe()
        self._sig_speed_measured.connect(self._on_speed_measured)
        if not self._settings.decode_bytes_per_second and not self.hardware.gpus:
            # A RAM test says nothing of a GPU's memory: there, replies alone calibrate.
            threading.Thread(target=self._measure_memory_speed, name="memory-speed-test", daemon=True).start()
        self._shapes: dict[Path, ModelShape | None] = {}
        # Headers are read off the GUI thread: a large one takes ~0.15 s, a hostile one longer.
        self._header_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-headers")
        self._headers_requested: set[Path] = set()
        self._shut_down = False
        self._reporting = threading.RLock()  # held by a worker while it emits, and by shutdown
        self._sig_shape_read.connect(self._on_shape_read)
        # Which projector each model loads with, looked up on the header reader too. A lookup
        # belongs to a generation: a pairing or a file that changed starts a new one, and the
        # answers of older lookups are dropped.
        self._image_support: dict[Path, ImageSupport] = {}
        self._image_support_requested: set[Path] = set()
        self._image_support_generation = 0
        self._sig_image_support_read.connect(self._on_image_support_read)
        # First of the slots: whoever redraws the models on this signal sees the new pairings.
        self.sig_local_models_changed.connect(self._forget_image_support)
        self._progress: dict[str, DownloadProgress] = {}  # the latest report of each download
        self._data_seen_at: dict[str, tuple[int, float]] = {}  # bytes, when they last grew
        self._sig_reported.connect(self._on_reported)
        self._stall_timer = QTimer(self)
        self._stall_timer.setInterval(1000)
        self._stall_timer.timeout.connect(self._check_stalls)  # runs only while a transfer does
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
        return DownloadManager(
            self.models_dir, self.hub_settings, self.secrets.token, lambda progress: self._report(self._sig_reported, progress)
        )

    def change_models_dir(self, folder: Path, *, move_files: bool) -> None:
        """Uses ``folder`` for models from now on, moving the app's downloads there if asked
        (otherwise the new folder is simply scanned, and the old files stay where they are)."""
        self.downloads.shutdown()
        if move_files:
            move_models_folder(self.models_dir, folder)
        self._settings.models_dir = str(folder)
        self.sig_settings_changed.emit()
        self.downloads = self._new_download_manager()
        self.hardware = self._probe()
        self.sig_local_models_changed.emit()

    # ------------------------------------------------------------------------- local models

    def local_models(self) -> list[LocalModel]:
        return find_local_models(
            [installed.path for installed in self.downloads.installed_files()],
            [Path(path) for path in self._settings.imported_models],
        )

    def import_model(self, path: Path) -> str | None:
        """Adds a GGUF file the user has to the list; returns why not (for the user) if it is
        plainly no model file, and then changes nothing."""
        problem = gguf_file_problem(path)
        if problem is None:
            self.remember_opened(path)
        return problem

    def remember_opened(self, path: Path) -> None:
        """Lists a file that was opened, unless it already is (a download, the Hub cache)."""
        path = Path(path).absolute()
        if any(model.path == path for model in self.local_models()):
            return
        self._settings.remember_import(path)
        self.sig_settings_changed.emit()
        self.sig_local_models_changed.emit()

    def remove_model(self, model: LocalModel) -> None:
        """Deletes a downloaded file, with the projector it downloaded when no other model of
        its size uses that (``projector_deleted_with``), or forgets an imported one (the user's
        file is kept). Its projector pairing is forgotten either way."""
        if model.source == ModelSource.DOWNLOADED:
            unused = self.projector_deleted_with(model)
            self.downloads.delete_installed(model.path)
            if unused is not None:
                self.downloads.delete_installed(unused)
        elif model.source == ModelSource.IMPORTED:
            self._settings.imported_models = [p for p in self._settings.imported_models if Path(p).absolute() != model.path]
        if model.source != ModelSource.HUGGING_FACE_CACHE:
            self._settings.projector_pairings.pop(pairing_key(model.path), None)
            self.sig_settings_changed.emit()
        self.sig_local_models_changed.emit()

    def projector_deleted_with(self, model: LocalModel) -> Path | None:
        """The downloaded projector that deleting ``model`` deletes too, being of no use alone:
        the one its catalog download brought, unless another download of its size remains."""
        if model.source != ModelSource.DOWNLOADED:
            return None
        installed = [installed.path for installed in self.downloads.installed_files()]
        unused = projector_left_unused(model.path, (path for path in installed if path.name != PROJECTOR_FILENAME))
        return unused if unused in installed else None

    # ------------------------------------------------------------------------ image support

    def image_support_of(self, path: Path) -> ImageSupport | None:
        """How the model at ``path`` reads images; None while that is being looked up (off the
        GUI thread, as it reads headers; ``sig_model_headers_read`` follows)."""
        if path not in self._image_support and path not in self._image_support_requested and not self._shut_down:
            self._image_support_requested.add(path)
            shape = self._shapes.get(path)
            self._header_reader.submit(
                self._read_image_support,
                path,
                dict(self._settings.projector_pairings),
                shape.embedding_length if shape else None,
                self._image_support_generation,
            )
        return self._image_support.get(path)

    def projector_for(self, path: Path) -> Path | None:
        """The projector a load of ``path`` carries, looked up now (``find_projector`` with the
        user's pairings): reading only the projectors' small headers once the model's shape is
        known, as it is for every model listed."""
        shape = self._shapes.get(Path(path))
        return find_projector(path, self._settings.projector_pairings, model_width=shape.embedding_length if shape else None)

    def pair_projector(self, model: Path, projector: Path) -> str | None:
        """Pairs a projector file the user chose with ``model``; returns why not (for the user)
        when it is no projector made for this model, and then changes nothing."""
        shape = self._shapes.get(Path(model))
        problem = projector_problem(model, projector, model_width=shape.embedding_length if shape else None)
        if problem is None:
            self._set_pairing(model, str(Path(projector).absolute()))
        return problem

    def use_no_projector(self, model: Path) -> None:
        """``model`` loads text only from now on, even with a projector beside it."""
        self._set_pairing(model, TEXT_ONLY)

    def forget_pairing(self, model: Path) -> None:
        """``model`` finds its projector by itself again (its download's, or one beside it)."""
        self._settings.projector_pairings.pop(pairing_key(model), None)
        self.sig_settings_changed.emit()
        self.sig_local_models_changed.emit()

    def is_paired(self, model: Path) -> bool:
        """Whether the user chose ``model``'s projector (or text only) rather than the app."""
        return pairing_key(model) in self._settings.projector_pairings

    def _set_pairing(self, model: Path, choice: str) -> None:
        self._settings.projector_pairings[pairing_key(model)] = choice
        self.sig_settings_changed.emit()
        self.sig_local_models_changed.emit()

    def _read_image_support(self, path: Path, pairings: dict[str, str], width: int | None, generation: int) -> None:  # header reader thread
        projector = vision = None
        try:
            projector = find_projector(path, pairings, model_width=width)
            vision = VisionProjector.from_gguf(projector) if projector is not None else None
        except (ValueError, OSError) as error:  # an unreadable projector just means "text only"
            logger.info("No image support for %s: %s", path, error)
        self._report(self._sig_image_support_read, path, ImageSupport(projector, vision), generation)

    def _on_image_support_read(self, path: Path, support: ImageSupport, generation: int) -> None:
        if generation != self._image_support_generation:
            return  # looked up before a pairing or a file changed; asked again since
        self._image_support[path] = support
        self._image_support_requested.discard(path)
        self.sig_model_headers_read.emit()

    def _forget_image_support(self) -> None:
        self._image_support.clear()
        self._image_support_requested.clear()
        self._image_support_generation += 1

    def shape_of(self, path: Path) -> ModelShape | None:
        """The model's shapes from its GGUF header; None while it is being read (then
        ``sig_model_headers_read`` follows) or when it is unreadable."""
        if path not in self._shapes and path not in self._headers_requested and not self._shut_down:
            self._headers_requested.add(path)
            self._header_reader.submit(self._read_shape, path)
        return self._shapes.get(path)

    def _read_shape(self, path: Path) -> None:  # header reader thread
        shape = None
        if gguf_file_problem(path) is None:  # never opens a pipe or a device, which could block
            try:
                shape = ModelShape.from_gguf(path)
            except Exception as error:  # any unreadable header just means "no advice"
                logger.info("No shape for %s: %s", path, error)
        self._report(self._sig_shape_read, path, shape)

    def _on_shape_read(self, path: Path, shape: ModelShape | None) -> None:
        self._shapes[path] = shape
        self._headers_requested.discard(path)
        self.sig_model_headers_read.emit()

    # -------------------------------------------------------------------------- fit advice

    def context_size(self) -> int:
        return self._settings.context_size

    def image_tokens(self) -> int:
        """The most image tokens a picture becomes at the image detail in Settings."""
        return IMAGE_DETAIL_TOKENS.get(self._settings.image_detail, DEFAULT_IMAGE_TOKENS)

    def assess_entry(self, entry: CatalogEntry, *, with_images: bool) -> FitAssessment | None:
        """The fit of a catalog model, loaded with its projector when ``with_images``."""
        if entry.model.size is None:
            return None
        projector = self.catalog_projector(entry) if with_images else None
        return assess_fit(
            QWEN35_SHAPES[entry.size_label], entry.model.size, self.hardware, self.context_size(),
            projector=projector, image_tokens=self.image_tokens(),
        )

    def assess_local(self, model: LocalModel) -> FitAssessment | None:
        """The fit of a model on this computer, with the projector it loads with."""
        shape = self.shape_of(model.path)
        support = self.image_support_of(model.path)
        if shape is None or support is None:
            return None
        return assess_fit(
            shape, model.size, self.hardware, self.context_size(), projector=support.vision, image_tokens=self.image_tokens()
        )

    @staticmethod
    def catalog_projector(entry: CatalogEntry) -> VisionProjector | None:
        """The projector of a catalog entry as the fit advice counts it: the published shape of
        its size, and its file's size from the Hub (or estimated from that shape)."""
        if entry.projector is None:
            return None
        shape = QWEN35_PROJECTOR_SHAPES[entry.size_label]
        return VisionProjector(shape, entry.projector.size or shape.estimated_file_bytes)

    def projector_download_size(self, entry: CatalogEntry) -> tuple[int, bool] | None:
        """``(bytes, estimated)`` of the entry's image support download; None when it has none."""
        if entry.projector is None:
            return None
        if entry.projector.size:
            return entry.projector.size, False
        return QWEN35_PROJECTOR_SHAPES[entry.size_label].estimated_file_bytes, True

    def recommendation(self) -> tuple[CatalogEntry | None, Recommendation | None]:
        """The best catalog entry for this computer (Q4_K_M of the largest size that runs well)."""
        entries = {
            f"Qwen3.5 {entry.size_label}": entry
            for entry in self.catalog.entries()
            if entry.quantization == "Q4_K_M" and entry.model.size
        }
        candidates = [(label, QWEN35_SHAPES[entry.size_label], entry.model.size) for label, entry in entries.items()]
        # Downloaded as offered, with its image support: that memory counts.
        projectors = {label: projector for label, entry in entries.items() if (projector := self.catalog_projector(entry))}
        chosen = recommend_model(candidates, self.hardware, projectors)
        if chosen is None:
            return None, None
        return entries[chosen.label], chosen

    def record_reply_speed(self, tokens_per_second: float, generated_tokens: int, weights_bytes: int) -> None:
        """A reply showed how fast this computer writes: the fit advice learns from it."""
        calibrated = calibrate_from_reply(self._settings.decode_bytes_per_second, tokens_per_second, generated_tokens, weights_bytes)
        if calibrated != self._settings.decode_bytes_per_second:
            self._set_speed(SpeedCalibration(calibrated, FROM_REPLIES))

    def _probe(self) -> HardwareInfo:
        settings = self._settings
        speed = SpeedCalibration(settings.decode_bytes_per_second, settings.decode_speed_source) if settings.decode_bytes_per_second else None
        return self._probe_hardware(self.models_dir, speed)

    def _measure_memory_speed(self) -> None:  # worker thread
        self._report(self._sig_speed_measured, probe_decode_bandwidth(self.hardware.physical_cores))

    def _on_speed_measured(self, bytes_per_second: float) -> None:
        if not self._settings.decode_bytes_per_second:  # a reply may have measured it meanwhile
            self._set_speed(SpeedCalibration(bytes_per_second, FROM_MEMORY_TEST))

    def _set_speed(self, speed: SpeedCalibration) -> None:
        self._settings.decode_bytes_per_second, self._settings.decode_speed_source = speed.bytes_per_second, speed.source
        self.sig_settings_changed.emit()
        self.hardware = self._probe()
        self.sig_hardware_changed.emit()

    # --------------------------------------------------------------------------- downloads

    @staticmethod
    def request_for(entry: CatalogEntry) -> DownloadRequest:
        return _download_request(entry.model)

    @staticmethod
    def projector_request_for(entry: CatalogEntry) -> DownloadRequest | None:
        """The download of the entry's image support; every quantization of a size shares it."""
        return _download_request(entry.projector) if entry.projector is not None else None

    def progress_of(self, entry: CatalogEntry) -> DownloadProgress | None:
        return self._queued(self.request_for(entry))

    def projector_progress_of(self, entry: CatalogEntry) -> DownloadProgress | None:
        request = self.projector_request_for(entry)
        return self._queued(request) if request is not None else None

    def _queued(self, request: DownloadRequest) -> DownloadProgress | None:
        return next((progress for progress in self.downloads.downloads() if progress.request.key == request.key), None)

    def download(self, entry: CatalogEntry, *, with_images: bool = True) -> None:
        """Queues the model's download, after its image support's when ``with_images`` (so the
        model is ready to read images the moment it is ready at all); offline mode and other
        refusals arrive as a FAILED report of the model."""
        requests = [self.request_for(entry)]
        projector = self.projector_request_for(entry)
        if with_images and projector is not None and not self.downloads.is_installed(projector):
            requests.insert(0, projector)
        try:
            for request in requests:
                self.downloads.enqueue(request)
        except OfflineError as error:
            self.sig_download_progress.emit(
                DownloadProgress(self.request_for(entry), DownloadState.FAILED, 0, entry.model.size, None, None, str(error), None)
            )

    def download_projector(self, entry: CatalogEntry) -> None:
        """Adds image support to an installed model: queues its projector's download."""
        request = self.projector_request_for(entry)
        if request is None:
            return
        try:
            self.downloads.enqueue(request)
        except OfflineError as error:
            self.sig_download_progress.emit(
                DownloadProgress(request, DownloadState.FAILED, 0, request.expected_size, None, None, str(error), None)
            )

    def pause(self, entry: CatalogEntry) -> None:
        """Paused at once (reported before this returns), even while the connection hangs; with
        the image support downloading for it."""
        for request in self._entry_requests(entry):
            self.downloads.pause(request)

    def resume(self, entry: CatalogEntry) -> None:
        for request in self._entry_requests(entry):
            self.downloads.resume(request)

    def cancel(self, entry: CatalogEntry) -> None:
        """Cancelled at once, like a pause; the model's cancel is reported last, as the row's
        final word."""
        for request in reversed(self._entry_requests(entry)):
            self.downloads.cancel(request)

    def _entry_requests(self, entry: CatalogEntry) -> list[DownloadRequest]:
        """The model's download and its projector's, unless the projector is queued for another
        quantization of the same size too (pausing or cancelling this one leaves that alone)."""
        model = self.request_for(entry)
        requests = [model]
        projector = self.projector_request_for(entry)
        if projector is not None:
            others = [
                progress
                for progress in self.downloads.downloads()
                if progress.request.repo_id == model.repo_id and progress.request.key not in (model.key, projector.key)
            ]
            if not others or self.downloads.is_installed(model):
                requests.append(projector)
        return requests

    def latest_progress(self, progress: DownloadProgress) -> DownloadProgress:
        """The newest report of the same download (with ``stalled`` as last seen)."""
        return self._progress.get(progress.request.key, progress)

    def active_downloads(self) -> list[DownloadProgress]:
        """Downloads queued, running or being checked, in queue order."""
        return [progress for progress in self.downloads.downloads() if download_is_active(progress)]

    def display_name_of(self, progress: DownloadProgress) -> str:
        """The catalog's name for a download ("Qwen3.5 2B · Q4_K_M", "Qwen3.5 2B image
        support"), else its file name."""
        key = progress.request.key
        for entry in self.catalog.entries():
            if self.request_for(entry).key == key:
                return entry.display_name
            projector = self.projector_request_for(entry)
            if projector is not None and projector.key == key:
                return f"Qwen3.5 {entry.size_label} image support"
        return progress.request.filename

    def _on_reported(self, progress: DownloadProgress) -> None:
        key = progress.request.key
        now = time.monotonic()
        seen = self._data_seen_at.get(key)
        if progress.state != DownloadState.DOWNLOADING:
            self._data_seen_at.pop(key, None)
        elif seen is None or progress.downloaded_bytes != seen[0]:
            self._data_seen_at[key] = (progress.downloaded_bytes, now)
        if self._data_seen_at and not self._stall_timer.isActive():
            self._stall_timer.start()
        elif not self._data_seen_at:
            self._stall_timer.stop()
        if progress.state in (DownloadState.COMPLETE, DownloadState.CANCELLED):
            self._progress.pop(key, None)
        else:
            self._progress[key] = progress
        self.sig_download_progress.emit(progress)
        if progress.state == DownloadState.COMPLETE and progress.path is not None:
            self.sig_local_models_changed.emit()
            if not is_projector(progress.path):  # image support is no model to offer
                self.sig_download_finished.emit(progress)

    def _check_stalls(self) -> None:
        """Once a second: a running download whose bytes stopped growing says so. Its bytes are
        read from the manager, not the last report: reports come only with new data."""
        now = time.monotonic()
        for progress in self.downloads.downloads():
            key = progress.request.key
            seen = self._data_seen_at.get(key)
            if progress.state != DownloadState.DOWNLOADING or seen is None:
                continue
            if progress.downloaded_bytes != seen[0]:
                self._data_seen_at[key] = (progress.downloaded_bytes, now)
            elif now - seen[1] >= STALL_SECONDS and not self._progress[key].stalled:
                stalled = replace(progress, stalled=True, bytes_per_second=None, eta_seconds=None)
                self._progress[key] = stalled
                self.sig_download_progress.emit(stalled)

    def installed_path(self, entry: CatalogEntry) -> Path | None:
        request = self.request_for(entry)
        return self.downloads.path_for(request) if self.downloads.is_installed(request) else None

    def catalog_entry_of(self, model: LocalModel) -> CatalogEntry | None:
        """The catalog entry a downloaded model was downloaded as; None for any other file."""
        if model.source != ModelSource.DOWNLOADED:
            return None
        return next(
            (entry for entry in self.catalog.entries() if self.downloads.path_for(self.request_for(entry)) == model.path),
            None,
        )

    def installed_projector(self, entry: CatalogEntry) -> Path | None:
        """The entry's downloaded projector, beside its model (None: not downloaded)."""
        request = self.projector_request_for(entry)
        if request is None or not self.downloads.is_installed(request):
            return None
        return self.downloads.path_for(request)

    # ----------------------------------------------------------------------------- catalog

    def refresh_catalog(self) -> None:
        """Reads the catalog from the Hub on a worker thread (an explicit user action)."""
        settings, token = self.hub_settings, self.secrets.token()

        def run() -> None:
            try:
                failures = self.catalog.refresh(make_hf_api(settings, token), hub_endpoint(settings))
            except (CatalogError, OfflineError) as error:
                self._report(self.sig_catalog_refresh_failed, str(error))
                return
            self._report(self.sig_catalog_refreshed, failures)

        threading.Thread(target=run, name="catalog-refresh", daemon=True).start()

    def _report(self, signal, *values) -> None:  # worker threads
        """Emits a worker thread's result, unless the controller was shut down: the window may
        be deleted from then on, and emitting a deleted object's signal can crash the process."""
        with self._reporting:
            if self._shut_down:
                return
            try:
                signal.emit(*values)
            except RuntimeError:  # "Signal source has been deleted": deleted without a shutdown
                logger.debug("A worker finished after its controller was deleted")

    def shutdown(self) -> None:
        """Stops the downloads at once; the queue is saved and they resume at the next start. The
        window does not wait for a transfer stuck on a hanging connection (its worker is a
        daemon thread, and what it wrote stays valid: the file only ever grows)."""
        self._stall_timer.stop()
        with self._reporting:  # a worker reporting now finishes first; none reports after
            self._shut_down = True
        self._header_reader.shutdown(wait=False, cancel_futures=True)
        self.downloads.shutdown(timeout=QUIT_WAIT_SECONDS)


def download_is_active(progress: DownloadProgress | None) -> bool:
    return progress is not None and progress.state in (DownloadState.QUEUED, DownloadState.DOWNLOADING, DownloadState.VERIFYING)


def _download_request(file: CatalogFile) -> DownloadRequest:
    # A size the catalog read from the Hub (published, or pinned with the checksum) must be what
    # the Hub delivers; only an estimated one ("≈ size") is no promise.
    return DownloadRequest(
        repo_id=file.repo_id,
        filename=file.filename,
        revision=file.revision,
        expected_size=None if file.size_is_estimate else file.size,
        expected_sha256=file.sha256 if file.is_pinned else None,
    )
