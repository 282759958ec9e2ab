"""The MCP servers while the app runs: started when first needed, stopped with the app.

The official ``mcp`` SDK is asynchronous, so every server lives on one asyncio event loop in
its own thread ("mcp-servers"). Each server is one task that owns its connection from start to
end (the SDK's transports must be entered and left in the same task): it starts the program (or
reaches the address), initialises the session, lists the tools, reports READY, and then waits
to be stopped. Calls come from other threads as coroutines on that loop, each with its own
timeout; cancelling the returned future cancels the call.

A server is untrusted: it may never answer (the start and every call are timed), crash (its
standard error is kept and shown), or describe tools without bound (lists and texts are cut).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.core.tools.mcp_config import ServerConfig
from app.core.tools.tool_catalog import MAX_DESCRIPTION_CHARACTERS, ToolDefinition, ToolOutput

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0  # to start, initialise and list tools (npx may first download a package)
STOP_TIMEOUT_S = 5.0
MAX_TOOLS_PER_SERVER = 128
MAX_SCHEMA_CHARACTERS = 20_000  # of one tool's parameter schema, as JSON
MAX_STDERR_CHARACTERS = 4_000  # the end of a failed server's standard error, as shown


class ServerState(StrEnum):
    STOPPED = "stopped"  # not started yet, or stopped
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"  # could not start, or died; ``message`` and ``stderr`` say why


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: ServerState = ServerState.STOPPED
    message: str = ""
    stderr: str = ""
    tools: tuple[ToolDefinition, ...] = ()


class ToolCallTimeout(Exception):
    """The call ran past its timeout (it was cancelled)."""


class McpServers:
    """Runs MCP servers; ``on_status`` hears every change of a server's status (on the loop's
    thread: hand it on, never block)."""

    def __init__(self, on_status: Callable[[ServerStatus], None], *, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self._on_status = on_status
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._statuses: dict[str, ServerStatus] = {}
        self._running: dict[str, _Running] = {}  # loop-thread state, by server name

    def status(self, name: str) -> ServerStatus:
        with self._lock:
            return self._statuses.get(name, ServerStatus(name))

    def start(self, config: ServerConfig) -> concurrent.futures.Future[ServerStatus]:
        """Starts ``config`` unless it runs already; the future gives its status once it is
        READY or FAILED."""
        return asyncio.run_coroutine_threadsafe(self._start(config), self._event_loop())

    def restart(self, config: ServerConfig) -> concurrent.futures.Future[ServerStatus]:
        """Stops ``config``'s server if it runs, then starts it afresh (a new process)."""

        async def restart() -> ServerStatus:
            await self._stop(config.name)
            return await self._start(config)

        return asyncio.run_coroutine_threadsafe(restart(), self._event_loop())

    def stop(self, name: str) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(self._stop(name), self._event_loop())

    def call(
        self, server: str, tool: str, arguments: Mapping[str, Any], timeout_s: float
    ) -> concurrent.futures.Future[ToolOutput]:
        """Calls ``tool`` of the READY ``server``. The future raises ``ToolCallTimeout`` after
        ``timeout_s``, and ``ConnectionError`` when the server is not running or died (its status
        then says why); ``future.cancel()`` cancels the call."""
        return asyncio.run_coroutine_threadsafe(self._call(server, tool, dict(arguments), timeout_s), self._event_loop())

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stops every server and the loop; harmless twice."""
        with self._lock:
            loop, thread, self._loop = self._loop, self._thread, None
        if loop is None:
            return
        stopping = asyncio.run_coroutine_threadsafe(self._stop_all(), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            stopping.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    # ------------------------------------------------------------------------- loop thread

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="mcp-servers", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _publish(self, status: ServerStatus) -> None:
        with self._lock:
            self._statuses[status.name] = status
        try:
            self._on_status(status)
        except Exception:
            logger.exception("A server status listener failed")

    async def _start(self, config: ServerConfig) -> ServerStatus:
        running = self._running.get(config.name)
        if running is not None and running.stop_requested.is_set():
            await self._stop(config.name)  # a stopping server ends before it starts again
            running = None
        if running is None or running.task.done():
            running = _Running(config)
            self._running[config.name] = running
            running.task = asyncio.create_task(self._serve(running), name=f"mcp {config.name}")
        await asyncio.shield(running.settled)
        return self.status(config.name)

    async def _serve(self, running: _Running) -> None:
        config = running.config
        self._publish(ServerStatus(config.name, ServerState.STARTING))
        errors = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        failure = ""
        try:
            async with contextlib.AsyncExitStack() as stack:
                # asyncio.timeout, not wait_for: wait_for runs its coroutine as another task,
                # and the SDK's transports must be left in the task that entered them.
                async with asyncio.timeout(self._start_timeout_s):
                    session = await self._connect(stack, config, errors)
                    tools = await _list_tools(session, config.name)
                running.session = session
                self._publish(ServerStatus(config.name, ServerState.READY, tools=tools))
                _settle(running)
                await running.stop_requested.wait()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            failure = f"It did not answer within {self._start_timeout_s:g} seconds of starting."
        except BaseException as error:  # noqa: BLE001 (a server may fail in any way; report it)
            failure = _failure_message(error)
            if running.session is None and _connection_closed(error):
                failure = "The program ended before it finished starting."
        finally:
            running.session = None
            if running.failure:  # it died during a call: the call's error said so already
                failure = failure or running.failure
            status = (
                ServerStatus(config.name, ServerState.FAILED, failure, _tail(errors))
                if failure else ServerStatus(config.name, ServerState.STOPPED)
            )
            errors.close()
            self._publish(status)
            _settle(running)

    async def _connect(self, stack: contextlib.AsyncExitStack, config: ServerConfig, errors):
        from mcp import ClientSession  # the SDK loads only when a server is first used

        if config.transport == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client

            parameters = StdioServerParameters(
                command=config.command, args=list(config.args), env=dict(config.env) or None, cwd=config.cwd or None
            )
            read, write = await stack.enter_async_context(stdio_client(parameters, errlog=errors))
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            client = await stack.enter_async_context(
                httpx2.AsyncClient(headers=dict(config.headers), timeout=httpx2.Timeout(30.0, read=300.0))
            )
            read, write = await stack.enter_async_context(streamable_http_client(config.url, http_client=client))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        return session

    async def _call(self, server: str, tool: str, arguments: dict[str, Any], timeout_s: float) -> ToolOutput:
        running = self._running.get(server)
        if running is None or running.session is None:
            raise ConnectionError(f"The server {server!r} is not running.")
        try:
            async with asyncio.timeout(timeout_s):
                result = await running.session.call_tool(tool, arguments)
        except TimeoutError:
            raise ToolCallTimeout(f"The tool did not answer within {timeout_s:g} seconds.") from None
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if _connection_closed(error):  # the server died mid-call
                running.failure = f"It stopped while running {tool!r}."
                running.stop_requested.set()
                # Its status (failed, with its standard error) is final before the caller hears.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(running.task), STOP_TIMEOUT_S)
                raise ConnectionError(f"The server {server!r} stopped while running the tool.") from None
            return ToolOutput(f"The tool failed: {_failure_message(error)}", is_error=True)
        return _output(result)

    async def _stop(self, name: str) -> None:
        running = self._running.get(name)
        if running is None or running.task is None:
            return
        running.stop_requested.set()
        try:
            await asyncio.wait_for(asyncio.shield(running.task), STOP_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            running.task.cancel()
        except Exception:
            logger.exception("Server %s failed while stopping", name)
        if self._running.get(name) is running:  # kept until it ended, so shutting down waits for it
            del self._running[name]

    async def _stop_all(self) -> None:
        await asyncio.gather(*(self._stop(name) for name in list(self._running)), return_exceptions=True)


@dataclass(eq=False)
class _Running:
    config: ServerConfig
    task: asyncio.Task | None = None
    session: Any = None  # the SDK's ClientSession while READY
    failure: str = ""
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _settle(running: _Running) -> None:
    if not running.settled.done():
        running.settled.set_result(None)


async def _list_tools(session, server: str) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    cursor = None
    while len(tools) < MAX_TOOLS_PER_SERVER:
        from mcp.types import PaginatedRequestParams

        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        for tool in page.tools:
            schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
            if len(json.dumps(schema, default=str)) > MAX_SCHEMA_CHARACTERS:
                logger.warning("Server %s: tool %s has an oversized schema; left out", server, tool.name)
                continue
            description = (tool.description or tool.title or "")[:MAX_DESCRIPTION_CHARACTERS]
            tools.append(ToolDefinition(server, tool.name, description, schema))
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools[:MAX_TOOLS_PER_SERVER])


def _output(result) -> ToolOutput:
    """A ``CallToolResult`` as text: text blocks as they are, other blocks named, structured
    content as JSON when there is no text."""
    pieces: list[str] = []
    for block in getattr(result, "content", None) or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            pieces.append(block.text)
        elif kind == "resource" and getattr(block.resource, "text", None) is not None:
            pieces.append(block.resource.text)
        elif kind in ("image", "audio"):
            pieces.append(f"[{kind} ({getattr(block, 'mime_type', '') or 'unknown type'}): not shown to the model]")
        elif kind == "resource_link":
            pieces.append(f"[resource: {getattr(block, 'uri', '')}]")
    structured = getattr(result, "structured_content", None)
    if not pieces and structured is not None:
        pieces.append(json.dumps(structured, ensure_ascii=False))
    return ToolOutput("\n".join(pieces), is_error=bool(getattr(result, "is_error", False)))


def _connection_closed(error: BaseException) -> bool:
    """Whether ``error`` (or one inside an exception group) is the SDK saying the connection
    ended: the server's process exited or its address stopped answering."""
    from mcp.shared.exceptions import MCPError
    from mcp.types import CONNECTION_CLOSED

    if isinstance(error, BaseExceptionGroup):
        return any(_connection_closed(inner) for inner in error.exceptions)
    return isinstance(error, MCPError) and error.code == CONNECTION_CLOSED


def _failure_message(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_failure_message(inner) for inner in error.exceptions)
    if isinstance(error, FileNotFoundError):
        return f"The program was not found: {error.filename or error}."
    if isinstance(error, PermissionError):
        return f"The program may not be run: {error}."
    return str(error) or type(error).__name__


def _tail(errors) -> str:
    try:
        errors.flush()
        errors.seek(0)
        text = errors.read()
    except (OSError, ValueError):
        return ""
    return text[-MAX_STDERR_CHARACTERS:].strip()
