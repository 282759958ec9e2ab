"""Model downloads: real huggingface_hub against a local Hub server, real files, real keyring backend."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest

from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.models.hub_access import HubSettings, OfflineError, make_hf_api
from app.core.models.model_catalog import PROJECTOR_FILENAME, filename_of, repository_of
from app.core.models.model_downloads import (
    DISK_SPACE_MARGIN_BYTES,
    DownloadManager,
    DownloadProgress,
    DownloadRequest,
    DownloadState,
    move_models_folder,
)
from app.core.models.projector_pairing import find_projector
from app.core.profile.secret_store import KEYRING_SERVICE, KEYRING_USERNAME, SecretStore
from tests.hub_fixtures import MemoryKeyring
from tests.hub_server import HostedFile, HubServer

REPO = "unsloth/Qwen3.5-0.8B-GGUF"
FILE = "Qwen3.5-0.8B-Q4_K_M.gguf"
TOKEN = "hf_test_token_0123456789"
CHUNK = 256 * 1024  # where faults are put: past the first network reads
WAIT_SECONDS = 30  # an upper bound for a busy machine, never a timing expectation
MODEL = DownloadRequest(REPO, FILE)


class ProgressLog:
    """The reports a manager sends from its threads, with a way to wait for one and to react."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.reports: list[DownloadProgress] = []
        self.reaction: Callable[[DownloadProgress], None] | None = None

    def __call__(self, progress: DownloadProgress) -> None:
        if self.reaction is not None:
            self.reaction(progress)
        with self._condition:
            self.reports.append(progress)
            self._condition.notify_all()

    def mark(self) -> int:
        with self._condition:
            return len(self.reports)

    def wait_for(
        self,
        request: DownloadRequest,
        *states: DownloadState,
        since: int = 0,
        where: Callable[[DownloadProgress], bool] = lambda progress: True,
    ) -> DownloadProgress:
        def found() -> DownloadProgress | None:
            return next(
                (
                    progress
                    for progress in self.reports[since:]
                    if progress.request.key == request.key and progress.state in states and where(progress)
                ),
                None,
            )

        with self._condition:
            assert self._condition.wait_for(lambda: found() is not None, timeout=WAIT_SECONDS), self.reports
            return found()

    def finished(self, request: DownloadRequest, since: int = 0) -> DownloadProgress:
        return self.wait_for(
            request, DownloadState.COMPLETE, DownloadState.FAILED, DownloadState.CANCELLED, since=since
        )

    def paused_and_let_go(self, request: DownloadRequest) -> DownloadProgress:
        """The second PAUSED report: the first comes when the pause is asked for, the second
        once the worker has let go of the transfer, with the bytes it kept."""
        at_once = self.wait_for(request, DownloadState.PAUSED)
        return self.wait_for(request, DownloadState.PAUSED, since=self.reports.index(at_once) + 1)

    def of(self, request: DownloadRequest) -> list[DownloadProgress]:
        with self._condition:
            return [progress for progress in self.reports if progress.request.key == request.key]

    def pause_at_first_chunk(
        self, manager: DownloadManager, action: Callable[[DownloadRequest], None] | None = None
    ) -> None:
        """Pauses (or runs ``action`` on) a download once it has received its first chunk."""

        def react(progress: DownloadProgress) -> None:
            if progress.state is DownloadState.DOWNLOADING and progress.downloaded_bytes > 0:
                self.reaction = None
                (action or manager.pause)(progress.request)

        self.reaction = react


@pytest.fixture
def hosted(hub_server: HubServer, tiny_model: Path) -> HostedFile:
    return hub_server.add_file(REPO, FILE, tiny_model)


@pytest.fixture
def log() -> ProgressLog:
    return ProgressLog()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def start_manager(
    models_dir: Path, hub_settings: HubSettings, log: ProgressLog
) -> Iterator[Callable[..., DownloadManager]]:
    started: list[DownloadManager] = []

    def start(
        settings: HubSettings | None = None, token_provider: Callable[[], str | None] = lambda: None, **options
    ) -> DownloadManager:
        manager = DownloadManager(models_dir, settings or hub_settings, token_provider, log, **options)
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.shutdown(timeout=WAIT_SECONDS)


def stray_files(models_dir: Path) -> list[Path]:
    """Every file in the models folder except the queue and the manifest (JSON)."""
    return [path for path in models_dir.rglob("*") if path.is_file() and path.suffix != ".json"]


def cdn_ranges(hub_server: HubServer, filename: str = FILE) -> list[str | None]:
    return [
        request.headers.get("range") for request in hub_server.requests_for(filename, "GET") if request.origin == "cdn"
    ]


# --------------------------------------------------------------------------------- success


def test_a_download_is_verified_then_installed(start_manager, log, hosted, tiny_model, models_dir) -> None:
    manager = start_manager()
    manager.enqueue(MODEL)
    done = log.finished(MODEL)
    assert (done.state, done.error) == (DownloadState.COMPLETE, None)
    assert done.path == manager.path_for(MODEL) and done.path.read_bytes() == tiny_model.read_bytes()
    assert manager.is_installed(MODEL)
    [installed] = manager.installed_files()
    assert (installed.sha256, installed.size, installed.commit, installed.path) == (
        hosted.sha256,
        hosted.size,
        hosted.commit,
        done.path,
    )
    states = [progress.state for progress in log.of(MODEL)]
    assert states[0] is DownloadState.QUEUED and DownloadState.VERIFYING in states
    assert manager.downloads() == [] and stray_files(models_dir) == [done.path]


def test_progress_reports_bytes_speed_and_time_left(start_manager, log, hosted) -> None:
    start_manager().enqueue(MODEL)
    assert log.finished(MODEL).downloaded_bytes == hosted.size
    downloading = [progress for progress in log.of(MODEL) if progress.state is DownloadState.DOWNLOADING]
    received = [progress.downloaded_bytes for progress in downloading]
    assert received == sorted(received) and received[-1] == hosted.size
    assert {progress.total_bytes for progress in downloading} == {hosted.size}
    assert any(
        progress.bytes_per_second and progress.bytes_per_second > 0 and progress.eta_seconds is not None
        for progress in downloading
    )
    assert all(progress.eta_seconds is None or progress.eta_seconds >= 0 for progress in downloading)


def test_an_installed_file_is_not_downloaded_again(start_manager, log, hub_server, hosted) -> None:
    manager = start_manager()
    manager.enqueue(MODEL)
    log.finished(MODEL)
    requests_before, seen = len(hub_server.requests), log.mark()
    manager.enqueue(MODEL)
    assert log.finished(MODEL, since=seen).state is DownloadState.COMPLETE
    assert len(hub_server.requests) == requests_before


def test_queued_downloads_run_one_at_a_time_in_their_order(start_manager, log, hub_server, tiny_model) -> None:
    requests = [
        DownloadRequest(REPO, f"Qwen3.5-0.8B-{quantization}.gguf") for quantization in ("Q4_K_M", "Q6_K", "Q8_0")
    ]
    for request in requests:
        hub_server.add_file(REPO, request.filename, tiny_model)
    manager = start_manager()
    for request in requests:
        manager.enqueue(request)
    assert all(log.finished(request).state is DownloadState.COMPLETE for request in requests)
    active = [
        progress.request.key
        for progress in log.reports
        if progress.state in (DownloadState.DOWNLOADING, DownloadState.VERIFYING, DownloadState.COMPLETE)
    ]
    assert [key for key, _ in itertools.groupby(active)] == [request.key for request in requests]


# ------------------------------------------------------------------------ broken transfers


def test_a_dropped_connection_resumes_with_a_range_request(start_manager, log, hub_server, hosted, tiny_model) -> None:
    hub_server.drop_connection(REPO, FILE, at=CHUNK + CHUNK // 2)
    start_manager().enqueue(MODEL)
    done = log.finished(MODEL)
    assert done.state is DownloadState.COMPLETE and done.path.read_bytes() == tiny_model.read_bytes()
    assert cdn_ranges(hub_server) == [None, f"bytes={CHUNK + CHUNK // 2}-"]  # every byte received is kept


def test_a_stalled_connection_times_out_and_resumes(start_manager, log, hub_server, hosted, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    hub_server.stall(REPO, FILE, at=CHUNK + CHUNK // 2)  # never released: only a timeout gets past it
    start_manager().enqueue(MODEL)
    assert log.finished(MODEL).state is DownloadState.COMPLETE
    assert cdn_ranges(hub_server) == [None, f"bytes={CHUNK + CHUNK // 2}-"]


def test_a_restarted_app_resumes_the_partial_file(start_manager, log, hub_server, hosted, tiny_model, models_dir) -> None:
    stall = hub_server.stall(REPO, FILE, at=CHUNK + CHUNK // 2)
    first = start_manager()
    first.enqueue(MODEL)
    log.wait_for(MODEL, DownloadState.DOWNLOADING, where=lambda progress: progress.downloaded_bytes > 0)
    first.shutdown(timeout=0)  # the app quits while bytes flow or the connection hangs
    stall.release()
    assert first.shutdown(timeout=WAIT_SECONDS)
    before_restart, seen = len(hub_server.requests), log.mark()
    (partial,) = (models_dir / ".downloads").glob("*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept <= CHUNK + CHUNK // 2

    start_manager()  # interrupted downloads continue on their own
    done = log.finished(MODEL, since=seen)
    assert done.state is DownloadState.COMPLETE and done.path.read_bytes() == tiny_model.read_bytes()
    after_restart = hub_server.requests[before_restart:]
    assert [request.method for request in after_restart if request.origin == "hub"] == ["GET"]  # still pinned
    assert [request.headers.get("range") for request in after_restart if request.origin == "cdn"] == [f"bytes={kept}-"]


def test_a_corrupted_file_is_deleted_and_can_be_downloaded_again(
    start_manager, log, hub_server, hosted, models_dir
) -> None:
    hub_server.corrupt(REPO, FILE, at=hosted.size // 2, times=1)
    manager = start_manager()
    manager.enqueue(MODEL)
    failed = log.finished(MODEL)
    assert failed.state is DownloadState.FAILED
    assert "corrupted" in failed.error and "deleted" in failed.error
    assert stray_files(models_dir) == [] and not manager.is_installed(MODEL)
    assert [progress.state for progress in manager.downloads()] == [DownloadState.FAILED]

    seen = log.mark()
    manager.resume(MODEL)
    assert log.finished(MODEL, since=seen).state is DownloadState.COMPLETE


def test_a_file_that_changed_on_the_hub_is_not_downloaded(start_manager, log, hub_server, hosted) -> None:
    outdated = DownloadRequest(REPO, FILE, expected_size=hosted.size, expected_sha256="0" * 64)
    start_manager().enqueue(outdated)
    failed = log.finished(outdated)
    assert failed.state is DownloadState.FAILED and "its checksum differs" in failed.error
    assert f"{REPO}/{FILE} on {hub_server.endpoint}" in failed.error
    assert hub_server.requests_for(FILE, "GET") == []


def test_a_file_whose_size_differs_from_the_model_list_is_not_downloaded(start_manager, log, hub_server, hosted) -> None:
    listed = DownloadRequest(REPO, FILE, expected_size=532_517_120)  # the list's published size, no checksum yet
    start_manager().enqueue(listed)
    failed = log.finished(listed)
    assert failed.state is DownloadState.FAILED
    assert f"{hub_server.endpoint} offers {REPO}/{FILE} with" in failed.error
    assert "the model list says 533MB" in failed.error and "Refresh catalog" in failed.error
    assert hub_server.requests_for(FILE, "GET") == []


# ----------------------------------------------------------------- pause, resume, cancel


def test_pause_keeps_the_partial_file_and_resume_finishes_it(
    start_manager, log, hub_server, hosted, models_dir
) -> None:
    manager = start_manager()
    log.pause_at_first_chunk(manager)
    manager.enqueue(MODEL)
    paused = log.paused_and_let_go(MODEL)
    assert 0 < paused.downloaded_bytes < hosted.size
    [partial] = stray_files(models_dir)
    assert partial.stat().st_size == paused.downloaded_bytes
    assert not manager.is_installed(MODEL) and manager.installed_files() == []  # a partial file is no model
    assert [progress.state for progress in manager.downloads()] == [DownloadState.PAUSED]

    seen = log.mark()
    manager.resume(MODEL)
    assert log.finished(MODEL, since=seen).state is DownloadState.COMPLETE
    assert cdn_ranges(hub_server) == [None, f"bytes={paused.downloaded_bytes}-"]


def test_a_paused_download_stays_paused_after_a_restart(start_manager, log, hub_server, hosted) -> None:
    first = start_manager()
    log.pause_at_first_chunk(first)
    first.enqueue(MODEL)
    paused = log.paused_and_let_go(MODEL)
    assert first.shutdown()
    requests_before = len(hub_server.requests)

    second = start_manager()
    [restored] = second.downloads()
    assert (restored.state, restored.downloaded_bytes, restored.total_bytes) == (
        DownloadState.PAUSED,
        paused.downloaded_bytes,
        hosted.size,
    )
    assert len(hub_server.requests) == requests_before


def test_cancelling_a_running_download_deletes_its_partial_file(start_manager, log, hosted, models_dir) -> None:
    manager = start_manager()
    log.pause_at_first_chunk(manager, action=manager.cancel)
    manager.enqueue(MODEL)
    assert log.finished(MODEL).state is DownloadState.CANCELLED
    assert manager.downloads() == []  # at once
    assert manager.shutdown(timeout=WAIT_SECONDS)  # the worker deletes the file as it lets go
    assert stray_files(models_dir) == [] and not manager.is_installed(MODEL)


def test_cancelling_a_paused_download_deletes_its_partial_file(start_manager, log, hosted, models_dir) -> None:
    manager = start_manager()
    log.pause_at_first_chunk(manager)
    manager.enqueue(MODEL)
    log.paused_and_let_go(MODEL)
    assert len(stray_files(models_dir)) == 1
    manager.cancel(MODEL)
    assert log.finished(MODEL).state is DownloadState.CANCELLED
    assert manager.downloads() == [] and stray_files(models_dir) == []


# ---------------------------------------------------------------------------- disk space


def test_too_little_disk_space_refuses_before_downloading(start_manager, log, hub_server, hosted) -> None:
    start_manager(free_space=lambda folder: hosted.size).enqueue(MODEL)
    failed = log.finished(MODEL)
    assert failed.state is DownloadState.FAILED and "Not enough free disk space" in failed.error
    assert hub_server.requests_for(FILE, "GET") == []


def test_pause_and_cancel_of_a_stalled_transfer_take_effect_at_once(start_manager, log, hub_server, hosted, models_dir) -> None:
    stall = hub_server.stall(REPO, FILE, at=0)  # the connection hangs: no chunk comes to stop at
    manager = start_manager()
    manager.enqueue(MODEL)
    log.wait_for(MODEL, DownloadState.DOWNLOADING)  # the transfer starts, and gets nothing
    seen = log.mark()
    manager.pause(MODEL)
    assert log.of(MODEL)[-1].state is DownloadState.PAUSED and len(log.reports) == seen + 1  # reported before pause() returned
    assert [progress.state for progress in manager.downloads()] == [DownloadState.PAUSED]
    manager.resume(MODEL)  # changed their mind: the same transfer goes on
    assert [progress.state for progress in manager.downloads()] == [DownloadState.DOWNLOADING]
    manager.cancel(MODEL)
    assert log.of(MODEL)[-1].state is DownloadState.CANCELLED and manager.downloads() == []
    stall.release()
    manager.shutdown(timeout=WAIT_SECONDS)  # the worker let go of it and deleted its file
    assert stray_files(models_dir) == [] and not manager.is_installed(MODEL)
    assert [progress.state for progress in log.of(MODEL)].count(DownloadState.CANCELLED) == 1


def test_a_resumed_download_needs_space_only_for_the_rest_plus_a_margin(start_manager, log, hosted) -> None:
    free = [10**12]
    manager = start_manager(free_space=lambda folder: free[0])
    log.pause_at_first_chunk(manager)
    manager.enqueue(MODEL)
    paused = log.paused_and_let_go(MODEL)
    needed = hosted.size - paused.downloaded_bytes + DISK_SPACE_MARGIN_BYTES

    free[0], seen = needed - 1, log.mark()
    manager.resume(MODEL)
    assert log.finished(MODEL, since=seen).state is DownloadState.FAILED
    free[0], seen = needed, log.mark()
    manager.resume(MODEL)
    assert log.finished(MODEL, since=seen).state is DownloadState.COMPLETE


# ------------------------------------------------------------------------ Hub access


def test_a_protected_model_is_downloaded_with_the_token_from_the_keyring(
    start_manager, log, hub_server, hosted, memory_keyring: MemoryKeyring, tmp_path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    hub_server.require_token(REPO, TOKEN)
    secrets = SecretStore()
    manager = start_manager(token_provider=secrets.token)
    manager.enqueue(MODEL)
    failed = log.finished(MODEL)
    assert failed.state is DownloadState.FAILED and "token" in failed.error
    without_token = len(hub_server.requests)

    secrets.set_token(TOKEN)
    seen = log.mark()
    manager.resume(MODEL)
    assert log.finished(MODEL, since=seen).state is DownloadState.COMPLETE
    with_token = hub_server.requests[without_token:]
    assert {request.headers.get("authorization") for request in with_token if request.origin == "hub"} == {
        f"Bearer {TOKEN}"
    }
    assert {request.headers.get("authorization") for request in with_token if request.origin == "cdn"} == {None}
    assert memory_keyring.passwords == {(KEYRING_SERVICE, KEYRING_USERNAME): TOKEN}
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (DownloadRequest(REPO, "Qwen3.5-0.8B-IQ1_S.gguf"), f"Qwen3.5-0.8B-IQ1_S.gguf is no longer in {REPO} on {{hub}}"),
        (DownloadRequest(REPO, FILE, revision="0" * 40), f"This version of {REPO} is no longer on {{hub}}"),
        (DownloadRequest("nobody/no-such-model", FILE), "nobody/no-such-model was not found on {hub}."),
    ],
    ids=["file", "revision", "repository"],
)
def test_what_is_missing_on_the_hub_is_reported_naming_repository_and_server(
    start_manager, log, hub_server, hosted, request_, message
) -> None:
    start_manager().enqueue(request_)
    failed = log.finished(request_)
    assert failed.state is DownloadState.FAILED and message.format(hub=hub_server.endpoint) in failed.error


def test_a_server_error_is_reported_clearly(start_manager, log, hub_server, hosted) -> None:
    hub_server.fail(REPO, FILE, 500)
    manager = start_manager()
    manager.enqueue(MODEL)
    failed = log.finished(MODEL)
    assert failed.state is DownloadState.FAILED and "server error (500)" in failed.error
    assert [progress.state for progress in manager.downloads()] == [DownloadState.FAILED]


def test_an_unreachable_hub_is_reported_clearly(start_manager, log) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    start_manager(HubSettings(endpoint=f"http://127.0.0.1:{closed_port}")).enqueue(MODEL)
    failed = log.finished(MODEL)
    assert failed.state is DownloadState.FAILED and "could not be reached" in failed.error


def test_offline_mode_makes_no_request(start_manager, hub_server, hosted) -> None:
    offline = HubSettings(endpoint=hub_server.endpoint, offline=True)
    manager = start_manager(offline)
    with pytest.raises(OfflineError, match="Offline mode is on"):
        manager.enqueue(MODEL)
    with pytest.raises(OfflineError):
        make_hf_api(offline, TOKEN)
    assert hub_server.requests == []


def test_queued_downloads_wait_while_offline_mode_is_on(start_manager, log, hub_server, hub_settings, hosted) -> None:
    manager = start_manager()
    log.pause_at_first_chunk(manager)
    manager.enqueue(MODEL)
    log.paused_and_let_go(MODEL)
    manager.set_hub_settings(HubSettings(endpoint=hub_server.endpoint, offline=True))
    requests_before = len(hub_server.requests)
    manager.resume(MODEL)
    assert [progress.state for progress in manager.downloads()] == [DownloadState.QUEUED]
    assert len(hub_server.requests) == requests_before

    seen = log.mark()
    manager.set_hub_settings(hub_settings)
    assert log.finished(MODEL, since=seen).state is DownloadState.COMPLETE


def test_every_request_goes_through_the_proxy_from_the_settings(start_manager, log, hub_server, hosted) -> None:
    behind_proxy = HubSettings(endpoint="http://hub.invalid", proxy=hub_server.endpoint)
    start_manager(behind_proxy).enqueue(MODEL)
    assert log.finished(MODEL).state is DownloadState.COMPLETE
    assert hub_server.requests and all(request.proxied for request in hub_server.requests)


# ----------------------------------------------------------------------- deleting and moving


def test_deleting_a_download_removes_the_file_and_its_folders(start_manager, log, hosted, models_dir) -> None:
    manager = start_manager()
    manager.enqueue(MODEL)
    path = log.finished(MODEL).path
    manager.delete_installed(path)
    assert not path.exists() and not manager.is_installed(MODEL) and manager.installed_files() == []
    assert stray_files(models_dir) == [] and not path.parent.exists()
    with pytest.raises(ValueError):
        manager.delete_installed(models_dir / "not-ours.gguf")


def test_moving_the_models_folder_keeps_downloads_and_partial_files(
    start_manager, log, hub_server, hosted, models_dir, tmp_path, tiny_model
) -> None:
    other = "Qwen3.5-Other.gguf"
    hub_server.add_file(REPO, other, tiny_model)
    partial_request = DownloadRequest(REPO, other)
    manager = start_manager()
    manager.enqueue(MODEL)
    log.finished(MODEL)
    log.pause_at_first_chunk(manager)
    manager.enqueue(partial_request)
    log.wait_for(partial_request, DownloadState.PAUSED)
    manager.shutdown(timeout=WAIT_SECONDS)

    new_dir = tmp_path / "elsewhere"
    move_models_folder(models_dir, new_dir)

    moved = DownloadManager(new_dir, HubSettings(endpoint=hub_server.endpoint), lambda: None, log)
    try:
        assert moved.is_installed(MODEL) and moved.path_for(MODEL).read_bytes() == tiny_model.read_bytes()
        [paused] = moved.downloads()
        assert paused.state is DownloadState.PAUSED and paused.downloaded_bytes > 0
        since = len(log.reports)
        moved.resume(partial_request)
        assert log.finished(partial_request, since=since).state is DownloadState.COMPLETE
    finally:
        moved.shutdown(timeout=WAIT_SECONDS)
    assert not (models_dir / "installed.json").exists()


# ------------------------------------------------------------------------------ projectors


def test_each_sizes_projector_lands_beside_its_model_and_is_found_from_the_models_path(
    start_manager, log, hub_server, tiny_model, tmp_path
) -> None:
    """Every Qwen3.5 repository names its projector mmproj-F16.gguf: kept per repository, the
    projectors of two sizes never overwrite each other, and each model finds its own."""
    projectors = {
        "0.8B": write_tiny_qwen35_projector(tmp_path / "small.gguf"),
        "9B": write_tiny_qwen35_projector(tmp_path / "large.gguf", seed=1),
    }
    requests = []
    for size_label, projector in projectors.items():
        repo_id = repository_of(size_label)
        hub_server.add_file(repo_id, filename_of(size_label, "Q4_K_M"), tiny_model)
        hub_server.add_file(repo_id, PROJECTOR_FILENAME, projector)
        requests += [DownloadRequest(repo_id, PROJECTOR_FILENAME), DownloadRequest(repo_id, filename_of(size_label, "Q4_K_M"))]
    manager = start_manager()
    for request in requests:
        manager.enqueue(request)
    paths = {request.key: log.finished(request).path for request in requests}

    for size_label, projector in projectors.items():
        model = paths[f"{repository_of(size_label)}/{filename_of(size_label, 'Q4_K_M')}"]
        downloaded = paths[f"{repository_of(size_label)}/{PROJECTOR_FILENAME}"]
        assert downloaded.parent == model.parent and downloaded.read_bytes() == projector.read_bytes()
        assert find_projector(model) == downloaded
    assert len(set(paths.values())) == 4

    # Deleted with its model, the projector leaves the manifest and the folder like any download.
    small = paths[f"{repository_of('0.8B')}/{PROJECTOR_FILENAME}"]
    manager.delete_installed(small)
    assert not small.exists() and not manager.is_installed(DownloadRequest(repository_of("0.8B"), PROJECTOR_FILENAME))
