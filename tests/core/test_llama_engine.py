"""The llama.cpp engine on a real (tiny) qwen35 model through real llama.cpp."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from app.core.domain.generation import (
    ChatMessage,
    LoadSettings,
    ModelLoadError,
    PromptTooLongError,
    SamplingSettings,
    StopReason,
)
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import CONTEXT_LENGTH, ENDLESS_CYCLE, THINKING_ANSWER, THINKING_REASONING

CARD_THINKING = SamplingSettings.for_mode(thinking=True)
CARD_PLAIN = SamplingSettings.for_mode(thinking=False)
CANCEL_DEADLINE_S = 0.2


@pytest.fixture
def engine(tiny_model: Path):
    engine = LlamaEngine()
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH, threads=2))
    yield engine
    engine.unload()


def _generate(engine: LlamaEngine, messages, *, thinking: bool, sampling=None, cancel=None, **callbacks):
    pieces: list[tuple[str, str]] = []
    result = engine.generate(
        messages,
        enable_thinking=thinking,
        sampling=sampling or (CARD_THINKING if thinking else CARD_PLAIN),
        cancel=cancel or threading.Event(),
        on_text=lambda reasoning, answer: pieces.append((reasoning, answer)),
        **callbacks,
    )
    return result, pieces


def test_loading_reports_the_model_facts(tiny_model: Path, engine: LlamaEngine) -> None:
    progress: list[float] = []
    facts = engine.load(tiny_model, LoadSettings(context_size=2048), progress.append)
    assert facts.architecture == "qwen35"
    assert facts.trained_context == CONTEXT_LENGTH
    assert facts.context_size == 2048
    assert facts.backend == "CPU"
    assert facts.thinks_by_default is True
    assert "enable_thinking" in facts.chat_template
    assert facts.file_size == tiny_model.stat().st_size
    assert progress and progress[-1] == pytest.approx(1.0)


def test_context_size_is_capped_at_what_the_model_was_trained_for(tiny_model: Path, engine) -> None:
    assert engine.load(tiny_model, LoadSettings(context_size=1_000_000)).context_size == CONTEXT_LENGTH


def test_thinking_default_is_read_from_the_template(tiny_model_quiet: Path, engine) -> None:
    assert engine.load(tiny_model_quiet).thinks_by_default is False


@pytest.mark.parametrize(
    ("thinking", "generation_prompt"),
    [(True, "<|im_start|>assistant\n<think>\n"), (False, "<|im_start|>assistant\n<think>\n\n</think>\n\n")],
)
def test_prompt_renders_exactly_as_the_template_says(engine, thinking: bool, generation_prompt: str) -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!", reasoning="They greet me."),
        ChatMessage("user", "Bye"),
    ]
    expected = (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        # Reasoning of turns before the last user message is dropped by the template.
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n" + generation_prompt
    )
    assert engine.render_prompt(messages, enable_thinking=thinking) == expected


def test_quiet_template_thinks_only_when_asked(tiny_model_quiet: Path, engine) -> None:
    engine.load(tiny_model_quiet)
    messages = [ChatMessage("user", "Hi")]
    assert engine.render_prompt(messages, enable_thinking=True).endswith("assistant\n<think>\n")
    assert engine.render_prompt(messages, enable_thinking=False).endswith("assistant\n<think>\n\n</think>\n\n")


def test_thinking_reply_streams_reasoning_then_answer_and_stops_at_end_of_turn(engine) -> None:
    result, pieces = _generate(engine, [ChatMessage("user", "Why?")], thinking=True)
    assert (result.reasoning, result.answer) == (THINKING_REASONING, THINKING_ANSWER)
    assert result.stats.stop_reason == StopReason.END_OF_TURN
    # Streamed piece by piece, in order, adding up to the final text.
    assert len(pieces) >= len(THINKING_REASONING) + len(THINKING_ANSWER)
    assert "".join(reasoning for reasoning, _ in pieces) == THINKING_REASONING
    assert "".join(answer for _, answer in pieces) == THINKING_ANSWER
    first_answer_piece = next(index for index, (_, answer) in enumerate(pieces) if answer)
    assert all(not answer for _, answer in pieces[:first_answer_piece])
    # W, h, y, </think>, O, k
    assert result.stats.generated_tokens == 6


def test_reply_stops_at_the_max_token_limit(engine) -> None:
    sampling = SamplingSettings(max_tokens=40)
    result, _ = _generate(engine, [ChatMessage("user", "Go on")], thinking=False, sampling=sampling)
    assert result.stats.stop_reason == StopReason.MAX_TOKENS
    assert result.stats.generated_tokens == 40
    assert result.answer == (ENDLESS_CYCLE * 20)[:40]
    assert result.reasoning == ""


def test_stats_describe_the_reply(engine) -> None:
    result, _ = _generate(engine, [ChatMessage("user", "Go on")], thinking=False, sampling=SamplingSettings(max_tokens=30))
    stats = result.stats
    assert stats.prompt_tokens == len(engine.tokenize(engine.render_prompt([ChatMessage("user", "Go on")], enable_thinking=False)))
    assert stats.evaluated_prompt_tokens == stats.prompt_tokens
    assert stats.generated_tokens == 30
    assert stats.time_to_first_token_s > 0
    assert stats.tokens_per_second > 0


def _cancel_once_ready(engine: LlamaEngine, messages, ready: threading.Event, cancel=None, **generate_arguments):
    """Runs ``generate`` on another thread, sets its cancel flag once ``ready`` is set, and
    returns the result and the seconds from the cancel to ``generate`` returning."""
    cancel = cancel or threading.Event()
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = engine.generate(messages, cancel=cancel, **generate_arguments)
        outcome["returned_at"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(30)
    cancelled_at = time.perf_counter()
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()
    return outcome["result"], outcome["returned_at"] - cancelled_at


def test_cancel_from_another_thread_stops_generation_quickly(engine) -> None:
    streaming = threading.Event()
    result, latency = _cancel_once_ready(
        engine,
        [ChatMessage("user", "Go on forever")],
        streaming,
        enable_thinking=False,
        sampling=SamplingSettings(max_tokens=1_000_000),
        on_text=lambda reasoning, answer: streaming.set(),
    )
    assert latency < CANCEL_DEADLINE_S
    assert result.stats.stop_reason == StopReason.CANCELLED
    assert result.answer and (ENDLESS_CYCLE * len(result.answer)).startswith(result.answer)


def test_cancel_while_a_long_prompt_is_evaluated_stops_quickly_and_keeps_the_engine_usable(tiny_model: Path) -> None:
    engine = LlamaEngine()
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH, batch_size=64))
    long_message = ChatMessage("user", "lorem ipsum dolor sit amet " * 100)
    first_batch_done, cancel = threading.Event(), threading.Event()
    totals: list[int] = []

    def on_prompt_progress(done: int, total: int) -> None:
        totals.append(total)
        if not first_batch_done.is_set():
            first_batch_done.set()
            cancel.wait(30)  # hold the engine here until the test thread raises the flag

    result, latency = _cancel_once_ready(
        engine,
        [long_message],
        first_batch_done,
        cancel,
        enable_thinking=False,
        sampling=CARD_PLAIN,
        on_text=lambda reasoning, answer: None,
        on_prompt_progress=on_prompt_progress,
    )
    stats = result.stats
    assert latency < CANCEL_DEADLINE_S
    assert totals[0] > 2000
    assert stats.stop_reason == StopReason.CANCELLED
    assert stats.generated_tokens == 0
    # The statistics count what got into the context before the stop, all of it evaluated.
    assert 0 < stats.evaluated_prompt_tokens == stats.prompt_tokens < totals[0]

    # What was evaluated before the stop is kept, whole steps only: the same question goes on
    # from there, and is answered correctly.
    result, _ = _generate(engine, [long_message], thinking=True)
    assert (result.reasoning, result.answer) == (THINKING_REASONING, THINKING_ANSWER)
    assert 0 < result.stats.evaluated_prompt_tokens <= result.stats.prompt_tokens - stats.prompt_tokens + 8
    engine.unload()


class _CancelFromInsideDecode(threading.Event):
    """Reads as set from its second check on: the engine checks once before each batch, then
    llama.cpp's abort callback checks between graph nodes, so this cancels mid-batch."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > 1


def test_cancel_aborts_llama_cpp_inside_a_batch_quietly(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = LlamaEngine()
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH, batch_size=CONTEXT_LENGTH))
    long_message = ChatMessage("user", "lorem ipsum dolor sit amet " * 100)
    cancel = _CancelFromInsideDecode()
    with caplog.at_level("DEBUG"):
        result, _ = _generate(engine, [long_message], thinking=True, cancel=cancel)
    assert result.stats.stop_reason == StopReason.CANCELLED
    # The one big batch was abandoned half-way: the engine checked once before it, llama.cpp's
    # abort callback once inside it.
    assert result.stats.evaluated_prompt_tokens == 0
    assert cancel.checks == 2
    # A stop the user asked for is not an error, even though llama.cpp reports it as one.
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]

    result, _ = _generate(engine, [long_message], thinking=True)
    assert (result.reasoning, result.answer) == (THINKING_REASONING, THINKING_ANSWER)
    engine.unload()


def test_follow_up_turns_evaluate_only_what_is_new(engine) -> None:
    history = [ChatMessage("user", "Tell me about the weather in a few long sentences, please. " * 20)]
    first, _ = _generate(engine, history, thinking=True)
    assert first.stats.evaluated_prompt_tokens == first.stats.prompt_tokens

    for turn in range(3):
        history += [
            ChatMessage("assistant", first.answer, first.reasoning),
            ChatMessage("user", f"And tomorrow? ({turn})"),
        ]
        follow_up, _ = _generate(engine, history, thinking=True)
        stats = follow_up.stats
        # The template re-renders the previous answer without its reasoning, which diverges from
        # what was generated; only the answer, the new message and the generation prompt remain.
        new_part = f"{first.answer}<|im_end|>\n<|im_start|>user\nAnd tomorrow? ({turn})<|im_end|>\n<|im_start|>assistant\n<think>\n"
        assert stats.evaluated_prompt_tokens == len(engine.tokenize(new_part))
        assert stats.prompt_tokens > 20 * stats.evaluated_prompt_tokens
        assert (follow_up.reasoning, follow_up.answer) == (THINKING_REASONING, THINKING_ANSWER)
        first = follow_up


def test_preparing_the_next_turn_leaves_only_the_new_message_to_evaluate(engine) -> None:
    history = [ChatMessage("user", "Tell me about the weather in a few long sentences, please. " * 20)]
    first, _ = _generate(engine, history, thinking=True)
    history.append(ChatMessage("assistant", first.answer, first.reasoning))

    # While the user types: the re-rendered answer, up to where the next question's text begins.
    prepared = engine.prepare_next_turn(history, enable_thinking=True, sampling=CARD_THINKING, cancel=threading.Event())
    assert prepared == len(engine.tokenize(f"{first.answer}<|im_end|>\n<|im_start|>user\n"))

    follow_up, _ = _generate(engine, history + [ChatMessage("user", "And tomorrow?")], thinking=True)
    new_part = "And tomorrow?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert follow_up.stats.evaluated_prompt_tokens == len(engine.tokenize(new_part))
    assert (follow_up.reasoning, follow_up.answer) == (THINKING_REASONING, THINKING_ANSWER)

    # Its state was saved: preparing again (say, to edit that question) evaluates nothing, and an
    # edited question is as cheap as the first one.
    assert engine.prepare_next_turn(history, enable_thinking=True, sampling=CARD_THINKING, cancel=threading.Event()) == 0
    edited, _ = _generate(engine, history + [ChatMessage("user", "And next week?")], thinking=True)
    assert edited.stats.evaluated_prompt_tokens == len(engine.tokenize("And next week?<|im_end|>\n<|im_start|>assistant\n<think>\n"))


def test_a_preparation_cancelled_mid_batch_costs_the_next_turn_nothing_but_the_saved_time(tiny_model: Path) -> None:
    engine = LlamaEngine()
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH, batch_size=CONTEXT_LENGTH))
    history = [ChatMessage("user", "Tell me about the weather in a few long sentences, please. " * 20)]
    first, _ = _generate(engine, history, thinking=True)
    history.append(ChatMessage("assistant", first.answer, first.reasoning))
    cancel = _CancelFromInsideDecode()

    assert engine.prepare_next_turn(history, enable_thinking=True, sampling=CARD_THINKING, cancel=cancel) == 0
    assert cancel.checks == 2  # abandoned inside llama.cpp's batch

    # The state saved at the previous turn is still there: only the answer and the question remain.
    follow_up, _ = _generate(engine, history + [ChatMessage("user", "And tomorrow?")], thinking=True)
    new_part = f"{first.answer}<|im_end|>\n<|im_start|>user\nAnd tomorrow?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert follow_up.stats.evaluated_prompt_tokens == len(engine.tokenize(new_part))
    assert (follow_up.reasoning, follow_up.answer) == (THINKING_REASONING, THINKING_ANSWER)
    engine.unload()


def test_nothing_is_prepared_when_the_history_will_not_fit_whole(engine) -> None:
    history = []
    for turn in range(12):
        history += [ChatMessage("user", f"Question {turn}: " + "tell me more " * 40), ChatMessage("assistant", f"Answer {turn}.")]
    prepared = engine.prepare_next_turn(history, enable_thinking=True, sampling=CARD_THINKING, cancel=threading.Event())
    assert prepared == 0


def test_regenerating_the_same_prompt_reuses_the_saved_state(engine) -> None:
    messages = [ChatMessage("user", "A question worth asking twice. " * 20)]
    first, _ = _generate(engine, messages, thinking=True)
    again, _ = _generate(engine, messages, thinking=True)
    assert again.stats.evaluated_prompt_tokens < 10 < first.stats.evaluated_prompt_tokens
    assert (again.reasoning, again.answer) == (first.reasoning, first.answer)


def test_saved_states_stay_within_their_memory_budget(tiny_model: Path) -> None:
    engine = LlamaEngine(snapshot_budget_bytes=1)
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH))
    first = [ChatMessage("user", "The first conversation. " * 20)]
    second = [ChatMessage("user", "A different conversation. " * 20)]
    _generate(engine, first, thinking=True)
    one_state = engine.saved_state_bytes
    assert one_state > 0
    reply, _ = _generate(engine, second, thinking=True)
    assert engine.saved_state_bytes <= one_state * 1.5  # only the newest state is kept

    # The newest conversation still continues cheaply; the evicted one starts over.
    follow_up, _ = _generate(engine, second + [ChatMessage("assistant", reply.answer, reply.reasoning), ChatMessage("user", "More")], thinking=True)
    assert follow_up.stats.evaluated_prompt_tokens < 30
    again, _ = _generate(engine, first, thinking=True)
    assert again.stats.evaluated_prompt_tokens == again.stats.prompt_tokens
    engine.unload()


def test_switching_thinking_mode_between_turns_still_answers_correctly(engine) -> None:
    history = [ChatMessage("user", "Hi")]
    first, _ = _generate(engine, history, thinking=True)
    history += [ChatMessage("assistant", first.answer, first.reasoning), ChatMessage("user", "More")]
    plain, _ = _generate(engine, history, thinking=False, sampling=SamplingSettings(max_tokens=6))
    assert plain.answer == ENDLESS_CYCLE * 2


def test_a_conversation_longer_than_the_context_leaves_out_its_oldest_turns(engine) -> None:
    system = ChatMessage("system", "You are terse.")
    history = [system]
    for turn in range(12):
        history += [ChatMessage("user", f"Question {turn}: " + "tell me more " * 40), ChatMessage("assistant", f"Answer {turn}.")]
    history.append(ChatMessage("user", "Last question"))

    result, _ = _generate(engine, history, thinking=True)

    assert result.omitted_messages > 0 and result.omitted_messages % 2 == 0  # whole turns
    kept = [system] + history[1 + result.omitted_messages:]
    assert kept[1].role == "user"
    prompt = engine.render_prompt(kept, enable_thinking=True)
    assert result.stats.prompt_tokens == len(engine.tokenize(prompt))
    assert "Question 0:" not in prompt and "You are terse." in prompt and "Last question" in prompt
    reserve = engine.reply_reserve(CARD_THINKING)
    assert result.stats.prompt_tokens + reserve <= CONTEXT_LENGTH
    # Leaving out one turn fewer would not have fitted: only what had to go was left out.
    one_more = [system] + history[1 + result.omitted_messages - 2:]
    assert len(engine.tokenize(engine.render_prompt(one_more, enable_thinking=True))) + reserve > CONTEXT_LENGTH
    assert result.answer == THINKING_ANSWER


def test_a_reply_stopped_at_its_limit_can_be_continued(engine) -> None:
    question = [ChatMessage("user", "Count")]
    first, _ = _generate(engine, question, thinking=False, sampling=SamplingSettings(max_tokens=4))
    assert first.answer == "abca"
    more, pieces = _generate(
        engine,
        question,
        thinking=False,
        sampling=SamplingSettings(max_tokens=5),
        continuation=ChatMessage("assistant", first.answer, first.reasoning),
    )
    assert more.answer == "bcabc"  # carries on from where the reply stopped, only the new text
    assert "".join(answer for _, answer in pieces) == "bcabc"
    assert more.stats.evaluated_prompt_tokens < 12  # the conversation so far is not read again


def test_a_prompt_larger_than_the_context_is_refused(engine) -> None:
    with pytest.raises(PromptTooLongError):
        _generate(engine, [ChatMessage("user", "word " * (CONTEXT_LENGTH * 2))], thinking=False)
    result, _ = _generate(engine, [ChatMessage("user", "Hi")], thinking=True)
    assert result.answer == THINKING_ANSWER


def test_missing_file_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        LlamaEngine().load(tmp_path / "nowhere.gguf")


def test_non_gguf_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("these are not weights")
    with pytest.raises(ModelLoadError, match="not a GGUF model"):
        LlamaEngine().load(path)


def test_truncated_model_gives_a_clear_error_and_the_process_survives(tiny_model: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_model.read_bytes()[: tiny_model.stat().st_size // 2])
    engine = LlamaEngine()
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        engine.load(truncated)
    assert not engine.is_loaded
    # Still alive and able to load a good model afterwards.
    engine.load(tiny_model)
    result, _ = _generate(engine, [ChatMessage("user", "Hi")], thinking=True)
    assert result.answer == THINKING_ANSWER
    engine.unload()
