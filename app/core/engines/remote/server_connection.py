"""Reaching a model server: its address, its key, the client that speaks to it, and a sentence
for each way that can fail.

Servers speak the OpenAI-compatible API (llama-server, Ollama, LM Studio, vLLM, our own
``qwen-local-chat serve``), so the official ``openai`` client speaks to them. TLS certificates are
always verified, against the usual authorities plus the server's own CA file when one is set;
there is no way to turn verification off. What a server answers is untrusted: model lists are
bounded and its error messages are cut to one short line before anyone sees them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import httpx2
import openai

from app.core.network_addresses import is_loopback_url

CONNECT_TIMEOUT_S = 10.0
LIST_TIMEOUT_S = 20.0  # listing models: a server that takes longer is not usable from here
SILENCE_LIMIT_S = 300.0  # a reply may wait this long for its next byte (a long prompt on a slow box)
MAX_MODELS = 500
MAX_MODEL_ID_CHARACTERS = 256
MAX_SERVER_TEXT = 240  # characters of a server's own error message that are shown
NO_KEY = "no-key"  # sent when the server needs none: the client insists on some key


@dataclass(frozen=True)
class ServerConnection:
    """Everything needed to reach one server; ``api_key`` is kept out of every repr (and
    compared: a changed key is a changed connection)."""

    name: str
    url: str
    api_key: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    @property
    def api_base(self) -> str:
        """The API's root: the address as given, with ``/v1`` added when it has no path."""
        return api_base(self.url)

    @property
    def address(self) -> str:
        """Host and port, as a person would recognise the server."""
        return urlsplit(self.url).netloc

    @property
    def on_this_computer(self) -> bool:
        return is_loopback_url(self.url)


@dataclass(frozen=True)
class ServerModel:
    """A model a server lists. What servers say beyond the id differs: 0 and None are unknown."""

    id: str
    context_length: int = 0  # the context it runs with
    trained_context: int = 0
    reads_images: bool | None = None


class ServerProblem(Exception):
    """A model server could not be used; the message is one sentence for the user."""


def api_base(url: str) -> str:
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return parts._replace(path=path or "/v1", query="", fragment="").geturl()


def check_url(url: str) -> str:
    """``url`` tidied, or ``ServerProblem`` saying what is wrong with it."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerProblem("The address must start with http:// or https:// and name a computer, such as http://192.168.1.20:8080/v1.")
    if parts.username or parts.password:
        raise ServerProblem("Put the key in the Key field, not in the address.")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ServerProblem("The port in the address is not a number from 1 to 65535.") from None
    return url


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The usual certificate authorities, and the server's own CA when it has one; raises
    ``ServerProblem`` for a CA file that cannot be read as certificates."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError, ValueError):
            raise ServerProblem(f"The CA file {ca_file} cannot be read as PEM certificates.") from None
    return context


def open_client(connection: ServerConnection) -> openai.AsyncOpenAI:
    """A client for ``connection``, for use on the event loop that calls it. It never retries:
    a failure is reported at once, and the person decides."""
    timeout = httpx2.Timeout(SILENCE_LIMIT_S, connect=CONNECT_TIMEOUT_S)
    http_client = httpx2.AsyncClient(verify=tls_context(connection.ca_file), timeout=timeout, trust_env=False)
    return openai.AsyncOpenAI(
        base_url=connection.api_base, api_key=connection.api_key or NO_KEY, max_retries=0,
        timeout=timeout, http_client=http_client,
    )


async def fetch_models(client: openai.AsyncOpenAI) -> list[ServerModel]:
    """The models the server lists, bounded; raises openai's errors, or ``ValueError`` for an
    answer that is not an OpenAI model list."""
    response = await client.models.with_raw_response.list(timeout=LIST_TIMEOUT_S)
    document = response.http_response.json()  # ValueError when it is not JSON
    listed = document.get("data") if isinstance(document, Mapping) else None
    if not isinstance(listed, list):
        raise ValueError("not an OpenAI model list")
    capabilities = _ollama_style_capabilities(document)
    models: list[ServerModel] = []
    for entry in listed[:MAX_MODELS]:
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and 0 < len(entry["id"]) <= MAX_MODEL_ID_CHARACTERS:
            models.append(_server_model(entry, capabilities.get(entry["id"])))
    return models


def list_models(connection: ServerConnection) -> list[ServerModel]:
    """``fetch_models`` from a thread of its own; raises ``ServerProblem`` with the sentence."""

    async def listing() -> list[ServerModel]:
        client = open_client(connection)
        try:
            return await fetch_models(client)
        finally:
            await client.close()

    try:
        return asyncio.run(listing())
    except Exception as error:  # noqa: BLE001 - every failure becomes its sentence
        raise ServerProblem(describe_failure(error, connection, listing=True)) from None


def describe_failure(error: BaseException, connection: ServerConnection, *, listing: bool = False, model: str = "") -> str:
    """One sentence for what went wrong talking to ``connection`` (``listing``: its model
    list; ``model``: a reply from that model)."""
    name = connection.name
    if isinstance(error, ServerProblem):
        return str(error)
    if isinstance(error, openai.APITimeoutError):
        return f"{name} did not answer in time: it may be overloaded, or a firewall drops the connection."
    if isinstance(error, openai.APIConnectionError):
        certificate = _tls_cause(error)
        if isinstance(certificate, ssl.SSLCertVerificationError):
            return (
                f"{name}'s TLS certificate cannot be verified ({certificate.verify_message or 'not trusted'}). "
                "If the server uses its own certificate authority, choose its CA file for this server."
            )
        if certificate is not None:
            return f"A secure connection to {name} could not be set up: {_server_text(str(certificate))}."
        return f"{name} cannot be reached at {connection.address}: check that the server runs and that the address is right."
    if isinstance(error, openai.AuthenticationError):
        return f"{name} refused the key: check the key set for this server."
    if isinstance(error, openai.PermissionDeniedError):
        return f"{name} does not let this key use it."
    if isinstance(error, openai.NotFoundError):
        if listing:
            return _not_an_api_text(connection)
        return f"{name} no longer has the model {model!r}: choose another one of its models." if model else _not_an_api_text(connection)
    if isinstance(error, openai.RateLimitError):
        wait = error.response.headers.get("retry-after", "")
        return f"{name} is busy with other requests: try again in {wait} seconds." if wait.isdigit() else f"{name} is busy with other requests: try again in a moment."
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = _server_text(_status_message(error))
        if status >= 500:
            return f"{name} failed while answering (error {status}{': ' + detail if detail else ''})."
        return f"{name} refused the request (error {status}{': ' + detail if detail else ''})."
    if isinstance(error, (openai.APIResponseValidationError, ValueError)):
        return _not_an_api_text(connection)
    return f"Talking to {name} failed: {_server_text(str(error)) or type(error).__name__}."


def is_context_overflow(error: BaseException) -> bool:
    """Whether a refusal says the conversation does not fit the server's context (servers word
    it differently; OpenAI's code is ``context_length_exceeded``)."""
    if not isinstance(error, openai.BadRequestError):
        return False
    text = _status_message(error).lower()
    body = error.body if isinstance(error.body, Mapping) else {}
    return body.get("code") == "context_length_exceeded" or any(
        phrase in text for phrase in ("context length", "context_length", "maximum context", "exceeds the available context", "too long")
    )


def status_message(error: BaseException) -> str:
    """A server's own reason for a refusal, cut to one short line."""
    return _server_text(_status_message(error)) if isinstance(error, openai.APIStatusError) else ""


def _server_model(entry: Mapping, capability_list: object) -> ServerModel:
    meta = entry.get("meta") if isinstance(entry.get("meta"), Mapping) else {}
    context = _first_count(entry.get("max_model_len"), entry.get("context_length"), entry.get("loaded_context_length"), meta.get("n_ctx"))
    trained = _first_count(meta.get("n_ctx_train"), entry.get("max_context_length"), context)
    capabilities = entry.get("capabilities", capability_list)
    reads_images: bool | None = None
    if isinstance(capabilities, list):
        reads_images = any(item in ("vision", "multimodal") for item in capabilities)
    elif entry.get("type") in ("vlm", "llm"):  # LM Studio
        reads_images = entry.get("type") == "vlm"
    return ServerModel(entry["id"], context, trained, reads_images)


def _ollama_style_capabilities(document: object) -> dict[str, object]:
    """llama-server also lists its models in Ollama's form, where it says what they can do."""
    listed = document.get("models") if isinstance(document, Mapping) else None
    found: dict[str, object] = {}
    for entry in listed[:MAX_MODELS] if isinstance(listed, list) else ():
        if isinstance(entry, Mapping):
            for key in ("model", "name"):
                if isinstance(entry.get(key), str):
                    found[entry[key]] = entry.get("capabilities")
    return found


def _first_count(*values: object) -> int:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 31:
            return value
    return 0


def _tls_cause(error: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = error
    for _ in range(8):  # the chain is short; a cycle must not hang
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, Mapping) else inner
        if isinstance(message, str):
            return message
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
    return body if isinstance(body, str) else ""


def _server_text(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_SERVER_TEXT else line[: MAX_SERVER_TEXT - 1] + "…"


def _not_an_api_text(connection: ServerConnection) -> str:
    return f"{connection.name} does not answer as an OpenAI-compatible API at {connection.api_base}: check the address (it usually ends in /v1)."
