"""The gate in front of llama.cpp: hostile model files end in a clear refusal, never in a dead or
frozen app, and the first-use check costs once per file."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gguf
import psutil
import pytest

from app.core.domain.generation import ChatMessage, LoadSettings, ModelLoadCancelled, ModelLoadError, SamplingSettings
from app.core.engines.engine_events import ModelChecking, ModelLoaded, ModelLoadFailed
from app.core.engines.engine_host import EngineHost
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.model_gate import ModelGate
from app.core.engines.llama.model_probe import ProbeLimits
from app.core.engines.llama.self_test_model import TOKENS, write_tiny_qwen35_gguf
from tests.event_recorder import EventRecorder
from tests.gguf_mutations import mutate

SETTINGS = LoadSettings(context_size=512)
NESTED_LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x"

# Each one killed or froze the app before the gate existed (the issue's reproductions).
HOSTILE_HEADERS = {
    "full attention interval 0 (SIGFPE)": ({"qwen35.full_attention_interval": 0}, "full_attention_interval is 0"),
    "block count 0 (GGML_ASSERT)": ({"qwen35.block_count": 0}, "block_count is 0"),
    "ssm inner size 0 (GGML_ASSERT)": ({"qwen35.ssm.inner_size": 0}, "ssm.inner_size is 0"),
    "odd rotary dimension (GGML_ASSERT)": ({"qwen35.rope.dimension_count": 15}, "rotary dimension 15 is odd"),
    "rotary dimension 0 (endless reply)": ({"qwen35.rope.dimension_count": 0}, "rope.dimension_count is 0"),
    "negative epsilon (GGML_ASSERT)": ({"qwen35.attention.layer_norm_rms_epsilon": -1.0}, "not a small positive number"),
    "NaN epsilon (GGML_ASSERT)": ({"qwen35.attention.layer_norm_rms_epsilon": math.nan}, "layer_norm_rms_epsilon is nan"),
    "rope sections wider than the rotary dims (GGML_ASSERT)": (
        {"qwen35.rope.dimension_sections": [30, 30, 30, 30]}, "rope sections are wider"
    ),
    "two billion layers (fit estimate hang)": ({"qwen35.block_count": 2_000_000_000}, "block_count is 2000000000"),
    "linear attention heads that do not divide": ({"qwen35.ssm.group_count": 3}, "cannot share its key heads"),
}


def _checks_seen() -> tuple[list[float], callable]:
    seen: list[float] = []
    return seen, seen.append


@pytest.mark.parametrize("overrides, reason", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_a_hostile_header_is_refused_with_its_reason_before_llama_cpp_sees_it(tmp_path, overrides, reason) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "hostile.gguf", overrides=overrides)
    checks, on_checking = _checks_seen()
    with pytest.raises(ModelLoadError, match=reason) as refusal:
        ModelGate(None)(model, SETTINGS, on_checking=on_checking)
    assert "“hostile.gguf” cannot be used" in str(refusal.value)
    assert checks == []  # refused in Python: no process, not even the probe's, loaded it


def test_a_chat_template_that_never_finishes_is_refused_as_too_slow(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "loops.gguf", overrides={"tokenizer.chat_template": NESTED_LOOPS})
    with pytest.raises(ModelLoadError, match="chat template takes too long to render"):
        ModelGate(None)(model, SETTINGS)


def test_a_huge_constant_in_a_template_branch_never_taken_costs_nothing(tmp_path, tiny_model) -> None:
    template = "{% if false %}{{ 'a' * 10**10 }}{% endif %}" + gguf.GGUFReader(tiny_model).fields[
        "tokenizer.chat_template"
    ].contents()
    model = write_tiny_qwen35_gguf(tmp_path / "folded.gguf", overrides={"tokenizer.chat_template": template})
    assert ModelGate(None)(model, SETTINGS) == SETTINGS  # Jinja no longer builds 10 GB while compiling


def test_a_check_step_over_its_time_limit_is_killed_and_named(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "loops.gguf", overrides={"tokenizer.chat_template": NESTED_LOOPS})
    gate = ModelGate(None, limits=ProbeLimits(rendering=0.2))  # shorter than the sandbox's own deadline
    with pytest.raises(ModelLoadError, match="its chat template takes too long to render"):
        gate(model, SETTINGS)
    assert psutil.Process().children() == []


def test_cancelling_a_load_while_its_file_is_checked_stops_the_check(tiny_model) -> None:
    cancel = threading.Event()
    with pytest.raises(ModelLoadCancelled):
        ModelGate(None)(tiny_model, SETTINGS, on_checking=lambda fraction: cancel.set(), cancel=cancel)
    assert psutil.Process().children() == []


def test_the_first_use_check_runs_once_per_file_and_is_remembered_across_runs(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    verdicts = tmp_path / "profile" / "model-checks.json"
    first, on_first = _checks_seen()
    ModelGate(verdicts)(model, SETTINGS, on_checking=on_first)
    assert first and first[-1] == 1.0

    again, on_again = _checks_seen()
    ModelGate(verdicts)(model, SETTINGS, on_checking=on_again)  # a later run of the app
    assert again == []

    write_tiny_qwen35_gguf(model, seed=1)  # the file changed: it is checked again
    changed, on_changed = _checks_seen()
    ModelGate(verdicts)(model, SETTINGS, on_checking=on_changed)
    assert changed


def test_a_file_found_bad_once_is_refused_later_without_checking_again(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "loops.gguf", overrides={"tokenizer.chat_template": NESTED_LOOPS})
    verdicts = tmp_path / "model-checks.json"
    with pytest.raises(ModelLoadError):
        ModelGate(verdicts)(model, SETTINGS)
    checks, on_checking = _checks_seen()
    with pytest.raises(ModelLoadError, match="takes too long to render"):
        ModelGate(verdicts)(model, SETTINGS, on_checking=on_checking)
    assert checks == []


def test_a_file_that_makes_llama_cpp_abort_is_refused_with_the_assertion_and_this_process_lives(tmp_path) -> None:
    # Two tokens with the same text: llama.cpp's vocabulary loader asserts (found by the fuzzer).
    tokens = list(TOKENS)
    tokens[60] = tokens[59]
    model = write_tiny_qwen35_gguf(tmp_path / "twins.gguf", overrides={"tokenizer.ggml.tokens": tokens})
    with pytest.raises(ModelLoadError) as refusal:
        ModelGate(None)(model, SETTINGS)
    assert str(refusal.value).startswith("llama.cpp crashed on “twins.gguf” (SIGABRT): GGML_ASSERT(")
    assert "The file is damaged" in str(refusal.value)


def test_a_refused_file_leaves_the_loaded_model_in_use(tmp_path, tiny_model) -> None:
    hostile = write_tiny_qwen35_gguf(tmp_path / "hostile.gguf", overrides={"qwen35.full_attention_interval": 0})
    host = EngineHost(LlamaEngine, admit_model=ModelGate(None))
    events = EventRecorder()
    host.subscribe(events)
    try:
        host.load_model(tiny_model, SETTINGS)
        events.wait_for(ModelLoaded)
        assert events.of(ModelChecking)
        host.load_model(hostile, SETTINGS)
        failure = events.wait_for(ModelLoadFailed)
        assert "full_attention_interval is 0" in failure.message
        assert failure.still_loaded is not None and failure.still_loaded.path == tiny_model
        assert host.facts.path == tiny_model
    finally:
        host.shutdown()


# ------------------------------------------------------------------------------- the fuzzer

FUZZ_VARIANTS = 300


def test_no_mutated_model_file_kills_or_freezes_the_app(tmp_path, tiny_model) -> None:
    """Seeded mutations of a real model: each ends in a clear refusal or in a model that works
    *in this process*, so a file the gate wrongly admitted would kill the test run itself."""
    variants = mutate(tiny_model, tmp_path, FUZZ_VARIANTS, seed=12)

    def admit(variant):
        try:
            ModelGate(None)(variant.path, SETTINGS)
        except ModelLoadError as error:
            return variant, str(error)
        return variant, None

    with ThreadPoolExecutor(max_workers=2) as pool:  # the checks run in child processes
        outcomes = list(pool.map(admit, variants))

    refusals = [message for _, message in outcomes if message is not None]
    assert all(message.strip() and "Traceback" not in message for message in refusals)
    assert len(refusals) > FUZZ_VARIANTS // 3  # the mutations do hit what matters
    engine = LlamaEngine(snapshot_budget_bytes=0)
    try:
        for variant, message in outcomes:
            if message is None:
                engine.load(variant.path, SETTINGS)
                reply = engine.generate(
                    [ChatMessage("user", "Hello")], enable_thinking=False,
                    sampling=SamplingSettings(max_tokens=4, seed=0), cancel=threading.Event(), on_text=lambda *_: None,
                )
                assert reply.stats.generated_tokens <= 4, variant.description
    finally:
        engine.unload()


OUT_OF_MEMORY_LOAD = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # this process may not grow past 3 GB
from app.core.domain.generation import LoadSettings, ModelMemoryError
from app.core.engines.llama.llama_engine import LlamaEngine
try:
    LlamaEngine(snapshot_budget_bytes=0).load(Path(sys.argv[1]), LoadSettings(context_size=1 << 24))
except ModelMemoryError as error:
    print("memory:", error)
"""


def test_a_load_that_runs_out_of_memory_is_reported_as_a_memory_problem_not_a_damaged_file(tmp_path) -> None:
    # A 16M-token context needs a 4 GB KV cache: under the limit llama.cpp's allocation fails,
    # as it would on a computer without that memory (run in a child: it must not take this one's).
    model = write_tiny_qwen35_gguf(tmp_path / "long.gguf", overrides={"qwen35.context_length": 1 << 24})
    result = subprocess.run(
        [sys.executable, "-c", OUT_OF_MEMORY_LOAD, str(model)], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.startswith("memory:"), result.stdout + result.stderr[-2000:]
    assert "insufficient memory" in result.stdout and "damaged" not in result.stdout
