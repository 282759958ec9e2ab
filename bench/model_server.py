"""The model-server engine's costs: a model served by ``qwen-local-chat serve`` in a process of
its own (as a desktop or GPU box would serve it), read by the app's remote engine.

``python -m bench.model_server MODEL.gguf`` prints the figures; ``run_benchmarks`` includes them
as ``model_server``. Both clients below run in this process, against the same server, in
alternating rounds (raw, engine, raw: the engine against the mean of the two around it):

* **Generation as the remote engine receives it vs the lightest client**: tokens a second from
  the first streamed text to the last, for the same request (thinking off), through the app's
  engine (the ``openai`` client, the reply splitters, the cancel watch) and through raw HTTP
  lines with no parsing at all;
* **Time to the first text**, the same two ways: what the engine's request and stream setup add;
* **Processor time of this process per token**, the same two ways: the client's own cost, which
  on this 2-core machine is taken from the server's computing (out there it has a machine of
  its own);
* **Stop**: the time from setting a streaming reply's cancel flag to its end, connection closed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx

from app.core.domain.generation import ChatMessage, LoadSettings, RemoteModel, SamplingSettings, StopReason
from app.core.engines.remote.remote_engine import RemoteEngine
from app.core.engines.remote.server_connection import ServerConnection, list_models
from bench.speed import seconds

TIMEOUT_S = 600
_READY = re.compile(r"Serving the OpenAI-compatible API at (http://\S+/v1)")
_WORDS = ("river", "stone", "window", "garden", "letter", "morning", "bridge", "candle", "silver", "harbour")


@contextlib.contextmanager
def served(path: Path, context: int) -> Iterator[str]:
    """``qwen-local-chat serve`` with ``path`` in a child process; yields its API's URL."""
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--model", str(path), "--port", "0", "--profile", profile,
             "--context", str(context)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            for line in process.stdout:
                ready = _READY.search(line)
                if ready:
                    threading.Thread(target=process.stdout.read, daemon=True).start()
                    yield ready.group(1)
                    return
            raise RuntimeError(f"serve did not start with {path}")
        finally:
            process.terminate()
            process.wait(TIMEOUT_S)


class ModelServerBench:
    def __init__(self, url: str) -> None:
        self.url = url
        connection = ServerConnection("bench server", url)
        self.engine = RemoteEngine(lambda _name: connection)
        model = list_models(connection)[0].id
        self.engine.load(RemoteModel(connection.name, model), LoadSettings())

    def close(self) -> None:
        self.engine.unload()

    def streaming(self, *, rounds: int, tokens: int, rng: random.Random) -> dict:
        ratios, first_ratios, engine_rates, raw_rates, engine_firsts, raw_firsts = [], [], [], [], [], []
        engine_cpu, raw_cpu = [], []
        for _ in range(rounds):
            # A new question each time, so that none starts from the server's saved state of another.
            started = time.process_time()
            before = self._raw(_question(rng, 40), tokens)
            between = time.process_time()
            engine = self._engine(_question(rng, 40), tokens)
            engine_cpu.append(time.process_time() - between)
            raw_cpu.append(between - started)
            after = self._raw(_question(rng, 40), tokens)
            raw_rates += [before[0], after[0]]
            raw_firsts += [before[1], after[1]]
            engine_rates.append(engine[0])
            engine_firsts.append(engine[1])
            ratios.append(engine[0] / ((before[0] + after[0]) / 2))
            first_ratios.append(engine[1] / ((before[1] + after[1]) / 2))
        return {
            "tokens": tokens,
            "engine_tokens_per_second": statistics.median(engine_rates),
            "raw_client_tokens_per_second": statistics.median(raw_rates),
            "ratio_median_of_rounds": statistics.median(ratios),
            "ratios": ratios,
            "engine_first_text": seconds(engine_firsts),
            "raw_client_first_text": seconds(raw_firsts),
            "first_text_ratio_median_of_rounds": statistics.median(first_ratios),
            # What this process computes per token (the server is another): on a machine of its
            # own the client's cost is the whole of the difference between the two.
            "engine_cpu_ms_per_token": statistics.median(engine_cpu) * 1000 / tokens,
            "raw_client_cpu_ms_per_token": statistics.median(raw_cpu) * 1000 / tokens,
        }

    def stop(self, *, repeats: int, rng: random.Random) -> dict:
        """Seconds from the cancel flag to the end of a reply that would otherwise go on."""
        latencies = []
        for _ in range(repeats):
            cancel = threading.Event()
            set_at: list[float] = []
            pieces = 0

            def on_text(_reasoning: str, answer: str) -> None:
                nonlocal pieces
                pieces += bool(answer)
                if pieces == 8 and not cancel.is_set():
                    set_at.append(time.perf_counter())
                    cancel.set()

            result = self.engine.generate(
                [ChatMessage("user", _question(rng, 24))], enable_thinking=False, sampling=SamplingSettings(max_tokens=4096),
                cancel=cancel, on_text=on_text,
            )
            ended = time.perf_counter()
            if result.stats.stop_reason is not StopReason.CANCELLED:
                raise RuntimeError(f"the reply ended by itself ({result.stats.stop_reason}) before it was stopped")
            latencies.append(ended - set_at[0])
        return {"seconds": latencies, "median_seconds": statistics.median(latencies), "max_seconds": max(latencies)}

    def _engine(self, question: str, tokens: int) -> tuple[float, float]:
        times: list[float] = []
        started = time.perf_counter()
        self.engine.generate(
            [ChatMessage("user", question)], enable_thinking=False, sampling=SamplingSettings(max_tokens=tokens),
            cancel=threading.Event(), on_text=lambda _reasoning, answer: times.append(time.perf_counter()) if answer else None,
        )
        return (len(times) - 1) / (times[-1] - times[0]), times[0] - started

    def _raw(self, question: str, tokens: int) -> tuple[float, float]:
        body = {
            "model": "m", "max_tokens": tokens, "stream": True, "chat_template_kwargs": {"enable_thinking": False},
            "messages": [{"role": "user", "content": question}],
        }
        times = []
        started = time.perf_counter()
        with httpx.stream("POST", f"{self.url}/chat/completions", json=body, timeout=TIMEOUT_S) as response:
            for line in response.iter_lines():
                if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                    times.append(time.perf_counter())
        return (len(times) - 1) / (times[-1] - times[0]), times[0] - started


def _question(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def measure(path: Path, *, rounds: int = 7, tokens: int = 128, stops: int = 5, context: int = 8192, seed: int = 0) -> dict:
    rng = random.Random(seed)
    with served(path, context) as url:
        bench = ModelServerBench(url)
        try:
            results = {"streaming": bench.streaming(rounds=rounds, tokens=tokens, rng=rng)}
            results["stop"] = bench.stop(repeats=stops, rng=rng)
        finally:
            bench.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(measure(args.model, rounds=args.rounds), indent=2))


if __name__ == "__main__":
    main()
