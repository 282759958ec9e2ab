"""Downloads of model files from the Hugging Face Hub into the app's models folder.

The models folder::

    <models_dir>/<owner>/<repository>/<filename>       complete, verified files
    <models_dir>/installed.json                         manifest of the verified files
    <models_dir>/.downloads/<hash>-<name>.incomplete    partial files, resumed with Range requests
    <models_dir>/.downloads/queue.json                  the queue (unless ``state_path`` is given)

Each repository has a folder of its own, so the vision projector that every Qwen3.5 repository
names alike (``mmproj-F16.gguf``) lies beside the models of its size, never beside another
size's, and is found from a model's path (``projector_pairing``).

A file counts as installed only while the manifest lists it and it still has the size it was
verified at. The manifest entry is written after the file was checked (size and sha256, read
from the Hub before the transfer) and moved into place, so a partial or damaged file is never
offered as a model. A file that fails the check is deleted and the download says so.

The queue survives restarts: downloads that were queued or running when the app stopped start
again on their own (the user asked for them and never paused them), paused and failed ones wait
for the user. The commit a download was pinned to is kept with it, so a restart resumes the same
bytes with a Range request, without asking the Hub again.

Transfers use huggingface_hub's plain-HTTP downloader (see ``hub_access.download_into``), which
retries dropped and stalled connections from the last byte received. huggingface_hub has no API
to stop a transfer; the one way in is the progress bar it updates after every chunk, so a pause,
cancel or shutdown makes that bar raise, and the transfer unwinds. That works for HTTP only: an
Xet transfer runs in hf_xet's Rust threads, which call back into Python only to report progress
and would not stop when a callback raises. The Hub serves Xet-stored files over plain HTTP to
clients that do not use Xet, so Xet is never used here.

A pause or cancel takes effect at once for the caller, even while a transfer waits on a hanging
connection: it is reported before the call returns, and the worker lets go of the transfer at its
next chunk or read timeout (a pause is reported again then, with the bytes kept).

Callbacks (``on_progress``) come from the worker threads, or from the caller's thread for changes
made at once (a pause or cancel, for example); they are never called with the lock held, so a
callback may call back into the manager. After ``shutdown`` there are no more callbacks.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from tqdm import tqdm

from app.core.atomic_file import write_text_atomically
from app.core.models.hub_access import (
    HubSettings,
    describe_hub_error,
    download_into,
    ensure_online,
    file_metadata,
    hub_endpoint,
)

logger = logging.getLogger(__name__)

# Room left free after a download, so a full disk never breaks the system or the conversations.
DISK_SPACE_MARGIN_BYTES = 256 * 1024 * 1024
_HASH_CHUNK_BYTES = 8 * 1024 * 1024
_REPORT_INTERVAL_SECONDS = 0.25
_SPEED_WINDOW_SECONDS = 5.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_FORMAT = 1


_MANIFEST_NAME = "installed.json"  # verified downloads; only files listed here are offered
_PARTIAL_FOLDER_NAME = ".downloads"  # partial files and the persisted queue


class DownloadState(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    VERIFYING = "verifying"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


_RUNNING = (DownloadState.DOWNLOADING, DownloadState.VERIFYING)


@dataclass(frozen=True)
class DownloadRequest:
    """A file to download. Size and sha256 are read from the Hub when not given."""

    repo_id: str
    filename: str
    revision: str | None = None  # branch, tag or commit; None: the default branch
    expected_size: int | None = None
    expected_sha256: str | None = None

    def __post_init__(self) -> None:
        # Both become parts of a path inside the models folder, so none may climb out of it.
        repo_parts = self.repo_id.split("/")
        parts = repo_parts + self.filename.split("/")
        if len(repo_parts) != 2 or any(part in ("", ".", "..") or "\\" in part for part in parts):
            raise ValueError(f"Not a Hub repository and file name: {self.repo_id!r}, {self.filename!r}")

    @property
    def key(self) -> str:
        """One download per destination file, whatever the revision."""
        return f"{self.repo_id}/{self.filename}"


@dataclass(frozen=True)
class DownloadProgress:
    request: DownloadRequest
    state: DownloadState
    downloaded_bytes: int
    total_bytes: int | None
    bytes_per_second: float | None  # only while downloading
    eta_seconds: float | None
    error: str | None  # for FAILED: what happened, written for the user
    path: Path | None  # for COMPLETE: the verified file
    stalled: bool = False  # DOWNLOADING, but no data came for a while (set by whoever keeps time)


@dataclass(frozen=True)
class InstalledModel:
    repo_id: str
    filename: str
    commit: str
    sha256: str
    size: int
    path: Path


class DownloadError(Exception):
    """A download failed for a reason the app found itself; the message is written for the user."""


class _StopReason(Enum):
    PAUSE = "pause"
    CANCEL = "cancel"
    RESTART = "restart"  # the Hub settings changed: start again with the new ones
    SHUTDOWN = "shutdown"


class _TransferStopped(Exception):
    def __init__(self, reason: _StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _TransferProgress(tqdm):
    """The progress bar huggingface_hub's downloader updates after each chunk, before writing it.

    ``on_position`` gets the byte position the file will have, and raises ``_TransferStopped``
    to stop the transfer (the chunk is then not written). Positions rather than increments,
    because the downloader starts again from byte 0 when a server ignores the Range header.
    """

    monitor_interval = 0  # tqdm would otherwise start a monitor thread for progress bars

    def __init__(self, *args, on_position: Callable[[int], None], **kwargs) -> None:
        self._on_position = on_position
        self._position = int(kwargs.get("initial") or 0)
        super().__init__(*args, disable=True, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        self._on_position(self._position + int(n or 0))
        self._position += int(n or 0)
        return super().update(n)


class _SpeedMeter:
    """Bytes per second over the last few seconds: steadier than one chunk, quicker than the
    average since the start."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def restart(self, downloaded: int) -> None:
        self._samples.clear()
        self._samples.append((time.monotonic(), downloaded))

    def add(self, downloaded: int) -> float | None:
        now = time.monotonic()
        self._samples.append((now, downloaded))
        while len(self._samples) > 2 and self._samples[1][0] <= now - _SPEED_WINDOW_SECONDS:
            self._samples.popleft()
        start_time, start_bytes = self._samples[0]
        return max(0.0, downloaded - start_bytes) / (now - start_time) if now > start_time else None


@dataclass(eq=False)
class _Download:
    """One entry of the queue; changed only with the manager's lock held."""

    request: DownloadRequest
    sequence: int
    state: DownloadState
    commit: str | None = None  # what the transfer is pinned to, with the file's sha256 and size
    sha256: str | None = None
    size: int | None = None
    downloaded: int = 0
    error: str | None = None
    stop: _StopReason | None = None
    speed: float | None = None
    last_report: float | None = None
    meter: _SpeedMeter = field(default_factory=_SpeedMeter)
    # A worker is on it. A pause or cancel takes effect for the user at once, but the worker
    # may still be waiting on a stalled connection: until it lets go, no other worker takes the
    # download (its partial file has one writer), and a resume simply lets the worker go on.
    attached: bool = False


def _free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _format_size(size: float) -> str:
    return tqdm.format_sizeof(size, "B", 1000)


class DownloadManager:
    """The download queue, worked through by ``max_parallel`` threads. Thread-safe."""

    def __init__(
        self,
        models_dir: Path,
        hub_settings: HubSettings,
        token_provider: Callable[[], str | None],
        on_progress: Callable[[DownloadProgress], None],
        *,
        max_parallel: int = 1,
        state_path: Path | None = None,
        free_space: Callable[[Path], int] = _free_bytes,
    ) -> None:
        self._models_dir = models_dir
        self._partial_dir = models_dir / _PARTIAL_FOLDER_NAME
        self._queue_path = state_path or self._partial_dir / "queue.json"
        self._manifest_path = models_dir / _MANIFEST_NAME
        self._settings = hub_settings
        self._token_provider = token_provider
        self._on_progress = on_progress
        self._free_space = free_space
        self._condition = threading.Condition()
        self._downloads: dict[str, _Download] = {}
        self._next_sequence = 0
        self._shut_down = False
        self._load_queue()
        self._workers = [
            threading.Thread(target=self._work, name=f"model-download-{number}", daemon=True)
            for number in range(max_parallel)
        ]
        for worker in self._workers:
            worker.start()

    # ------------------------------------------------------------------------------ public API

    def path_for(self, request: DownloadRequest) -> Path:
        """Where the verified file is (or will be) kept."""
        return self._models_dir.joinpath(*request.repo_id.split("/"), *request.filename.split("/"))

    def enqueue(self, request: DownloadRequest) -> None:
        """Adds a download to the end of the queue. A paused or failed download of the same file
        is resumed instead (with this request's figures), an installed file reported complete.
        Raises ``OfflineError`` in offline mode."""
        with self._condition:
            ensure_online(self._settings)
        if self.is_installed(request):
            self._emit(self._finished_progress(request, DownloadState.COMPLETE, self.path_for(request)))
            return
        with self._condition:
            download = self._downloads.get(request.key)
            if download is None:
                download = _Download(request, self._next_sequence, DownloadState.QUEUED)
                download.downloaded = self._partial_size(request)
                self._downloads[request.key] = download
                self._next_sequence += 1
            elif download.attached and download.stop in (_StopReason.PAUSE, _StopReason.CANCEL):
                # Asked for again before the worker let go: it simply goes on.
                download.stop, download.state = None, DownloadState.DOWNLOADING
            elif download.state in (DownloadState.PAUSED, DownloadState.FAILED):
                if download.request != request:
                    download.request, download.commit = request, None  # pin again, to the new figures
                download.state, download.error = DownloadState.QUEUED, None
            else:
                return
            self._save_queue()
            self._condition.notify_all()
            progress = self._progress(download)
        self._emit(progress)

    def pause(self, request: DownloadRequest) -> None:
        """Stops a download and keeps its partial file; ``resume`` continues from there. It is
        PAUSED at once; a running transfer stops writing at its next chunk."""
        with self._condition:
            download = self._downloads.get(request.key)
            if download is None:
                return
            if download.state in _RUNNING:
                download.stop = _StopReason.PAUSE
            elif download.state is not DownloadState.QUEUED:
                return
            download.state, download.speed = DownloadState.PAUSED, None
            self._save_queue()
            progress = self._progress(download)
        self._emit(progress)

    def resume(self, request: DownloadRequest) -> None:
        """Queues a paused or failed download again; it continues from its partial file. In
        offline mode it waits in the queue until offline mode is turned off."""
        with self._condition:
            download = self._downloads.get(request.key)
            if download is None:
                return
            if download.attached and download.stop is _StopReason.PAUSE:
                # Resumed before the worker let go: it simply goes on.
                download.stop, download.state = None, DownloadState.DOWNLOADING
            elif download.attached or download.state not in (DownloadState.PAUSED, DownloadState.FAILED):
                return
            else:
                download.state, download.error = DownloadState.QUEUED, None
            self._save_queue()
            self._condition.notify_all()
            progress = self._progress(download)
        self._emit(progress)

    def cancel(self, request: DownloadRequest) -> None:
        """Removes a download from the queue and deletes its partial file. Installed files stay.
        It is CANCELLED at once; a worker still on it deletes the file when it lets go."""
        with self._condition:
            download = self._downloads.get(request.key)
            if download is None or download.stop is _StopReason.CANCEL:
                return
            attached = download.attached
            if attached:
                download.stop = _StopReason.CANCEL
            else:
                del self._downloads[request.key]
            self._save_queue()
        if not attached:
            self._partial_path(request).unlink(missing_ok=True)
        self._emit(self._finished_progress(download.request, DownloadState.CANCELLED, None))

    def downloads(self) -> list[DownloadProgress]:
        """The queue in order: queued, running, paused and failed downloads. Complete and
        cancelled ones leave the queue; their last report says so."""
        with self._condition:
            listed = [download for download in self._downloads.values() if download.stop is not _StopReason.CANCEL]
            ordered = sorted(listed, key=lambda download: download.sequence)
            return [self._progress(download) for download in ordered]

    def installed_files(self) -> list[InstalledModel]:
        """Every verified download that is still in the models folder, unchanged in size."""
        installed = []
        for entry in self._read_json(self._manifest_path).get("files", []):
            try:
                request = DownloadRequest(entry["repo_id"], entry["filename"])
                model = InstalledModel(
                    request.repo_id,
                    request.filename,
                    entry["commit"],
                    entry["sha256"],
                    entry["size"],
                    self.path_for(request),
                )
            except (KeyError, TypeError, ValueError):
                continue
            try:
                if model.path.stat().st_size == model.size:
                    installed.append(model)
            except OSError:
                pass  # deleted or moved by the user
        return installed

    def is_installed(self, request: DownloadRequest) -> bool:
        return any(
            model.repo_id == request.repo_id
            and model.filename == request.filename
            and request.expected_sha256 in (None, model.sha256)
            for model in self.installed_files()
        )

    def delete_installed(self, path: Path) -> None:
        """Deletes a verified download (file and manifest entry); other files are left alone."""
        with self._condition:
            manifest = self._read_json(self._manifest_path).get("files", [])
            kept = [
                entry
                for entry in manifest
                if self.path_for(DownloadRequest(entry.get("repo_id", ""), entry.get("filename", ""))) != path
            ]
            if len(kept) == len(manifest):
                raise ValueError(f"{path} is not a download of this app")
            self._write_json(self._manifest_path, {"format": _FILE_FORMAT, "files": kept})
        path.unlink(missing_ok=True)
        for folder in path.parents:  # drop the now empty <owner>/<repo> folders
            if folder == self._models_dir or not folder.is_relative_to(self._models_dir):
                break
            try:
                folder.rmdir()
            except OSError:
                break

    def set_hub_settings(self, hub_settings: HubSettings) -> None:
        """Running transfers start again with the new settings, from their partial files; in
        offline mode, queued downloads wait until it is turned off."""
        with self._condition:
            if hub_settings == self._settings:
                return
            self._settings = hub_settings
            for download in self._downloads.values():
                if download.state in _RUNNING and download.stop is None:
                    download.stop = _StopReason.RESTART
            self._condition.notify_all()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stops the workers and keeps the queue and partial files for the next start.

        Waits up to ``timeout`` seconds and returns whether every worker has stopped. A worker
        waiting on a stalled connection stops at its next chunk or read timeout; workers are
        daemon threads, so they never keep the app from exiting.
        """
        with self._condition:
            if not self._shut_down:
                self._save_queue()
                self._shut_down = True
                for download in self._downloads.values():
                    if download.state in _RUNNING and download.stop is None:
                        download.stop = _StopReason.SHUTDOWN
                self._condition.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(worker.is_alive() for worker in self._workers)

    # --------------------------------------------------------------------------------- workers

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._shut_down and (download := self._next_queued()) is None:
                    self._condition.wait()
                if self._shut_down:
                    return
                download.state, download.stop, download.error = DownloadState.DOWNLOADING, None, None
                download.speed, download.last_report, download.attached = None, None, True
                settings = self._settings
            try:
                self._run(download, settings)
            finally:
                with self._condition:
                    download.attached = False
                    self._condition.notify_all()

    def _next_queued(self) -> _Download | None:
        if self._settings.offline:
            return None
        queued = [
            download
            for download in self._downloads.values()
            if download.state is DownloadState.QUEUED and not download.attached
        ]
        return min(queued, key=lambda download: download.sequence, default=None)

    def _run(self, download: _Download, settings: HubSettings) -> None:
        try:
            path = self._transfer(download, settings)
        except _TransferStopped as stopped:
            self._stopped(download, stopped.reason)
        except Exception as error:  # noqa: BLE001 - any failure must end as FAILED, never kill the worker
            self._failed(download, error, hub_endpoint(settings))
        else:
            with self._condition:
                self._downloads.pop(download.request.key, None)
                self._save_queue()
            self._emit(self._finished_progress(download.request, DownloadState.COMPLETE, path))

    def _transfer(self, download: _Download, settings: HubSettings) -> Path:
        request = download.request
        destination = self.path_for(request)
        if self.is_installed(request):
            return destination  # finished by an earlier run that stopped before saving the queue
        token = self._token_provider()
        if download.commit is None:
            self._pin(download, settings, token)
        partial = self._partial_path(request)
        resume_size = self._partial_size(request)
        if resume_size > download.size:
            partial.unlink()  # cannot be the start of this file
            resume_size = 0
        self._check_free_space(request, download.size - resume_size)
        with self._condition:
            self._check_stop(download)
            download.downloaded = resume_size
            download.meter.restart(resume_size)
            progress = self._progress(download)
        self._emit(progress)
        partial.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("ab") as destination_file:
            download_into(
                settings,
                token,
                repo_id=request.repo_id,
                filename=request.filename,
                commit=download.commit,
                destination=destination_file,
                resume_size=resume_size,
                expected_size=download.size,
                progress_class=functools.partial(
                    _TransferProgress, on_position=functools.partial(self._advance, download)
                ),
            )
        self._verify(download, partial)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, destination)
        self._record_installed(download)
        return destination

    def _pin(self, download: _Download, settings: HubSettings, token: str | None) -> None:
        """Reads the commit, size and sha256 the download will be held to."""
        request = download.request
        metadata = file_metadata(settings, token, request.repo_id, request.filename, request.revision)
        sha256 = (metadata.etag or "").lower()
        server = hub_endpoint(settings)
        if not metadata.commit_hash:
            raise DownloadError(f"The server at {server} does not answer like the Hugging Face Hub.")
        if not _SHA256.fullmatch(sha256) or metadata.size is None:
            raise DownloadError(f"{server} publishes no checksum for {request.key}, so it cannot be verified.")
        if request.expected_size not in (None, metadata.size):
            raise DownloadError(
                f"{server} offers {request.key} with {_format_size(metadata.size)}, but the model list says "
                f"{_format_size(request.expected_size)}, so nothing was downloaded: it may not be the file it "
                "claims to be. If the model was updated, refresh the model list (Models › Refresh catalog) "
                "and download it again."
            )
        if (request.expected_sha256 or sha256).lower() != sha256:
            raise DownloadError(
                f"{request.key} on {server} is not the file the model list was read with (its checksum "
                "differs), so nothing was downloaded. Refresh the model list and download it again."
            )
        with self._condition:
            if download.sha256 not in (None, sha256):
                self._partial_path(request).unlink(missing_ok=True)  # part of another version of the file
            download.commit, download.sha256, download.size = metadata.commit_hash, sha256, metadata.size
            self._save_queue()

    def _check_free_space(self, request: DownloadRequest, remaining: int) -> None:
        self._models_dir.mkdir(parents=True, exist_ok=True)
        free = self._free_space(self._models_dir)
        if free < remaining + DISK_SPACE_MARGIN_BYTES:
            raise DownloadError(
                f"Not enough free disk space for {request.filename}: it needs {_format_size(remaining)} more, "
                f"plus {_format_size(DISK_SPACE_MARGIN_BYTES)} to spare, but only {_format_size(free)} is free. "
                "Free some space, then resume the download."
            )

    def _advance(self, download: _Download, position: int) -> None:
        """Called by the progress bar for each chunk, before the chunk is written."""
        with self._condition:
            self._check_stop(download)
            download.downloaded = position
            download.speed = download.meter.add(download.downloaded)
            now = time.monotonic()
            # The first chunk is reported at once, to show bytes are flowing; then a few times a second.
            if (
                download.last_report is not None
                and now - download.last_report < _REPORT_INTERVAL_SECONDS
                and download.downloaded < (download.size or 0)
            ):
                return
            download.last_report = now
            progress = self._progress(download)
        self._emit(progress)

    def _verify(self, download: _Download, partial: Path) -> None:
        with self._condition:
            download.state, download.speed = DownloadState.VERIFYING, None
            progress = self._progress(download)
        self._emit(progress)
        name = download.request.filename
        if partial.stat().st_size != download.size:
            partial.unlink()
            raise DownloadError(f"{name} arrived with the wrong size, so it was deleted. Download it again.")
        # Streamed in chunks: model files are larger than memory, and a pause must not wait for
        # the whole file to be read.
        digest = hashlib.sha256()
        with partial.open("rb") as file:
            while chunk := file.read(_HASH_CHUNK_BYTES):
                with self._condition:
                    self._check_stop(download)
                digest.update(chunk)
        if digest.hexdigest() != download.sha256:
            partial.unlink()
            raise DownloadError(
                f"{name} arrived corrupted (its checksum does not match the Hub's), so it was deleted. "
                "Download it again."
            )

    def _stopped(self, download: _Download, reason: _StopReason) -> None:
        """The worker let go of the download. Pause and cancel were reported when asked for;
        a pause is reported again with the bytes actually kept."""
        if reason is _StopReason.SHUTDOWN:
            return  # shutdown() saved the queue; the partial file is resumed at the next start
        request = download.request
        with self._condition:
            download.attached = False  # let go now, so a resume from here on queues it again
            if reason is _StopReason.CANCEL:
                self._downloads.pop(request.key, None)
                self._save_queue()
            else:
                download.speed = None
                if reason is _StopReason.RESTART or download.state is DownloadState.DOWNLOADING:
                    download.state = DownloadState.QUEUED  # new settings, or resumed meanwhile
                download.stop = None
                self._condition.notify_all()
                self._save_queue()
            progress = self._progress(download)
        if reason is _StopReason.CANCEL:
            self._partial_path(request).unlink(missing_ok=True)
            return
        self._emit(progress)

    def _failed(self, download: _Download, error: Exception, endpoint: str) -> None:
        message = _describe_failure(error, download.request, endpoint)
        logger.warning("Download of %s failed: %s (%s)", download.request.key, message, type(error).__name__)
        with self._condition:
            download.state, download.error, download.stop, download.speed = DownloadState.FAILED, message, None, None
            self._save_queue()
            progress = self._progress(download)
        self._emit(progress)

    # ------------------------------------------------------------------------------- helpers

    @staticmethod
    def _check_stop(download: _Download) -> None:
        if download.stop is not None:
            raise _TransferStopped(download.stop)

    def _emit(self, progress: DownloadProgress) -> None:
        if not self._shut_down:
            self._on_progress(progress)

    def _progress(self, download: _Download) -> DownloadProgress:
        total = download.size or download.request.expected_size
        speed = download.speed if download.state is DownloadState.DOWNLOADING else None
        eta = max(0.0, (total - download.downloaded) / speed) if speed and total is not None else None
        return DownloadProgress(
            download.request, download.state, download.downloaded, total, speed, eta, download.error, None
        )

    def _finished_progress(self, request: DownloadRequest, state: DownloadState, path: Path | None) -> DownloadProgress:
        size = path.stat().st_size if path is not None else 0
        return DownloadProgress(
            request, state, size, size if path is not None else request.expected_size, None, None, None, path
        )

    def _partial_path(self, request: DownloadRequest) -> Path:
        # The hash keeps names unique and short; the file name keeps them readable.
        prefix = hashlib.sha256(request.key.encode()).hexdigest()[:16]
        return self._partial_dir / f"{prefix}-{request.filename.rsplit('/', 1)[-1]}.incomplete"

    def _partial_size(self, request: DownloadRequest) -> int:
        try:
            return self._partial_path(request).stat().st_size
        except FileNotFoundError:
            return 0

    def _save_queue(self) -> None:
        """Writes the queue; called with the lock held. After shutdown the file belongs to the
        next manager, so nothing is written any more."""
        if self._shut_down:
            return
        entries = []
        for download in sorted(self._downloads.values(), key=lambda download: download.sequence):
            if download.stop is _StopReason.CANCEL:
                continue
            if download.state is DownloadState.PAUSED or download.stop is _StopReason.PAUSE:
                state = DownloadState.PAUSED
            elif download.state is DownloadState.FAILED:
                state = DownloadState.FAILED
            else:
                state = DownloadState.QUEUED  # running downloads start again at the next start
            request = download.request
            entries.append(
                {
                    "repo_id": request.repo_id,
                    "filename": request.filename,
                    "revision": request.revision,
                    "expected_size": request.expected_size,
                    "expected_sha256": request.expected_sha256,
                    "state": state.value,
                    "error": download.error,
                    "commit": download.commit,
                    "sha256": download.sha256,
                    "size": download.size,
                }
            )
        self._write_json(self._queue_path, {"format": _FILE_FORMAT, "downloads": entries})

    def _load_queue(self) -> None:
        restored_states = {
            DownloadState.PAUSED.value: DownloadState.PAUSED,
            DownloadState.FAILED.value: DownloadState.FAILED,
        }
        for entry in self._read_json(self._queue_path).get("downloads", []):
            try:
                request = DownloadRequest(
                    entry["repo_id"],
                    entry["filename"],
                    entry.get("revision"),
                    entry.get("expected_size"),
                    entry.get("expected_sha256"),
                )
            except (KeyError, TypeError, ValueError):
                logger.warning("Ignoring a damaged entry in the download queue: %r", entry)
                continue
            download = _Download(
                request,
                self._next_sequence,
                restored_states.get(entry.get("state"), DownloadState.QUEUED),
                commit=entry.get("commit"),
                sha256=entry.get("sha256"),
                size=entry.get("size"),
                error=entry.get("error"),
            )
            if None in (download.commit, download.sha256, download.size):
                download.commit = None  # pinned only halfway: ask the Hub again
            download.downloaded = self._partial_size(request)
            self._downloads[request.key] = download
            self._next_sequence += 1
        # Partial files the queue does not know (a cancel interrupted by a crash) are only waste.
        known = {self._partial_path(download.request) for download in self._downloads.values()}
        for partial in self._partial_dir.glob("*.incomplete"):
            if partial not in known:
                partial.unlink(missing_ok=True)

    def _record_installed(self, download: _Download) -> None:
        request = download.request
        with self._condition:
            files = [
                entry
                for entry in self._read_json(self._manifest_path).get("files", [])
                if (entry.get("repo_id"), entry.get("filename")) != (request.repo_id, request.filename)
            ]
            files.append(
                {
                    "repo_id": request.repo_id,
                    "filename": request.filename,
                    "commit": download.commit,
                    "sha256": download.sha256,
                    "size": download.size,
                }
            )
            self._write_json(self._manifest_path, {"format": _FILE_FORMAT, "files": files})

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            logger.warning("Ignoring unreadable %s: %s", path, error)
            return {}
        return data if isinstance(data, dict) and data.get("format") == _FILE_FORMAT else {}

    @staticmethod
    def _write_json(path: Path, data: dict) -> None:
        """Atomically, so a crash never leaves half a file."""
        write_text_atomically(path, json.dumps(data, indent=1))


def _describe_failure(error: Exception, request: DownloadRequest, endpoint: str) -> str:
    if isinstance(error, DownloadError):
        return str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "The disk is full. Free some space, then resume the download: it continues where it stopped."
    if isinstance(error, OSError) and error.filename is not None:
        return f"Could not write to the models folder: {error.strerror} ({error.filename})."
    return describe_hub_error(error, repo_id=request.repo_id, filename=request.filename, endpoint=endpoint)


def move_models_folder(old_dir: Path, new_dir: Path) -> None:
    """Moves the app's downloads (verified files, manifest, partial files and queue) to a new
    models folder. Call it while no ``DownloadManager`` uses either folder. Files already in the
    new folder win; anything else in the old folder is not the app's and stays."""
    manifest = old_dir / _MANIFEST_NAME
    try:
        installed = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError):
        installed = []
    relative_paths = [Path(entry["repo_id"], entry["filename"]) for entry in installed]
    relative_paths += [Path(_MANIFEST_NAME), Path(_PARTIAL_FOLDER_NAME)]
    for relative in relative_paths:
        source, target = old_dir / relative, new_dir / relative
        if source.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
