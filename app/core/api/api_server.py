"""The local OpenAI-compatible HTTP API: Starlette routes served by uvicorn, on the engine host.

The window's "Local API server" and the headless ``qwen-local-chat serve`` both run this, on the
same engine host as everything else: a request is one more client of the chat path, queued
after a person's own turn (``api_workload``).

Safe by default:
* it binds 127.0.0.1; another address needs an API key (``ApiServerConfig.problem``);
* on loopback it answers only requests whose ``Host`` is a loopback name, so a web page cannot
  reach it through a DNS name rebound to 127.0.0.1;
* a request from a web page (an ``Origin`` header) is refused unless the user allowed that
  origin, and only allowed origins get CORS headers: no page can drive the model unasked;
* bodies are bounded, images are never fetched, the key is compared in constant time and never
  logged; API traffic is not written into the chat history (``request_log`` keeps only counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.api.api_errors import ApiError, invalid, unavailable
from app.core.api.api_workload import ApiWorkload, Completion, QueueFullError
from app.core.api.chat_request import ChatRequest, parse_chat_request
from app.core.api.chat_response import ChunkWriter, StopSequences, completion_body, completion_id, usage
from app.core.api.request_log import ApiRequestLog, ApiRequestRecord
from app.core.domain.generation import ChatMessage, GenerationRequest, GenerationResult, ModelFacts, StopReason
from app.core.engines.engine_events import GenerationFailed, GenerationFinished, GenerationStarted, TextGenerated
from app.core.engines.engine_host import EngineHost

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8080
MAX_BODY_BYTES = 64 * 1024 * 1024  # a long chat is well under 1 MiB; camera photos as data: URLs need more
DEFAULT_QUEUE_LIMIT = 8
NO_MODEL_RETRY_SECONDS = 10
QUEUE_FULL_RETRY_SECONDS = 2
START_SECONDS = 10.0
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]+")  # scheme://host[:port], as browsers send Origin


@dataclass(frozen=True)
class ApiServerConfig:
    """Where and for whom the API listens. ``port`` 0 picks a free one."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = ""  # empty: no key asked (allowed on loopback only)
    allowed_origins: tuple[str, ...] = ()  # web pages allowed to call it ("https://example.org")
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def loopback_only(self) -> bool:
        return _is_loopback(self.host)

    def problem(self) -> str | None:
        """Why this configuration must not run, or None."""
        if not 0 <= self.port <= 65535:
            return f"The port must be a number from 1 to 65535, not {self.port}."
        if not self.loopback_only and not self.api_key:
            return "Serving other computers needs an API key: without one anybody on the network could use the model."
        for origin in self.allowed_origins:
            if not _ORIGIN.fullmatch(origin):
                return (
                    f"“{origin}” is not a web page's origin: write it as the browser sends it, "
                    "scheme and host (and port, if any), such as https://notes.example.org."
                )
        return None


def base_url(host: str, port: int) -> str:
    """The address clients give as their base URL for a server at ``host``:``port``."""
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


class ApiServerError(Exception):
    """The server could not start; the message says why, for the user."""


# ---------------------------------------------------------------------------------- the guard


class RequestGuard:
    """The checks every request passes before any route sees it (ASGI middleware)."""

    def __init__(self, app: ASGIApp, config: ApiServerConfig, log: ApiRequestLog) -> None:
        self._app = app
        self._config = config
        self._log = log
        self._key = config.api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        problem = self._problem(scope, Headers(scope=scope))
        if problem is not None:
            # Logged: a web page or another computer trying the API is worth the user's notice.
            self._log.add(_RecordDraft(Request(scope), time.perf_counter()).finish(problem.status, problem=problem.message))
            await _error_response(problem)(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _problem(self, scope: Scope, headers: Headers) -> ApiError | None:
        if self._config.loopback_only and not _is_loopback_host(headers.get("host", "")):
            return ApiError(
                403, "This server answers only requests addressed to this computer (127.0.0.1 or localhost).",
                kind="permission_error", code="foreign_host",
            )
        origin = headers.get("origin")
        if origin is not None and origin not in self._config.allowed_origins:
            return ApiError(
                403, f"Requests from web pages ({origin}) are refused unless that origin is allowed "
                "in the server's settings.",
                kind="permission_error", code="foreign_origin",
            )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._config.max_body_bytes):
            return _too_large(self._config.max_body_bytes)
        preflight = scope["method"] == "OPTIONS" and origin is not None
        if self._key and not preflight and scope["path"] != "/health" and not self._key_matches(headers):
            return ApiError(
                401, "A valid API key is required (Authorization: Bearer …).",
                kind="authentication_error", code="invalid_api_key",
            )
        return None

    def _key_matches(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._key)


def _is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this computer by a loopback name or address."""
    if host.startswith("["):  # [::1]:8080
        name = host[1:].partition("]")[0]
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return _is_loopback(name)


def _is_loopback(name: str) -> bool:
    """Whether ``name`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than {limit // (1024 * 1024)} MiB.", code="body_too_large")


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


# ---------------------------------------------------------------------------------- the routes


class _Routes:
    """The endpoints, over one engine host and one request log."""

    def __init__(self, workload: ApiWorkload, log: ApiRequestLog, config: ApiServerConfig) -> None:
        self._workload = workload
        self._host: EngineHost = workload.host
        self._log = log
        self._config = config

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok" if self._host.facts is not None else "no model loaded"})

    async def models(self, _request: Request) -> Response:
        facts = self._host.facts
        return JSONResponse({"object": "list", "data": [_model_object(facts)] if facts else []})

    async def model(self, request: Request) -> Response:
        facts = self._host.facts
        if facts is None or request.path_params["model"] != _model_id(facts):
            raise ApiError(404, f"The model {request.path_params['model']!r} is not loaded.", code="model_not_found")
        return JSONResponse(_model_object(facts))

    async def chat_completions(self, request: Request) -> Response:
        started = time.perf_counter()
        record = _RecordDraft(request, started)
        try:
            body = await _read_body(request, self._config.max_body_bytes)
            # Off the event loop: decoding and checking a few camera photos takes a while.
            chat = await run_in_threadpool(parse_chat_request, body)
            facts = self._host.facts
            if facts is None:
                raise unavailable(
                    "No model is loaded. Load one in the app (or start `qwen-local-chat serve --model …`).",
                    retry_after_seconds=NO_MODEL_RETRY_SECONDS, code="model_not_loaded",
                )
            if not facts.reads_images and any(message.images for message in chat.messages):
                raise invalid(
                    "The loaded model cannot read images: its image support file (mmproj) is not loaded. "
                    "Pair it with the model in the app, or start `qwen-local-chat serve --mmproj …`.",
                    param="messages", code="images_unsupported",
                )
            generation = chat.generation_request(facts)
            try:
                completion = self._workload.submit(generation, asyncio.get_running_loop())
            except QueueFullError:
                raise unavailable(
                    f"{self._config.queue_limit} requests are already waiting for the model; try again shortly.",
                    retry_after_seconds=QUEUE_FULL_RETRY_SECONDS, code="queue_full",
                ) from None
            except RuntimeError:
                raise unavailable("The model is shutting down.", retry_after_seconds=NO_MODEL_RETRY_SECONDS, code="shutting_down") from None
        except ApiError as error:
            self._log.add(record.finish(error.status, problem=error.message))
            raise
        reply = _Reply(completion, chat, _model_id(facts), request.receive)
        try:
            first = await reply.first_event()
        except BaseException:
            reply.close()
            raise
        if isinstance(first, GenerationFailed):
            reply.close()
            if first.request_problem:
                error = ApiError(400, first.message, code=first.request_problem)
            else:
                error = ApiError(500, first.message, kind="server_error")
            self._log.add(record.finish(error.status, problem=error.message))
            raise error
        if chat.stream:
            return StreamingResponse(
                self._stream(reply, first, record),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            body, result = await reply.whole(first)
        finally:
            reply.close()
        self._finish(reply, record, 200, result)
        return JSONResponse(body)

    async def _stream(self, reply: _Reply, first, record: _RecordDraft) -> AsyncIterator[str]:
        result = None
        try:
            async for chunk in reply.chunks(first):
                if isinstance(chunk, GenerationResult):
                    result = chunk
                    # Before the client hears the end: the follow-up it may send at once then
                    # finds the next turn's preparation queued ahead of it.
                    self._finish(reply, record, 200, result)
                    continue
                yield f"data: {_compact_json(chunk)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            reply.close()
            if result is None and reply.failure is None:
                # The client went away and the response was abandoned mid-stream; the reply ends
                # (cancelled) a moment later, and is logged then, with what it had cost.
                asyncio.get_running_loop().create_task(self._finish_abandoned(reply, record))
            elif result is None:
                self._finish(reply, record, 200, None)

    async def _finish_abandoned(self, reply: _Reply, record: _RecordDraft) -> None:
        while True:
            event = await reply.completion.next_event()
            if isinstance(event, (GenerationFinished, GenerationFailed)):
                break
        result = event.result if isinstance(event, GenerationFinished) else None
        self._finish(reply, record, 499, result)

    def _finish(self, reply: _Reply, record: _RecordDraft, status: int, result: GenerationResult | None) -> None:
        problem = reply.failure or ""
        if result is not None and result.stats.stop_reason is StopReason.CANCELLED and not reply.stops.stopped:
            status, problem = 499, "cancelled: the client went away or the server stopped"  # 499: nginx's name
        if result is not None and (result.stats.stop_reason is not StopReason.CANCELLED or reply.stops.stopped):
            self._prepare_follow_up(reply, result)
        self._log.add(record.finish(status, result=result, problem=problem, streamed=reply.chat.stream))

    def _prepare_follow_up(self, reply: _Reply, result: GenerationResult) -> None:
        """API clients send the whole conversation again with the next question: evaluating the
        reply now, while the client reads it, leaves the next request only its new message."""
        request = reply.completion.request
        answer = ChatMessage("assistant", reply.stops.cut(result.answer), result.reasoning, result.tool_calls)
        follow_up = GenerationRequest(
            (*request.messages, answer), request.enable_thinking, request.sampling, tools=request.tools
        )
        with contextlib.suppress(RuntimeError):  # shutting down: nothing to prepare for
            self._host.prepare_next_turn(follow_up)


class _Reply:
    """One reply being answered: its events, the stop sequences, the client's disconnection."""

    def __init__(self, completion: Completion, chat: ChatRequest, model: str, receive: Receive) -> None:
        self.completion = completion
        self.chat = chat
        self.model = model
        self.stops = StopSequences(chat.stop)
        self.failure: str | None = None
        self._identifier = completion_id()
        self._disconnect = asyncio.ensure_future(_client_left(receive))
        self._disconnect.add_done_callback(lambda _task: completion.cancel())

    async def first_event(self):
        """The first event that says more than "started": the prompt's progress, text, or an
        end (a prompt too long for the context fails here, before any response is sent)."""
        while True:
            event = await self.completion.next_event()
            if not isinstance(event, GenerationStarted):
                return event

    async def events(self, first):
        event = first
        while True:
            if isinstance(event, TextGenerated):
                answer = self.stops.feed(event.answer)
                if self.stops.stopped:
                    self.completion.cancel()
                yield event.reasoning, answer
            elif isinstance(event, GenerationFinished):
                rest = self.stops.finish()
                if rest:
                    yield "", rest
                yield event.result
                return
            elif isinstance(event, GenerationFailed):
                self.failure = event.message
                return
            event = await self.completion.next_event()

    async def whole(self, first) -> tuple[dict, GenerationResult | None]:
        result = None
        async for item in self.events(first):
            if isinstance(item, GenerationResult):
                result = item
        if result is None:
            raise ApiError(500, self.failure or "The reply failed.", kind="server_error")
        body = completion_body(
            self._identifier, self.model, result.reasoning, self.stops.cut(result.answer), result,
            stopped_by_sequence=self.stops.stopped,
        )
        return body, result

    async def chunks(self, first):
        writer = ChunkWriter(self._identifier, self.model, include_usage=self.chat.include_usage)
        yield writer.delta({"role": "assistant", "content": ""})
        async for item in self.events(first):
            if isinstance(item, GenerationResult):
                yield item
                for chunk in writer.ending(item, stopped_by_sequence=self.stops.stopped):
                    yield chunk
                return
            reasoning, answer = item
            if reasoning:
                yield writer.delta({"reasoning_content": reasoning})
            if answer:
                yield writer.delta({"content": answer})
        if self.failure is not None:
            yield ApiError(500, self.failure, kind="server_error").body()

    def close(self) -> None:
        """The response is done (or abandoned): a reply still being written is cancelled."""
        self._disconnect.cancel()
        self.completion.cancel()


def _compact_json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _client_left(receive: Receive) -> None:
    """Returns when the client disconnects (the request body has been read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it grows past ``limit`` bytes, whatever the headers said."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _RecordDraft:
    def __init__(self, request: Request, started: float) -> None:
        client = request.client
        self._client = f"{client.host}:{client.port}" if client else ""
        self._method, self._path = request.method, request.url.path
        self._started = started

    def finish(self, status: int, *, result: GenerationResult | None = None, problem: str = "", streamed: bool = False) -> ApiRequestRecord:
        counts = usage(result) if result is not None else None
        return ApiRequestRecord(
            finished_at=time.time(),
            client=self._client,
            method=self._method,
            path=self._path,
            status=status,
            duration_s=time.perf_counter() - self._started,
            streamed=streamed,
            prompt_tokens=counts["prompt_tokens"] if counts else 0,
            cached_tokens=counts["prompt_tokens_details"]["cached_tokens"] if counts else 0,
            completion_tokens=counts["completion_tokens"] if counts else 0,
            problem=problem,
        )


def _model_id(facts: ModelFacts) -> str:
    return facts.remote.model_id if facts.remote is not None else facts.path.stem


def _model_object(facts: ModelFacts) -> dict:
    """OpenAI's model object, with what a model server's client wants to know: the context
    (vLLM's ``max_model_len``) and whether it reads images (llama-server's capabilities)."""
    try:
        created = int(facts.path.stat().st_mtime) if facts.path is not None else 0
    except OSError:
        created = 0
    capabilities = ["completion", "multimodal"] if facts.reads_images else ["completion"]
    return {
        "id": _model_id(facts), "object": "model", "created": created, "owned_by": "local",
        "max_model_len": facts.context_size, "capabilities": capabilities,
    }


async def _api_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return _error_response(error)


async def _http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = "not_found" if error.status_code == 404 else None
    message = "There is no such endpoint." if error.status_code == 404 else str(error.detail)
    return _error_response(ApiError(error.status_code, message, code=code))


def build_asgi_app(workload: ApiWorkload, log: ApiRequestLog, config: ApiServerConfig) -> Starlette:
    """The API as an ASGI application (what uvicorn serves)."""
    routes = _Routes(workload, log, config)
    return Starlette(
        routes=[
            Route("/health", routes.health),
            Route("/v1/models", routes.models),
            Route("/v1/models/{model:path}", routes.model),
            Route("/v1/chat/completions", routes.chat_completions, methods=["POST"]),
        ],
        middleware=[
            Middleware(RequestGuard, config=config, log=log),
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            ),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )


# ---------------------------------------------------------------------------------- the server


class _Server(uvicorn.Server):
    """uvicorn's server, telling when it listens."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


class ApiServer:
    """The API on one address, over ``host``; ``start`` runs it on a thread of its own (the
    app), ``run`` on the calling thread until Ctrl+C or SIGTERM (``serve``)."""

    def __init__(
        self,
        host: EngineHost,
        config: ApiServerConfig,
        log: ApiRequestLog | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        """``on_failure(message)`` hears of a server that stopped by itself after ``start``."""
        problem = config.problem()
        if problem is not None:
            raise ApiServerError(problem)
        self.config = config
        self.log = log or ApiRequestLog()
        self.workload = ApiWorkload(host, config.queue_limit)
        self._socket: socket.socket | None = None
        self._address: tuple[str, int] | None = None  # where it listens (the port 0 chose)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._on_failure = on_failure

    @property
    def thread(self) -> threading.Thread | None:
        """The thread ``start`` serves on (for measurements); None before it, or with ``run``."""
        return self._thread

    @property
    def url(self) -> str:
        """The API's base URL, for clients (``http://127.0.0.1:8080/v1``)."""
        host, port = self._address or (self.config.host, self.config.port)
        return base_url("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)

    def start(self) -> None:
        """Listens and serves on a background thread; raises ``ApiServerError`` (the port is
        taken, the address is not this computer's…) with nothing left running."""
        self._bind()
        self._thread = threading.Thread(target=self._run_loop, name="local-api", daemon=True)
        self._thread.start()
        if not self._started.wait(START_SECONDS) or self._server is None or not self._server.started:
            self.stop()
            raise ApiServerError("The API server did not start.")

    def run(self, on_ready: Callable[[], None]) -> None:
        """Serves on this (the main) thread until SIGINT or SIGTERM; ``on_ready`` once it listens."""
        self._bind()
        server = self._make_server(on_ready)
        try:
            asyncio.run(server.serve(sockets=[self._socket]))
        finally:
            self._close_socket()

    def stop(self, timeout: float = 5.0) -> None:
        """Ends every API reply (cancelled), closes the connections and the socket."""
        self.workload.cancel_all()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_socket()

    def _bind(self) -> None:
        config = self.config
        try:
            family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: never share a port with another program
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((config.host, config.port))
        except OSError as error:
            with contextlib.suppress(UnboundLocalError):
                sock.close()
            raise ApiServerError(_bind_problem(config, error)) from None
        self._socket = sock
        self._address = sock.getsockname()[:2]

    def _make_server(self, on_ready: Callable[[], None]) -> _Server:
        app = build_asgi_app(self.workload, self.log, self.config)
        config = uvicorn.Config(
            app, http="h11", loop="asyncio", ws="none", lifespan="off", log_config=None,
            access_log=False, server_header=False, timeout_graceful_shutdown=2,
        )
        self._server = _Server(config, on_ready)
        return self._server

    def _run_loop(self) -> None:
        server = self._make_server(self._started.set)
        try:
            asyncio.run(server.serve(sockets=[self._socket]))
        except Exception as error:  # noqa: BLE001 - the window must stay; the status says the API stopped
            logger.exception("The local API server stopped")
            if self._on_failure is not None and server.started:
                self._on_failure(f"The local API server stopped unexpectedly: {error}")
        finally:
            self._started.set()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()


def _bind_problem(config: ApiServerConfig, error: OSError) -> str:
    if error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return f"Port {config.port} is already used by another program: choose another port."
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(error, socket.gaierror):
        return f"{config.host} is not an address of this computer."
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"This system does not let the app listen on port {config.port}: choose one above 1023."
    return f"The API server could not listen on {config.host}:{config.port}: {error.strerror or error}."
