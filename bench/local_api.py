"""The local API's costs: streaming through HTTP against the engine alone, follow-up turns, and
how fast a client that leaves frees the engine.

``python -m bench.local_api MODEL.gguf`` prints the figures; ``run_benchmarks`` includes them as
``local_api``. The engine host and the real uvicorn server on 127.0.0.1 run in this process; the
official ``openai`` client streams the chats, and a raw HTTP client in a process of its own
times the streaming speed.

* **Generation through the API vs the engine alone**: the same request (128 tokens, thinking
  off) as an engine-host request timed on its callback thread, and as a streamed API request
  timed by a client in another process, from the first text to the last; rounds of engine, API,
  engine, the API divided by the mean of the two around it.
* **Turn 10 vs turn 1**: a scripted chat resent whole each turn, as API clients do: 9 turns of
  ~100-token questions and ~330-token replies (~4,000 tokens of history), then a 10th question,
  against the same question as turn 1 of a new chat; time to the first streamed text, measured
  by the client, with ``cached_tokens`` of each turn. "Reading" clients wait for the engine to
  fall idle after each reply (as a person reads it: the server evaluates the reply for the next
  turn meanwhile); "immediate" ones send the next question at once.
* **Disconnect**: a client closes a streaming reply; the time until the engine takes new work.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai

from app.core.api.api_server import ApiServer, ApiServerConfig
from app.core.domain.generation import ChatMessage, GenerationRequest, LoadSettings, SamplingSettings
from app.core.engines.engine_events import GenerationFinished, ModelLoaded, TextGenerated
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.llama.llama_engine import LlamaEngine
from bench.speed import seconds, words_with_tokens

NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}
TIMEOUT_S = 600


class ApiBench:
    """One model on an engine host, served on a free port."""

    def __init__(self, path: Path) -> None:
        self.host = EngineHost(LlamaEngine)
        loaded = threading.Event()
        self.host.subscribe(lambda event: loaded.set() if isinstance(event, ModelLoaded) else None)
        self.host.load_model(path, LoadSettings())
        if not loaded.wait(TIMEOUT_S):
            raise RuntimeError(f"{path} did not load")
        self.server = ApiServer(self.host, ApiServerConfig(port=0))
        self.server.start()
        self.client = openai.OpenAI(base_url=self.server.url, api_key="bench", max_retries=0, timeout=TIMEOUT_S)

    def tokenize(self, text: str) -> list[int]:
        """On the engine thread, which owns the vocabulary (never during a timing)."""
        return self.host.call(lambda engine: engine.tokenize(text)).result(TIMEOUT_S)

    def close(self) -> None:
        self.server.stop()
        self.host.shutdown()

    # ------------------------------------------------------------------------------- figures

    def generation(self, *, rounds: int, tokens: int, rng: random.Random) -> dict:
        """Each round: the engine alone, the API, the engine again; the API against the mean of
        the two around it, and the two engine runs against each other (the A/A noise). Also
        the processor time the server's thread spends per token (its own clock, unaffected by
        what else runs)."""
        ratios, noise, engine_rates, api_rates, server_seconds = [], [], [], [], []
        server_clock = time.pthread_getcpuclockid(self.server.thread.ident)
        for _ in range(rounds):
            messages = [ChatMessage("user", words_with_tokens(self.tokenize, 48, rng))]
            before = self._engine_rate(messages, tokens)
            server_before = time.clock_gettime(server_clock)
            api = self._api_rate(messages, tokens)
            server_seconds.append(time.clock_gettime(server_clock) - server_before)
            after = self._engine_rate(messages, tokens)
            engine_rates += [before, after]
            api_rates.append(api)
            ratios.append(api / ((before + after) / 2))
            noise.append(after / before)
        return {
            "tokens": tokens,
            "engine_tokens_per_second": statistics.median(engine_rates),
            "api_tokens_per_second": statistics.median(api_rates),
            "ratio_median_of_rounds": statistics.median(ratios),
            "ratios": ratios,
            "engine_against_itself_median": statistics.median(noise),
            "engine_against_itself": noise,
            # What the server's thread (HTTP, JSON, the event loop) computes per token: the part
            # of the API's cost that the noise of a 2-core machine cannot hide.
            "server_cpu_ms_per_token": statistics.median(server_seconds) * 1000 / tokens,
            "server_cpu_share_of_a_token": statistics.median(server_seconds) / tokens * statistics.median(engine_rates),
        }

    def multi_turn(
        self, *, turns: int, user_tokens: int, reply_tokens: int, thinking: bool, reading: bool, repeats: int,
        rng: random.Random,
    ) -> dict:
        """Time to first text on turn ``turns`` of a chat resent whole each time, against turn 1.

        Replies go back as the client got them (``content`` and ``reasoning_content``). The
        template drops past turns' reasoning, and a random-weight model never closes its
        thinking, so with thinking on its answers are empty: its questions then carry the
        replies' share of the history too, for the same ~4,000 tokens. A random-weight model's
        text reads back as about twice the tokens it was generated with, so replies are
        generated with half of ``reply_tokens``.
        """
        options = {"chat_template_kwargs": {"enable_thinking": thinking}}
        question_tokens = user_tokens + reply_tokens if thinking else user_tokens
        # Written before the chat starts: making one asks the engine thread to tokenize, which
        # would wait for the preparation an immediate client must not wait for.
        questions = [
            {"role": "user", "content": words_with_tokens(self.tokenize, question_tokens, rng)}
            for _ in range(turns - 1 + repeats)
        ]
        history: list[dict] = []
        cached = []
        for question in questions[: turns - 1]:
            history.append(question)
            answer, reasoning, _seconds, usage = self._stream(history, reply_tokens // 2, options)
            history.append({"role": "assistant", "content": answer, "reasoning_content": reasoning})
            cached.append(usage.prompt_tokens_details.cached_tokens)
            if reading:
                self._wait_until_idle()
        first, last = [], []
        for question in questions[turns - 1:]:
            if reading:
                self._wait_until_idle()
            later = self._stream([*history, question], 1, options)
            if reading:
                self._wait_until_idle()
            opening = self._stream([question], 1, options)
            first.append(opening[2])
            last.append(later[2])
            opening_usage, later_usage = opening[3], later[3]
        return {
            "thinking": thinking,
            "client": "reading" if reading else "immediate",
            "history_tokens": later_usage.prompt_tokens,
            "turn_1_seconds": seconds(first),
            f"turn_{turns}_seconds": seconds(last),
            # Best against best, as for the engine's figures; the medians' ratio shows the noise.
            "ratio": min(last) / min(first),
            "median_ratio": statistics.median(last) / statistics.median(first),
            "turn_1_cached_tokens": opening_usage.prompt_tokens_details.cached_tokens,
            f"turn_{turns}_cached_tokens": later_usage.prompt_tokens_details.cached_tokens,
            f"turn_{turns}_evaluated_tokens": later_usage.prompt_tokens - later_usage.prompt_tokens_details.cached_tokens,
            "cached_tokens_by_turn": cached,
        }

    def disconnect(self, *, repeats: int, rng: random.Random) -> dict:
        """Seconds from closing a streaming reply until the engine runs the next piece of work."""
        latencies = []
        for _ in range(repeats):
            body = {
                "model": "m", "stream": True, **NO_THINKING,
                "messages": [{"role": "user", "content": words_with_tokens(self.tokenize, 24, rng)}],
            }
            with httpx.Client(timeout=TIMEOUT_S) as client:
                response = client.send(client.build_request("POST", f"{self.server.url}/chat/completions", json=body), stream=True)
                lines = response.iter_lines()
                received = 0
                while received < 8:
                    received += '"content":' in next(lines)
                closed = time.perf_counter()
                response.close()
            free = self.host.call(lambda _engine: time.perf_counter(), Priority.API).result(TIMEOUT_S)
            latencies.append(free - closed)
            self._wait_until_idle()
        return {"seconds": latencies, "median_seconds": statistics.median(latencies), "max_seconds": max(latencies)}

    # ------------------------------------------------------------------------------- helpers

    def _stream(self, messages: list[dict], max_tokens: int, options: dict):
        """The reply's answer and reasoning, the client's time to its first text, and the usage."""
        started = time.perf_counter()
        first = None
        answer, reasoning, usage = [], [], None
        for chunk in self.client.chat.completions.create(
            model="m", messages=messages, max_tokens=max_tokens, stream=True,
            stream_options={"include_usage": True}, extra_body=options,
        ):
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text = (choice.delta.content or "") + (getattr(choice.delta, "reasoning_content", None) or "")
                if text and first is None:
                    first = time.perf_counter()
                answer.append(choice.delta.content or "")
                reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
        return "".join(answer), "".join(reasoning), (first or time.perf_counter()) - started, usage

    def _engine_rate(self, messages: list[ChatMessage], tokens: int) -> float:
        times: list[float] = []
        done = threading.Event()
        outcome = []

        def on_event(event) -> None:
            if isinstance(event, TextGenerated):
                times.append(time.perf_counter())
            elif isinstance(event, GenerationFinished):
                outcome.append(event.result)
                done.set()

        request = GenerationRequest(
            tuple(messages), enable_thinking=False, sampling=SamplingSettings(max_tokens=tokens), reply_room=tokens
        )
        self.host.generate(request, Priority.API, on_event)
        done.wait(TIMEOUT_S)
        self._wait_until_idle()
        return (len(times) - 1) / (times[-1] - times[0])

    def _api_rate(self, messages: list[ChatMessage], tokens: int) -> float:
        """Tokens a second as a client in another process receives them (as programs out there
        are: a client in this process would also compete with the engine for the interpreter)."""
        body = {
            "model": "m", "max_tokens": tokens, "stream": True, **NO_THINKING,
            "messages": [{"role": message.role, "content": message.content} for message in messages],
        }
        completed = subprocess.run(
            [sys.executable, "-m", "bench.local_api", "--client", self.server.url, json.dumps(body)],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=True,
        )
        self._wait_until_idle()
        return float(completed.stdout)

    def _wait_until_idle(self) -> None:
        """Until the engine has done everything queued, the follow-up preparation included."""
        self.host.call(lambda _engine: None, Priority.PREPARATION).result(TIMEOUT_S)


def measure(path: Path, *, rounds: int = 7, tokens: int = 128, turns: int = 10, user_tokens: int = 100,
            reply_tokens: int = 330, repeats: int = 3, disconnects: int = 5, seed: int = 0) -> dict:
    rng = random.Random(seed)
    bench = ApiBench(path)
    try:
        results = {"generation": bench.generation(rounds=rounds, tokens=tokens, rng=rng), "multi_turn": []}
        for thinking in (False, True):
            for reading in (True, False):
                results["multi_turn"].append(bench.multi_turn(
                    turns=turns, user_tokens=user_tokens, reply_tokens=reply_tokens, thinking=thinking,
                    reading=reading, repeats=repeats, rng=rng,
                ))
        results["disconnect"] = bench.disconnect(repeats=disconnects, rng=rng)
        return results
    finally:
        bench.close()


def streamed_rate(url: str, body: str) -> float:
    """The client of ``ApiBench._api_rate``: streams ``body`` (raw HTTP, the least work a client
    can do) and returns the tokens a second from its first text to its last."""
    times = []
    with httpx.stream("POST", f"{url}/chat/completions", content=body, timeout=TIMEOUT_S) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--client", nargs=2, metavar=("URL", "BODY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(streamed_rate(*args.client))
        return
    print(json.dumps(measure(args.model, rounds=args.rounds), indent=2))


if __name__ == "__main__":
    main()
