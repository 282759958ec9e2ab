"""Speed of the app's engine path against raw llama.cpp on one model file.

Each round runs the reference, the engine, and the reference again, and compares the engine
with the mean of the two reference runs around it, so a drift of the shared machine during the
round cancels out. Many short rounds are run and every one is kept. The headline ratio is the
median of the rounds' ratios: one round disturbed by another process moves it little, where best
against best would let one lucky round decide. The two reference runs of each round, compared
with each other ("A/A"), show how far from 1.0 the same protocol lands when nothing differs:
the noise floor of this machine, against which a 2 % target has to be read.
"""

from __future__ import annotations

import random
import statistics
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.domain.generation import ChatMessage, LoadSettings, ModelFacts
from app.core.engines.llama.chat_template import ChatTemplate
from bench import machine
from bench.bandwidth import bytes_read_per_token
from bench.engine_path import EngineDriver
from bench.raw_reference import ContextSettings, RawLlama

@dataclass(frozen=True)
class SpeedPlan:
    repeats: int
    generated_tokens: int
    prompt_tokens: int
    quiet_wait_s: float = 60.0  # longest wait for other processes to leave the CPUs before a round


def words_with_tokens(tokenize: Callable[[str], list[int]], count: int, rng: random.Random) -> str:
    """Random lower-case words that tokenize to about ``count`` tokens (a little more, never less)."""
    words: list[str] = []
    while True:
        words.extend("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(max(1, count // 8)))
        if len(tokenize(" ".join(words))) >= count:
            break
    while len(words) > 1 and len(tokenize(" ".join(words[:-1]))) >= count:
        words.pop()
    return " ".join(words)


def _first_tokens(text: str, count: int, tokenize: Callable[[str], list[int]]) -> str:
    """The longest run of whole words from the start of ``text`` that is at most ``count`` tokens."""
    words = text.split(" ")
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if len(tokenize(" ".join(words[:middle]))) <= count:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def _reference_against_itself(before: float, after: float, round_index: int) -> float:
    """The A/A check: the two reference runs of a round against each other, taken in turns."""
    return before / after if round_index % 2 else after / before


def _spread(values: list[float]) -> dict:
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "quartiles": [quartiles[0], quartiles[2]], "values": values}


def rates(values: list[float]) -> dict:
    """Tokens per second over the rounds; the best one is the least disturbed by other load."""
    return {"best": max(values), "median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def seconds(values: list[float]) -> dict:
    """Durations over the rounds; the best one is the shortest."""
    return {"best": min(values), "median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def ratio(engine: list[float], reference: list[float], rounds: list[float]) -> dict:
    """Engine over reference: the median of the per-round ratios (the headline), their range,
    and best against best for comparison."""
    return {
        "median_of_rounds": statistics.median(rounds),
        "best_of": max(engine) / max(reference),
        "min": min(rounds),
        "max": max(rounds),
        "values": rounds,
    }


class SpeedBench:
    """The engine (through the engine host's thread) and the reference, both loaded from ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        load_settings = LoadSettings()  # the app's defaults
        self.driver = EngineDriver()
        self.facts: ModelFacts = self.driver.load(path, load_settings)
        self.context_settings = ContextSettings(
            context_size=self.facts.context_size, threads=self.facts.threads, batch_size=self.facts.batch_size
        )
        # On the engine's thread, like everything the reference computes (see bench.engine_path).
        self.raw = self.driver.call_on_inference_thread(lambda: RawLlama(path, self.context_settings))
        self.template = ChatTemplate(self.facts.chat_template, eos_token="<|im_end|>")

    def close(self) -> None:
        self.driver.call_on_inference_thread(self.raw.close)
        self.driver.close()

    def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        return self.raw.tokenize(self.template.render(messages, enable_thinking=False))

    def generation(self, plan: SpeedPlan, rng: random.Random) -> dict:
        """Tokens per second while streaming a reply, against single-token ``llama_decode``."""
        messages = [ChatMessage("user", words_with_tokens(self.raw.tokenize, 24, rng))]
        prompt = self.prompt_tokens(messages)
        self.driver.reply(messages, max_tokens=4)  # warm-up: first use allocates on both sides
        self._raw_generation(prompt, 4)
        engine, raw, ratios, calibration, busy, faithful = [], [], [], [], [], []
        for round_index in range(plan.repeats):
            busy.append(machine.wait_until_quiet(plan.quiet_wait_s))
            before = self._raw_generation(prompt, plan.generated_tokens)
            reply = self.driver.reply(messages, max_tokens=plan.generated_tokens, seed=round_index)
            after = self._raw_generation(prompt, reply.result.stats.generated_tokens)
            faithful.append(
                reply.shown_answer == reply.result.answer and reply.shown_reasoning == reply.result.reasoning
            )
            engine.append(reply.streaming_tokens_per_second)
            raw.append((before + after) / 2)
            ratios.append(engine[-1] / raw[-1])
            calibration.append(_reference_against_itself(before, after, round_index))
        return {
            "generated_tokens": plan.generated_tokens,
            "context_position": len(prompt),
            "engine_tokens_per_second": rates(engine),
            "raw_tokens_per_second": rates(raw),
            "ratio": ratio(engine, raw, ratios),
            "reference_against_itself": _spread(calibration),
            "delivered_text_equals_generated": all(faithful),
            "busy_percent_before_rounds": busy,
        }

    def _raw_generation(self, prompt: list[int], count: int) -> float:
        def measure() -> float:
            self.raw.forget()
            self.raw.evaluate(prompt)
            return count / self.raw.decode_one_at_a_time(count, prompt[-1])

        return self.driver.call_on_inference_thread(measure)

    def prompt_processing(self, plan: SpeedPlan, rng: random.Random) -> dict:
        """Prompt tokens per second from request to first text, against batched ``llama_decode``.

        Every round uses a new text, so nothing can be reused from earlier rounds.
        """
        engine, raw, ratios, calibration, busy, evaluated, lengths = [], [], [], [], [], [], []
        self.driver.reply([ChatMessage("user", "warm up")], max_tokens=1)
        for round_index in range(plan.repeats):
            messages = [ChatMessage("user", words_with_tokens(self.raw.tokenize, plan.prompt_tokens, rng))]
            prompt = self.prompt_tokens(messages)
            busy.append(machine.wait_until_quiet(plan.quiet_wait_s))
            before = len(prompt) / self._raw_prompt(prompt)
            reply = self.driver.reply(messages, max_tokens=1)
            after = len(prompt) / self._raw_prompt(prompt)
            evaluated.append(reply.result.stats.evaluated_prompt_tokens)
            lengths.append(len(prompt))
            engine.append(len(prompt) / reply.time_to_first_text_s)
            raw.append((before + after) / 2)
            ratios.append(engine[-1] / raw[-1])
            calibration.append(_reference_against_itself(before, after, round_index))
        return {
            "prompt_tokens": lengths,
            "engine_evaluated_tokens": evaluated,
            "engine_tokens_per_second": rates(engine),
            "raw_tokens_per_second": rates(raw),
            "ratio": ratio(engine, raw, ratios),
            "reference_against_itself": _spread(calibration),
            "busy_percent_before_rounds": busy,
        }

    def _raw_prompt(self, prompt: list[int]) -> float:
        def measure() -> float:
            self.raw.forget()
            return self.raw.evaluate(prompt)

        return self.driver.call_on_inference_thread(measure)

    def multi_turn(
        self, *, turns: int, user_tokens: int, reply_tokens: int, repeats: int, quiet_wait_s: float, rng: random.Random
    ) -> dict:
        """Time to first text on turn ``turns`` of a chat against turn 1, with the same new message.

        The earlier turns are played as in the window: each reply is generated, then the next
        turn is prepared while the "user types", as the window asks the worker to after every
        reply. Turn 1 is a new chat with the same message. A random-weight model's text reads
        back as about twice the tokens it was generated with, so each reply is generated with
        half of ``reply_tokens`` and its text kept up to ``reply_tokens`` tokens.
        """
        history: list[ChatMessage] = []
        for _ in range(turns - 1):
            history.append(self._new_message(user_tokens, rng))
            reply = self.driver.reply(history, max_tokens=reply_tokens // 2)
            answer = _first_tokens(reply.result.answer, reply_tokens, self.raw.tokenize)
            history.append(ChatMessage("assistant", answer, reply.result.reasoning))
            self.driver.prepare_next_turn(history)
        first, last, busy = [], [], []
        first_evaluated = last_evaluated = last_prompt = 0
        for _ in range(repeats):
            message = self._new_message(user_tokens, rng)
            busy.append(machine.wait_until_quiet(quiet_wait_s))
            opening = self.driver.reply([message], max_tokens=1)
            self.driver.prepare_next_turn(history)  # the user reads and types: state comes back
            later = self.driver.reply(history + [message], max_tokens=1)
            first.append(opening.time_to_first_text_s)
            last.append(later.time_to_first_text_s)
            first_evaluated = opening.result.stats.evaluated_prompt_tokens
            last_evaluated = later.result.stats.evaluated_prompt_tokens
            last_prompt = later.result.stats.prompt_tokens
        return {
            "turns": turns,
            "history_tokens": last_prompt,
            "turn_1_seconds": seconds(first),
            f"turn_{turns}_seconds": seconds(last),
            "turn_1_evaluated_tokens": first_evaluated,
            f"turn_{turns}_evaluated_tokens": last_evaluated,
            # Best against best, as for the speeds; the medians' ratio shows the noise.
            "ratio": min(last) / min(first),
            "median_ratio": statistics.median(last) / statistics.median(first),
            "busy_percent_before_rounds": busy,
        }

    def _new_message(self, tokens: int, rng: random.Random) -> ChatMessage:
        return ChatMessage("user", words_with_tokens(self.raw.tokenize, tokens, rng))

    def bandwidth_bound(self, bandwidth_bytes_per_second: float, position: int) -> dict:
        per_token = bytes_read_per_token(self.path, position)
        return {
            "bytes_read_per_token": per_token,
            "bound_tokens_per_second": bandwidth_bytes_per_second / per_token,
        }
