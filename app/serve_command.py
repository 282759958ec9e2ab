"""``qwen-local-chat serve``: the local OpenAI-compatible API without a window.

For scripts, CI and a home server that laptops connect to. It builds the same engine host and
model gate as the app (``app.composition``), loads one model, serves it until Ctrl+C or SIGTERM,
then stops cleanly: open replies are cancelled, the model is freed, the exit status is 0. Every
failure a user can cause (a missing, damaged or non-GGUF file, a model too large for the memory,
a port in use) ends with a one-line reason on stderr and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from app.composition import STATE_WRITE_SECONDS, start_engine_host
from app.core.engines.llama.state_files import StateFiles
from app.core.api.api_server import DEFAULT_PORT, DEFAULT_QUEUE_LIMIT, ApiServer, ApiServerConfig, ApiServerError
from app.core.api.request_log import ApiRequestRecord
from app.core.domain.model_files import gguf_file_problem
from app.core.engines.engine_events import ModelChecking, ModelEvent, ModelLoaded, ModelLoadFailed
from app.core.models.projector_pairing import find_projector
from app.core.profile.app_paths import AppPaths
from app.core.profile.settings import load_settings

API_KEY_VARIABLE = "QWEN_LOCAL_CHAT_API_KEY"  # a key given here stays out of the process list
ENGINE_STOP_SECONDS = 3.0
PROGRAM = "qwen-local-chat serve"


class _StopRequested(Exception):
    """Ctrl+C or SIGTERM arrived before the server was listening."""


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = ApiServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get(API_KEY_VARIABLE, ""),
        allowed_origins=tuple(origin.rstrip("/") for origin in args.allow_origin),
        queue_limit=args.queue_limit,
    )
    problem = config.problem() or gguf_file_problem(args.model)
    if problem is None and args.mmproj is not None:
        problem = gguf_file_problem(args.mmproj)
    if problem is not None:
        return _fail(problem)
    paths = AppPaths.under(args.profile) if args.profile else AppPaths.default()
    settings = load_settings(paths.settings_file)
    # As in the app: the user's pairing, else the matching one beside the model.
    projector = args.mmproj or find_projector(args.model, settings.projector_pairings)
    serving = threading.Event()

    def request_stop(_signal_number, _frame) -> None:
        # Once listening, uvicorn handles the signal itself and passes it on here after it has
        # stopped serving: by then there is nothing left to interrupt.
        if not serving.is_set():
            raise _StopRequested

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    # The API's conversations resume from their saved states after a restart, as the window's do.
    saved_states = StateFiles(paths.saved_states, lambda: settings.saved_states_budget_bytes)
    host = start_engine_host(paths.model_checks, saved_states)
    try:
        load_settings_ = settings.load_settings(args.context or settings.context_size, projector=projector)
        facts = _load(host, args.model, load_settings_)
        if isinstance(facts, str):
            return _fail(facts)
        server = ApiServer(host, config)
        server.log.subscribe(_print_record)
        print(f"Loaded {facts.name} ({facts.context_size:,}-token context, {facts.backend}).", flush=True)
        print(
            f"Reads images with {facts.projector.name}." if facts.reads_images
            else "Text only: no image support file (mmproj) beside the model; give one with --mmproj.",
            flush=True,
        )
        # uvicorn takes Ctrl+C and SIGTERM over while it serves, and hands them back after.
        server.run(lambda: _print_ready(server, config, serving))
    except _StopRequested:
        print("Stopped before the server was ready.", file=sys.stderr)
        return 130
    except ApiServerError as error:
        return _fail(str(error))
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        host.shutdown(timeout=ENGINE_STOP_SECONDS)
        saved_states.wait_until_written(STATE_WRITE_SECONDS)
    print("Stopped.", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Serve a Qwen3.5 GGUF model through an OpenAI-compatible API, without a window.",
        epilog=f"The API key may also be given in the {API_KEY_VARIABLE} environment variable.",
    )
    parser.add_argument("--model", type=Path, required=True, help="the GGUF model file to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument(
        "--mmproj", type=Path, metavar="PATH",
        help="the vision projector (mmproj-*.gguf) that lets the model read images (default: the matching one beside the model, if any)",
    )
    parser.add_argument("--context", type=_positive, help="context size in tokens (default: as in the app's settings)")
    parser.add_argument("--api-key", help="require this key (Authorization: Bearer KEY); needed with any --host other than loopback")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN", help="let web pages from ORIGIN call the API (repeatable)")
    parser.add_argument("--queue-limit", type=_positive, default=DEFAULT_QUEUE_LIMIT, help=f"requests that may wait for the model before new ones get 503 (default {DEFAULT_QUEUE_LIMIT})")
    parser.add_argument("--profile", type=Path, help="keep settings and model checks in this folder instead of the app's")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _load(host, path: Path, load_settings_):
    """The loaded model's facts, or the reason it could not be loaded."""
    outcome: list[ModelLoaded | ModelLoadFailed] = []
    finished = threading.Event()
    told_checking = threading.Event()

    def on_event(event: ModelEvent) -> None:
        if isinstance(event, ModelChecking) and not told_checking.is_set():
            told_checking.set()
            print(f"Checking {path.name} before its first use…", file=sys.stderr, flush=True)
        elif isinstance(event, (ModelLoaded, ModelLoadFailed)):
            outcome.append(event)
            finished.set()

    host.subscribe(on_event)
    host.load_model(path, load_settings_)
    finished.wait()
    event = outcome[0]
    if isinstance(event, ModelLoadFailed):
        return event.message + (" Try a smaller --context." if event.shortfall is not None else "")
    return event.facts


def _print_ready(server: ApiServer, config: ApiServerConfig, serving: threading.Event) -> None:
    serving.set()
    key = "; requests need the API key" if config.api_key else ""
    print(f"Serving the OpenAI-compatible API at {server.url}{key}. Ctrl+C stops.", flush=True)


def _print_record(record: ApiRequestRecord) -> None:
    print(f"{time.strftime('%H:%M:%S', time.localtime(record.finished_at))} {record.client} {record.summary()}", flush=True)


def _fail(message: str) -> int:
    print(f"{PROGRAM}: {' '.join(message.split())}", file=sys.stderr)
    return 1
