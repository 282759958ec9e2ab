"""Every contact with the Hugging Face Hub goes through here, with the user's Hub settings.

The settings are the endpoint (a mirror or a test server instead of huggingface.co), a proxy,
and offline mode. Offline mode is a promise that the app makes no network request at all, so
``ensure_online`` raises ``OfflineError`` before any huggingface_hub call is made.

The token is passed explicitly to every call, or ``False`` when the user has none: never
``None``, which would make huggingface_hub send whatever token another tool saved on this machine.

huggingface_hub 2.x sends all requests through one shared httpx2 client. A proxy can only be set
when that client is made, so ``apply_hub_settings`` installs a client factory
(``huggingface_hub.set_client_factory``, the library's hook for proxies and certificates) on
first use and whenever the proxy changes. The app's client replaces the library's default one,
whose only other duty, refusing requests under ``HF_HUB_OFFLINE``, the app's offline setting
takes over. Installing a factory closes the shared client and so breaks transfers in flight;
the download manager restarts its transfers when the settings change.

huggingface_hub is imported inside the functions: it takes about half a second to import, and
most starts of the app never talk to the Hub.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.file_download import HfFileMetadata

# huggingface_hub's own client has no default timeout, so an API call on a connection that
# stalls would hang forever; calls that pass a timeout of their own keep it.
API_TIMEOUT_SECONDS = 30.0
# huggingface_hub reports progress, and so lets a transfer be stopped, once per chunk it
# receives. Its own 10 MiB chunks would make Pause wait 10 s on a 1 MB/s connection, and any
# fixed size shows nothing for long on a slow one (256 KiB: 25 s at 10 KB/s). None passes on
# each network read as it arrives (at most 64 KiB), so progress moves, and a Pause or Cancel
# takes effect, within a fraction of a second at any speed data flows at.
TRANSFER_CHUNK_BYTES = None


class OfflineError(Exception):
    """Offline mode is on; the message is written for the user."""


@dataclass(frozen=True)
class HubSettings:
    """Where and how the app reaches the Hub. Empty strings count as "not set"."""

    endpoint: str | None = None  # None: the HF_ENDPOINT environment variable, else huggingface.co
    proxy: str | None = None  # None: the system's proxy environment variables, if any
    offline: bool = False  # True: no network request of any kind


_client_lock = threading.Lock()
_installed_proxy: object = object()  # the proxy of the app's client; a marker until it is installed


def ensure_online(settings: HubSettings) -> None:
    if settings.offline:
        raise OfflineError(
            "Offline mode is on, so the app does not contact the Hugging Face Hub. "
            "Turn off offline mode in Settings to browse and download models."
        )


def hub_endpoint(settings: HubSettings) -> str:
    from huggingface_hub import constants

    return (settings.endpoint or constants.ENDPOINT).rstrip("/")


def apply_hub_settings(settings: HubSettings) -> None:
    """Makes huggingface_hub's shared client use ``settings.proxy``; does nothing if it already does."""
    global _installed_proxy
    proxy = settings.proxy or None
    with _client_lock:
        if _installed_proxy == proxy:
            return
        import httpx2
        from huggingface_hub import set_client_factory

        def make_client() -> httpx2.Client:
            # Same redirect behaviour as huggingface_hub's default client; httpx2 drops the
            # Authorization header when a redirect leaves the Hub (downloads go to a CDN).
            return httpx2.Client(proxy=proxy, follow_redirects=True, timeout=API_TIMEOUT_SECONDS)

        set_client_factory(make_client)
        _installed_proxy = proxy


def make_hf_api(settings: HubSettings, token: str | None) -> HfApi:
    """An ``HfApi`` for the settings' endpoint, proxy and token. Make a new one for each
    operation: one kept across a settings change would not notice offline mode."""
    ensure_online(settings)
    apply_hub_settings(settings)
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(settings), token=token or False)


def file_metadata(
    settings: HubSettings, token: str | None, repo_id: str, filename: str, revision: str | None
) -> HfFileMetadata:
    """One HEAD request: the commit ``revision`` points to, and the file's size and ETag (the
    sha256 for files kept in LFS, as model files are)."""
    ensure_online(settings)
    apply_hub_settings(settings)
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = hub_endpoint(settings)
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    return get_hf_file_metadata(url, token=token or False, endpoint=endpoint)


def download_into(
    settings: HubSettings,
    token: str | None,
    *,
    repo_id: str,
    filename: str,
    commit: str,
    destination: BinaryIO,
    resume_size: int,
    expected_size: int,
    progress_class: Callable[..., object],
) -> None:
    """Appends the rest of the file, from byte ``resume_size``, to ``destination``.

    This is huggingface_hub's ``http_get``, the plain-HTTP transfer behind ``hf_hub_download``:
    it sends the Range request, retries dropped or stalled connections from the last byte
    received, and calls ``progress_class`` (a tqdm class) for progress. ``hf_hub_download``
    itself cannot be used: since huggingface_hub 1.x it downloads into a temporary file with a
    random name and deletes it on any error, so neither a pause nor a restart of the app could
    resume. Xet storage is never used on this path (see ``app.core.models.model_downloads``).
    """
    ensure_online(settings)
    apply_hub_settings(settings)
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    constants.DOWNLOAD_CHUNK_SIZE = TRANSFER_CHUNK_BYTES  # read by http_get at each call
    http_get(
        hf_hub_url(repo_id, filename, revision=commit, endpoint=hub_endpoint(settings)),
        destination,
        resume_size=resume_size,
        headers=build_hf_headers(token=token or False),
        expected_size=expected_size,
        displayed_filename=filename,
        tqdm_class=progress_class,  # type: ignore[arg-type]  # any tqdm-like factory works
    )


def describe_hub_error(error: BaseException, *, repo_id: str | None = None, filename: str | None = None, endpoint: str | None = None) -> str:
    """A sentence for the user about a failed Hub call (network, HTTP status, offline), naming
    the repository, file and server when they are given."""
    if isinstance(error, OfflineError):
        return str(error)
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    server = endpoint or "the Hugging Face Hub"
    repository = repo_id or "The model's repository"
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            return (
                f"{repo_id or 'This model'} needs a Hugging Face access token, or the saved token was refused "
                f"by {server}. Add a valid token in Settings and try again."
            )
        if isinstance(error, GatedRepoError) or status == 403:
            return (
                f"Your Hugging Face token does not give access to {repo_id or 'this model'}. Accept the model's "
                "terms on huggingface.co, or use a token that has access."
            )
        if isinstance(error, RevisionNotFoundError):
            return f"This version of {repository} is no longer on {server}. Refresh the model list and try again."
        if isinstance(error, RemoteEntryNotFoundError):
            return (
                f"{filename or 'This file'} is no longer in {repository} on {server} (it may have been renamed "
                "or removed). Refresh the model list."
            )
        if isinstance(error, RepositoryNotFoundError) or status == 404:
            return f"{repository} was not found on {server}."
        if status == 429:
            return f"{server} is receiving too many requests from this computer. Wait a few minutes and try again."
        if status is not None and status >= 500:
            return f"{server} had a server error ({status}). Try again later."
        return f"{server} refused the request ({status})."
    if isinstance(error, httpx2.ProxyError):
        return "The proxy set in Settings could not be used. Check its address, or clear it."
    if isinstance(error, httpx2.TimeoutException):
        return (
            f"{server} stopped responding. Check your connection and try again: "
            "a download continues where it stopped."
        )
    if isinstance(error, httpx2.TransportError):
        return (
            f"{server} could not be reached. Check your internet connection "
            "(and the proxy in Settings, if you use one) and try again."
        )
    return f"The request to {server} failed: {error}"
