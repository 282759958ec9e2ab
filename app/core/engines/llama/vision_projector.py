"""A Qwen3.5 vision projector loaded through libmtmd: images in, embeddings in the model's context.

llama-cpp-python's own ``MTMDChatHandler`` clears the context and encodes every image again on
every call. Here libmtmd is used for what only it can do (preprocess an image into patches, run
the vision tower, decode its embeddings at the right M-RoPE positions), while the engine keeps
the sequence: an image is one :class:`ImageSpan` among the prompt's tokens, so saved states that
hold it are found again by the same prefix comparison as text, and a picture is encoded once.

Threading: like the engine, a projector is created, used and freed on the engine host's thread.
Its evaluation callback (progress and Stop during encoding) runs on that thread too.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from llama_cpp import mtmd_cpp

from app.core.domain.generation import ChatImage, ModelLoadError, PromptRejectedError
from app.core.engines.llama.llama_runtime import ggml_tensor_name
from app.core.images.image_intake import ImageRejected, decode_rgb

logger = logging.getLogger(__name__)

_CHUNK_TEXT = 0
_CHUNK_IMAGE = 1
_LAYOUTS_KEPT = 256  # image layouts are a few numbers each
_LAYER_DONE = b"layer_out-"  # the name clip's graph gives each vision layer's output


@dataclass(frozen=True)
class ImageSpan:
    """An image in an evaluated sequence: ``tokens`` context cells, advancing the position by
    ``positions`` (under M-RoPE an image of g × h merged patches moves it max(g, h), not g·h).
    Equal spans are the same picture read at the same detail, so their states are the same."""

    sha256: str
    token_limit: int
    tokens: int
    positions: int


PromptItem = int | ImageSpan


class VisionProjector:
    """One loaded projector for one loaded model."""

    def __init__(self, path: Path, model, *, use_gpu: bool, threads: int, token_limit: int, layers: int) -> None:
        """Loads ``path`` (already checked by ``projector_check``) for ``model``; ``token_limit``
        bounds the image tokens of each picture. Raises ``ModelLoadError``."""
        self.path = path
        self.token_limit = token_limit
        self.layers = max(1, layers)
        self._layouts: OrderedDict[str, tuple[PromptItem, ...]] = OrderedDict()
        self._cancel: threading.Event | None = None
        self._on_progress: Callable[[float], None] | None = None
        # Kept referenced for as long as libmtmd may call it.
        self._eval_callback = llama_cpp.ggml_backend_sched_eval_callback(self._observe)
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = threads
        params.print_timings = False
        # The warm-up encodes a 1,472 × 1,472 dummy image to size the GPU's buffers; on a CPU it
        # costs seconds at every load and buys nothing.
        params.warmup = use_gpu
        params.image_max_tokens = token_limit
        params.cb_eval = self._eval_callback
        self._context = mtmd_cpp.mtmd_init_from_file(str(path).encode(), model, params)
        if not self._context:
            raise ModelLoadError(f"The image support file “{path.name}” could not be loaded: it is damaged or does not match the model.")
        if not mtmd_cpp.mtmd_support_vision(self._context):
            self.free()
            raise ModelLoadError(f"“{path.name}” holds no vision encoder.")
        self._marker = mtmd_cpp.mtmd_default_marker()

    def free(self) -> None:
        if self._context:
            mtmd_cpp.mtmd_free(self._context)
        self._context = None
        self._layouts.clear()

    def items(self, image: ChatImage) -> tuple[PromptItem, ...]:
        """What ``image`` is in a prompt: the tokens libmtmd wraps it in and its span."""
        layout = self._layouts.get(image.sha256)
        if layout is None:
            chunks = self._tokenize(image)
            try:
                layout = tuple(self._layout(image, chunks))
            finally:
                mtmd_cpp.mtmd_input_chunks_free(chunks)
            self._layouts[image.sha256] = layout
            while len(self._layouts) > _LAYOUTS_KEPT:
                self._layouts.popitem(last=False)
        self._layouts.move_to_end(image.sha256)
        return layout

    def evaluate(
        self,
        image: ChatImage,
        span: ImageSpan,
        context,
        position: int,
        batch_size: int,
        cancel: threading.Event | None,
        on_progress: Callable[[float], None] | None,
    ) -> int | None:
        """Encodes ``image`` and evaluates it in sequence 0 of ``context`` at ``position``;
        returns the position after it, or None when ``cancel`` stopped it (the sequence then
        holds part of it). ``on_progress(fraction)`` follows the encoding layer by layer."""
        chunks = self._tokenize(image)
        try:
            chunk = next(
                (
                    mtmd_cpp.mtmd_input_chunks_get(chunks, index)
                    for index in range(mtmd_cpp.mtmd_input_chunks_size(chunks))
                    if mtmd_cpp.mtmd_input_chunk_get_type(mtmd_cpp.mtmd_input_chunks_get(chunks, index)) == _CHUNK_IMAGE
                ),
                None,
            )
            if chunk is None or mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk) != span.tokens:
                raise RuntimeError("the image was read differently the second time")
            self._cancel, self._on_progress = cancel, on_progress
            next_position = llama_cpp.llama_pos(0)
            result = mtmd_cpp.mtmd_helper_eval_chunk_single(
                self._context, context, chunk, position, 0, batch_size, False, ctypes.byref(next_position)
            )
        finally:
            self._cancel = self._on_progress = None
            mtmd_cpp.mtmd_input_chunks_free(chunks)
        if cancel is not None and cancel.is_set():
            return None
        if result != 0:
            raise RuntimeError(f"libmtmd failed to evaluate the image (code {result})")
        return next_position.value

    # ---------------------------------------------------------------------------------- helpers

    def _tokenize(self, image: ChatImage):
        try:
            width, height, pixels = decode_rgb(image.data)
        except ImageRejected as error:
            raise PromptRejectedError(str(error)) from error
        data = (ctypes.c_uint8 * len(pixels)).from_buffer_copy(pixels)
        bitmap = mtmd_cpp.mtmd_bitmap_init(width, height, data)
        if not bitmap:
            raise PromptRejectedError("The image could not be prepared for the model.")
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            mtmd_cpp.mtmd_bitmap_set_id(bitmap, image.sha256.encode())
            text = mtmd_cpp.mtmd_input_text()
            text.text, text.text_len = self._marker, len(self._marker)
            text.add_special, text.parse_special = False, True
            bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
            result = mtmd_cpp.mtmd_tokenize(self._context, chunks, ctypes.byref(text), bitmaps, 1)
        finally:
            mtmd_cpp.mtmd_bitmap_free(bitmap)
        if result != 0:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            raise PromptRejectedError(f"The image could not be prepared for the model (libmtmd code {result}).")
        return chunks

    def _layout(self, image: ChatImage, chunks):
        for index in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
            chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, index)
            kind = mtmd_cpp.mtmd_input_chunk_get_type(chunk)
            if kind == _CHUNK_TEXT:
                count = ctypes.c_size_t(0)
                tokens = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                yield from (tokens[i] for i in range(count.value))
            elif kind == _CHUNK_IMAGE:
                yield ImageSpan(
                    image.sha256,
                    self.token_limit,
                    mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk),
                    mtmd_cpp.mtmd_input_chunk_get_n_pos(chunk),
                )
            else:
                raise PromptRejectedError("The projector turned the image into something other than an image.")

    def _observe(self, tensor, ask: bool, _user_data) -> bool:
        """ggml's evaluation callback: asks to see each vision layer's output, which reports
        progress and is the one place an encoding can be stopped (returning False ends it)."""
        try:
            name = ggml_tensor_name(tensor)
            if not name.startswith(_LAYER_DONE):
                return not ask  # not wanted: computed together with the nodes around it
            if ask:
                return True
            if self._on_progress is not None:
                layer = int(name[len(_LAYER_DONE):] or 0)
                self._on_progress(min(1.0, (layer + 1) / self.layers))
            return not (self._cancel is not None and self._cancel.is_set())
        except Exception:  # an exception must not unwind through ggml's C frames
            logger.exception("image encoding callback failed")
            return True
