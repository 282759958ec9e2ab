"""Images through the real libmtmd: the tiny projector beside the tiny text model.

What matters to a laptop user is that a picture is read once: follow-ups, regenerations and
edits restore a saved state that holds it. These tests count what the engine evaluates.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from app.core.domain.generation import (
    NO_PROJECTOR_MESSAGE,
    ChatMessage,
    LoadSettings,
    ModelLoadError,
    PromptRejectedError,
    SamplingSettings,
    StopReason,
)
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.model_gate import ModelGate
from app.core.engines.llama.self_test_model import CHAT_TEMPLATE_THINKS_ON_REQUEST, write_tiny_qwen35_gguf
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.engines.llama.state_files import StateFiles
from tests.vision_fixtures import chat_image

PLAIN = SamplingSettings(max_tokens=4, seed=0)
# The tiny projector reads a 640 × 480 picture as 20 × 15 image tokens, like the real ones.
PHOTO_TOKENS = 300


@pytest.fixture
def vision_engine(tiny_model_quiet: Path, tiny_projector: Path):
    engine = LlamaEngine()
    engine.load(tiny_model_quiet, LoadSettings(context_size=4096, threads=2, projector=tiny_projector))
    yield engine
    engine.unload()


def _ask(engine: LlamaEngine, messages, *, cancel=None, limit=None, on_image_progress=None):
    progress: list[tuple[int, int, float]] = []
    result = engine.generate(
        messages,
        enable_thinking=False,
        sampling=PLAIN,
        cancel=cancel or threading.Event(),
        on_text=lambda reasoning, answer: None,
        image_token_limit=limit,
        on_image_progress=on_image_progress or (lambda *report: progress.append(report)),
    )
    return result, progress


def _prepare(engine: LlamaEngine, messages, limit=None) -> int:
    return engine.prepare_next_turn(
        messages, enable_thinking=False, sampling=PLAIN, cancel=threading.Event(), image_token_limit=limit
    )


def test_the_loaded_model_reads_images_when_its_projector_is_loaded(vision_engine, tiny_projector) -> None:
    assert vision_engine.facts.projector == tiny_projector
    assert vision_engine.facts.reads_images


def test_an_image_is_encoded_with_progress_and_counts_as_prompt_tokens(vision_engine) -> None:
    text_only, _ = _ask(vision_engine, [ChatMessage("user", "What is this?")])
    result, progress = _ask(vision_engine, [ChatMessage("user", "What is this?", images=(chat_image(),))])

    assert result.stats.stop_reason is StopReason.MAX_TOKENS and result.answer
    assert result.stats.prompt_tokens == text_only.stats.prompt_tokens + PHOTO_TOKENS + 2  # + vision start/end
    assert progress[0] == (1, 1, 0.0) and progress[-1] == (1, 1, 1.0)
    assert [fraction for _, _, fraction in progress] == sorted(fraction for _, _, fraction in progress)


def _follow_up(engine: LlamaEngine, question: ChatMessage):
    first, _ = _ask(engine, [question])
    conversation = [question, ChatMessage("assistant", first.answer)]
    assert _prepare(engine, conversation) > 0  # the reply, evaluated while the user types
    return _ask(engine, [*conversation, ChatMessage("user", "And its colour?")])


def test_a_follow_up_question_evaluates_only_its_new_text_not_the_image(vision_engine) -> None:
    text_only, _ = _follow_up(vision_engine, ChatMessage("user", "What is this?"))
    follow_up, progress = _follow_up(vision_engine, ChatMessage("user", "What is this?", images=(chat_image(),)))

    assert progress == []  # not encoded again
    assert follow_up.stats.prompt_tokens == text_only.stats.prompt_tokens + PHOTO_TOKENS + 2
    assert follow_up.stats.evaluated_prompt_tokens == text_only.stats.evaluated_prompt_tokens


def test_regenerating_a_reply_about_an_image_does_not_read_it_again(vision_engine) -> None:
    question = [ChatMessage("user", "Describe it.", images=(chat_image(),))]
    _ask(vision_engine, question)
    again, progress = _ask(vision_engine, question)
    assert progress == []
    assert again.stats.evaluated_prompt_tokens <= 4


def test_editing_the_question_that_shows_an_image_reuses_the_image(vision_engine) -> None:
    picture = chat_image()
    _ask(vision_engine, [ChatMessage("user", "What is this?", images=(picture,))])
    edited, progress = _ask(vision_engine, [ChatMessage("user", "How many shapes are there?", images=(picture,))])
    assert progress == []
    assert edited.stats.evaluated_prompt_tokens <= len("How many shapes are there?") + 24


def test_a_different_picture_is_read_even_after_the_same_text(vision_engine) -> None:
    _ask(vision_engine, [ChatMessage("user", "What is this?", images=(chat_image(),))])
    other, progress = _ask(vision_engine, [ChatMessage("user", "What is this?", images=(chat_image(colour=(0, 255, 0)),))])
    assert progress and other.stats.evaluated_prompt_tokens >= PHOTO_TOKENS


def test_image_detail_bounds_the_tokens_of_a_picture(vision_engine) -> None:
    question = [ChatMessage("user", "What is this?", images=(chat_image(),))]
    detailed, _ = _ask(vision_engine, question, limit=4096)
    coarse, progress = _ask(vision_engine, question, limit=64)
    image_tokens = coarse.stats.prompt_tokens - (detailed.stats.prompt_tokens - PHOTO_TOKENS)
    assert 8 <= image_tokens <= 64
    assert progress, "a picture read at another detail is a new reading"


def test_stop_during_encoding_ends_the_reply_and_the_engine_reads_the_next_image(vision_engine) -> None:
    cancel = threading.Event()

    def stop_after_first_layer(number: int, count: int, fraction: float) -> None:
        if fraction > 0:
            cancel.set()

    stopped, _ = _ask(
        vision_engine,
        [ChatMessage("user", "What is this?", images=(chat_image(),))],
        cancel=cancel,
        on_image_progress=stop_after_first_layer,
    )
    assert stopped.stats.stop_reason is StopReason.CANCELLED
    assert stopped.answer == "" and stopped.stats.generated_tokens == 0
    # Its statistics count what was read before the stop, not the whole prompt as if reused.
    assert stopped.stats.prompt_tokens == stopped.stats.evaluated_prompt_tokens < PHOTO_TOKENS

    result, progress = _ask(vision_engine, [ChatMessage("user", "What is this?", images=(chat_image(),))])
    assert result.stats.stop_reason is StopReason.MAX_TOKENS
    assert progress[-1][2] == 1.0


def test_several_images_are_numbered_as_they_are_read(vision_engine) -> None:
    question = ChatMessage("user", "Compare them.", images=(chat_image(64, 64), chat_image(96, 64, colour=(9, 9, 9))))
    result, progress = _ask(vision_engine, [question])
    assert {(number, count) for number, count, _ in progress} == {(1, 2), (2, 2)}
    assert result.stats.stop_reason is StopReason.MAX_TOKENS


def test_a_question_with_an_image_is_refused_when_no_projector_is_loaded(tiny_model_quiet: Path) -> None:
    engine = LlamaEngine()
    engine.load(tiny_model_quiet, LoadSettings(context_size=1024))
    try:
        with pytest.raises(PromptRejectedError) as refusal:
            _ask(engine, [ChatMessage("user", "What is this?", images=(chat_image(),))])
        assert str(refusal.value) == NO_PROJECTOR_MESSAGE
    finally:
        engine.unload()


def test_a_template_that_cannot_show_images_refuses_the_question(tmp_path: Path, tiny_projector: Path) -> None:
    text_only = CHAT_TEMPLATE_THINKS_ON_REQUEST.replace("'<|vision_start|><|image_pad|><|vision_end|>'", "''")
    model = write_tiny_qwen35_gguf(tmp_path / "blind.gguf", thinks_by_default=False, chat_template=text_only)
    engine = LlamaEngine()
    engine.load(model, LoadSettings(context_size=1024, projector=tiny_projector))
    try:
        with pytest.raises(PromptRejectedError, match="does not show images"):
            _ask(engine, [ChatMessage("user", "What is this?", images=(chat_image(),))])
    finally:
        engine.unload()


def test_an_undecodable_image_is_refused_with_a_reason(vision_engine) -> None:
    from app.core.domain.generation import ChatImage

    with pytest.raises(PromptRejectedError, match="not an image"):
        _ask(vision_engine, [ChatMessage("user", "What is this?", images=(ChatImage("0" * 64, b"GIF89a broken"),))])
    result, _ = _ask(vision_engine, [ChatMessage("user", "Still there?")])
    assert result.answer


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ({"position_embedding_type": np.float16}, "position table"),
        ({"leave_out": ("v.patch_embd.bias",)}, "v.patch_embd.bias"),
        ({"overrides": {"clip.vision.projection_dim": 128}}, "128 wide"),
        ({"overrides": {"clip.projector_type": "llama4"}}, "another kind of model"),
        ({"overrides": {"clip.vision.attention.head_count": 3}}, "heads"),
        ({"leave_out": ("v.blk.1.attn_qkv.weight",)}, "v.blk.1.attn_qkv.weight"),
    ],
)
def test_a_damaged_or_mismatched_projector_is_refused_before_libmtmd_sees_it(
    tmp_path: Path, tiny_model_quiet: Path, damage: dict, reason: str
) -> None:
    # Several of these files make libmtmd abort the whole process (GGML_ASSERT): reaching the
    # assertion below at all means the app survived.
    projector = write_tiny_qwen35_projector(tmp_path / "mmproj-damaged.gguf", **damage)
    engine = LlamaEngine()
    try:
        with pytest.raises(ModelLoadError, match=reason):
            engine.load(tiny_model_quiet, LoadSettings(context_size=1024, projector=projector))
        assert not engine.is_loaded
    finally:
        engine.unload()


def test_a_truncated_projector_or_a_model_file_given_as_projector_is_refused(tmp_path: Path, tiny_model_quiet: Path, tiny_projector: Path) -> None:
    truncated = tmp_path / "mmproj-truncated.gguf"
    truncated.write_bytes(tiny_projector.read_bytes()[: tiny_projector.stat().st_size // 2])
    engine = LlamaEngine()
    for wrong, reason in ((truncated, "incomplete"), (tiny_model_quiet, "not a vision projector")):
        with pytest.raises(ModelLoadError, match=reason):
            engine.load(tiny_model_quiet, LoadSettings(context_size=1024, projector=wrong))
    engine.unload()


def test_the_gate_checks_model_and_projector_together_once(tmp_path: Path, tiny_model_quiet: Path, tiny_projector: Path) -> None:
    verdicts = tmp_path / "verdicts.json"
    gate = ModelGate(verdicts)
    settings = LoadSettings(context_size=1024, projector=tiny_projector)
    checked: list[float] = []
    gate(tiny_model_quiet, settings, on_checking=checked.append)
    assert checked  # probed in a child process, with a picture
    checked.clear()
    gate(tiny_model_quiet, settings, on_checking=checked.append)
    assert checked == []  # the pair's verdict is remembered

    mismatched = write_tiny_qwen35_projector(tmp_path / "mmproj-wide.gguf", overrides={"clip.vision.projection_dim": 128})
    with pytest.raises(ModelLoadError, match="128 wide"):
        gate(tiny_model_quiet, LoadSettings(context_size=1024, projector=mismatched))


def _reference_logits(engine: LlamaEngine, messages) -> np.ndarray:
    """The next-token logits of ``messages`` evaluated by libmtmd's own helper in a fresh
    context: the reference for positions after an image (M-RoPE moves them by the image's
    extent, not its token count)."""
    import ctypes

    import llama_cpp
    from llama_cpp import mtmd_cpp

    from app.core.engines.llama.chat_template import IMAGE_PLACEHOLDER
    from app.core.images.image_intake import decode_rgb

    text = engine.render_prompt(messages, enable_thinking=False).replace(IMAGE_PLACEHOLDER, mtmd_cpp.mtmd_default_marker().decode())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 4096, 256, 256, 1
    context = llama_cpp.llama_init_from_model(engine._model, params)
    bitmaps = []
    for image in (image for message in messages for image in message.images):
        width, height, pixels = decode_rgb(image.data)
        bitmaps.append(mtmd_cpp.mtmd_bitmap_init(width, height, (ctypes.c_uint8 * len(pixels)).from_buffer_copy(pixels)))
    chunks = mtmd_cpp.mtmd_input_chunks_init()
    try:
        prompt = mtmd_cpp.mtmd_input_text()
        prompt.text = text.encode()
        prompt.text_len, prompt.add_special, prompt.parse_special = len(prompt.text), False, True
        array = (mtmd_cpp.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
        assert mtmd_cpp.mtmd_tokenize(engine._vision._context, chunks, ctypes.byref(prompt), array, len(bitmaps)) == 0
        end = llama_cpp.llama_pos(0)
        assert mtmd_cpp.mtmd_helper_eval_chunks(engine._vision._context, context, chunks, 0, 0, 256, True, ctypes.byref(end)) == 0
        vocabulary = llama_cpp.llama_vocab_n_tokens(engine._vocab)
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(context, -1), (vocabulary,)).copy()
    finally:
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        for bitmap in bitmaps:
            mtmd_cpp.mtmd_bitmap_free(bitmap)
        llama_cpp.llama_free(context)


def _engine_logits(engine: LlamaEngine, messages) -> np.ndarray:
    import llama_cpp

    engine._begin_request(threading.Event(), (), None)
    try:
        items = engine._prompt_items(messages, False)
        engine._evaluate_prompt(items, engine._stable_prefix_length(messages, False, items), None)
    finally:
        engine._end_request()
    vocabulary = llama_cpp.llama_vocab_n_tokens(engine._vocab)
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(engine._context, -1), (vocabulary,)).copy()


def test_text_after_an_image_sits_where_libmtmd_puts_it_also_in_a_restored_state(vision_engine) -> None:
    # A wrong position changes these logits (up to ~58) by ~1.6e-2. The same positions agree to
    # ~1e-7 evaluated alike, and to ~4e-4 when the recurrent layers see other batch boundaries
    # (a restored state, then the rest in one batch).
    first = [ChatMessage("user", "What is this picture about?", images=(chat_image(128, 96),))]
    np.testing.assert_allclose(_engine_logits(vision_engine, first), _reference_logits(vision_engine, first), atol=2e-3)

    follow_up = [*first, ChatMessage("assistant", "Shapes."), ChatMessage("user", "Which colours?")]
    result, progress = _ask(vision_engine, follow_up)  # restores the state that holds the image
    assert progress == [] and result.stats.evaluated_prompt_tokens < result.stats.prompt_tokens
    np.testing.assert_allclose(_engine_logits(vision_engine, follow_up), _reference_logits(vision_engine, follow_up), atol=2e-3)


def test_a_chat_about_a_picture_resumed_after_a_restart_does_not_read_the_picture_again(
    tiny_model_quiet: Path, tiny_projector: Path, tmp_path: Path
) -> None:
    picture = chat_image()
    question = ChatMessage("user", "What is this?", images=(picture,))
    files = StateFiles(tmp_path / "states")
    settings = LoadSettings(context_size=4096, threads=2, projector=tiny_projector)
    first = LlamaEngine(state_files=files)
    first.load(tiny_model_quiet, settings)
    reply, _ = _ask(first, [question])
    history = [question, ChatMessage("assistant", reply.answer)]
    _prepare(first, history)
    first.unload()  # the app closes: the states go to disk
    assert files.wait_until_written(60)

    again = LlamaEngine(state_files=files)
    again.load(tiny_model_quiet, settings)
    try:
        follow_up, progress = _ask(again, [*history, ChatMessage("user", "And its colour?")])
    finally:
        again.unload()
    assert progress == []  # the picture was not encoded again
    assert follow_up.stats.evaluated_prompt_tokens <= len("And its colour?") + 24
