"""Runs a Qwen3.5 GGUF model with llama.cpp: load, render the prompt, stream the reply.

The engine talks to llama.cpp's C API through llama-cpp-python's ctypes bindings rather than the
high-level ``Llama`` class, for three reasons: the per-token loop must cost next to nothing on
top of ``llama_decode`` (``Llama.eval`` costs ~15 % per token), we need the per-sequence state
API to reuse work across turns of a hybrid (recurrent) model, and we need the load-progress and
abort callbacks.

Threading: an engine is used from one thread at a time, the engine host's
(``app.core.engines.engine_host``), which also creates and frees it. The only thing another
thread may touch is the ``threading.Event`` of a request, which it sets to cancel.

State reuse across turns. Qwen3.5 mixes attention layers with recurrent (Gated-DeltaNet) layers,
and a recurrent state cannot be rolled back to an earlier position: llama.cpp can only extend what
it evaluated or start over. The chat template re-renders past turns differently from how they
were generated (reasoning dropped), so the next turn's prompt always diverges from the evaluated
tokens right after ``<|im_start|>assistant\\n``. So while evaluating each prompt, the engine
stops at the end of the part that will stay the same in the next turn's prompt (found by
rendering that next turn with placeholder text), and copies the sequence state there. The next
turn restores that copy and evaluates only the last answer and the new message; and after the
reply, :meth:`LlamaEngine.prepare_next_turn` evaluates that last answer ahead of time, while
the user types, so the next turn evaluates just the new message.

Images. With a vision projector loaded (``vision_projector``), a prompt is a sequence of tokens
and :class:`ImageSpan` items, one per picture; prefixes, snapshots and reuse work on that
sequence unchanged, so an image is encoded and evaluated once and later turns restore a state
that holds it. Positions are tracked apart from the sequence, because an image advances the
position by its M-RoPE extent, not by its token count.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import llama_cpp
import psutil

from app.core.domain.generation import (
    DEFAULT_IMAGE_DETAIL,
    IMAGE_DETAIL_TOKENS,
    NO_PROJECTOR_MESSAGE,
    ChatImage,
    ChatMessage,
    GenerationResult,
    GenerationStats,
    LoadSettings,
    ModelFacts,
    ModelLoadCancelled,
    ModelLoadError,
    ModelMemoryError,
    PromptRejectedError,
    PromptTooLongError,
    SamplingSettings,
    StopReason,
    default_batch_size,
)
from app.core.domain.model_files import gguf_file_problem
from app.core.engines.context_window import fit_to_context
from app.core.engines.llama.chat_template import (
    IMAGE_PLACEHOLDER,
    ChatTemplate,
    ChatTemplateCancelled,
    ChatTemplateError,
)
from app.core.engines.llama.projector_check import checked_projector
from app.core.engines.llama.state_files import SavedState, StateFiles, model_key
from app.core.engines.llama.vision_projector import ImageSpan, PromptItem, VisionProjector
from app.core.engines.llama.llama_runtime import LlamaLog, compiled_backend, default_thread_count, init_llama_backend
from app.core.engines.reasoning_splitter import ReasoningSplitter, prompt_opens_reasoning
from app.core.engines.tool_calls import ToolCallSplitter, parse_tool_calls

logger = logging.getLogger(__name__)

_ALL_LAYERS = 999  # llama.cpp clamps this to the model's layer count
# Of a conversation left: what its next turn, a regenerated last reply and an edited last
# question start from (each turn keeps two states; the third is the turn before's).
KEPT_STATES = 3
_PLACEHOLDER = "\u2063"  # invisible separator: text no real conversation contains


@dataclass
class _StateSnapshot:
    """A copy of sequence 0's state after evaluating exactly ``tokens`` (images included),
    after which the next position is ``position``."""

    tokens: tuple[PromptItem, ...]
    data: ctypes.Array = field(repr=False)  # the first ``size`` bytes hold the state
    size: int
    position: int
    from_file: SavedState | None = None  # read from the state files
    written: threading.Event | None = None  # set once the state files have written ``data``

    @property
    def reusable(self) -> bool:
        """Whether ``data`` may hold another state once this one is dropped: not while the
        state files are still writing it from there."""
        return self.written is None or self.written.is_set()


@dataclass(frozen=True)
class _Prompt:
    """A request's prompt as it is evaluated."""

    messages: list[ChatMessage]  # those sent: all, or the newest that fit
    items: list[PromptItem]  # its tokens, with a span for each image
    omitted: int  # how many of the oldest messages were left out
    text: str
    cells: int  # context cells ``items`` take
    images: dict[str, ChatImage]  # its images, by SHA-256


class LlamaEngine:
    """One loaded model and its context. Not thread-safe: see the module docstring."""

    def __init__(
        self, *, max_snapshots: int = 8, snapshot_budget_bytes: int | None = None, state_files: StateFiles | None = None
    ) -> None:
        """``max_snapshots`` and ``snapshot_budget_bytes`` bound the saved states kept for reuse
        (default budget: an eighth of the RAM). The newest one is always kept. Each turn keeps
        two (where its prompt stops being the next turn's, and the next turn prepared), so 8
        keep the window's chat and a few API conversations warm at once; the budget is the
        bound that matters for long contexts. ``state_files`` keeps states on disk too, for
        conversations resumed later (``keep_states``); None: in memory only."""
        self._model = None
        self._context = None
        self._vocab = None
        self._template: ChatTemplate | None = None
        self.facts: ModelFacts | None = None
        self._vision: VisionProjector | None = None
        self._evaluated: list[PromptItem] = []  # tokens (and images) whose effect sequence 0 holds
        self._position = 0  # the position of the next token in sequence 0
        self._batch = None  # a llama_batch of batch-size tokens, for prompts (explicit positions)
        self._images: dict[str, ChatImage] = {}  # the running request's, by SHA-256
        self._on_image_progress: Callable[[int, int, float], None] | None = None
        self._image_token_limit: int | None = None  # the running request's; None: as loaded
        self._reused_cells = 0  # of the last prompt evaluated: restored, not evaluated
        self._snapshots: list[_StateSnapshot] = []  # most recently used last
        self._state_files = state_files
        self._state_key = ""  # the loaded model's key among the files (state_files.model_key)
        self._on_disk: list[SavedState] = []  # the loaded model's states in files, as last looked at
        self._files_seen = 0  # state_files.files_written when they were looked at
        self._kept: set[tuple[PromptItem, ...]] = set()  # states given to the files since load
        self._typing_state: _StateSnapshot | None = None  # where the message being typed is certain
        self._logits_current = False  # the context's logits are those of ``_evaluated``'s last token
        self._spare_buffer: ctypes.Array | None = None  # an evicted snapshot's, for the next one
        self._last_tokenized: tuple[str, list[int]] | None = None
        self._last_rendered: tuple[tuple, str] | None = None  # (what was rendered, the text)
        self._last_prompt: tuple[tuple, _Prompt] | None = None  # (what it was made of, the prompt)
        self._max_snapshots = max_snapshots
        self._snapshot_budget = (
            snapshot_budget_bytes if snapshot_budget_bytes is not None else psutil.virtual_memory().total // 8
        )
        self._cancel: threading.Event | None = None
        self._tools: tuple[Mapping, ...] = ()  # offered to the model by the running request
        self._log: LlamaLog | None = None
        # Kept referenced for as long as llama.cpp may call them.
        self._abort_callback = llama_cpp.ggml_abort_callback(self._should_abort)
        self._piece_buffer = ctypes.create_string_buffer(256)

    # ----------------------------------------------------------------------------------- loading

    def load(
        self,
        path: Path,
        settings: LoadSettings = LoadSettings(),
        progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelFacts:
        """Loads ``path`` (replacing any loaded model) and returns its facts.

        ``progress`` receives 0.0 … 1.0 while llama.cpp reads the weights; setting ``cancel``
        abandons the load (raising :class:`ModelLoadCancelled`).
        """
        log = self._log = init_llama_backend()
        path = Path(path)
        _check_gguf_file(path)  # before unloading: a file that is plainly no model changes nothing
        self.unload()

        model_params = llama_cpp.llama_model_default_params()
        gpu_layers = settings.gpu_layers
        if gpu_layers is None:
            gpu_layers = _ALL_LAYERS if llama_cpp.llama_supports_gpu_offload() else 0
        model_params.n_gpu_layers = gpu_layers
        if settings.main_gpu is not None:
            model_params.split_mode = llama_cpp.LLAMA_SPLIT_MODE_NONE
            model_params.main_gpu = settings.main_gpu
        if gpu_layers == 0 or not llama_cpp.llama_supports_gpu_offload():
            # The CPU backend repacks most weights into its own faster layout, an anonymous copy.
            # Memory-mapped, the file's pages would stay resident beside that copy (~40 % of the
            # file twice, bench/README.md); read into memory instead, each byte is held once, at
            # the same speed. GPU backends keep llama.cpp's choice (mapped files feed Metal and
            # the CUDA host copies).
            model_params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
        if progress is not None or cancel is not None:
            progress_callback = llama_cpp.llama_progress_callback(
                lambda value, _data: _report_progress(progress, cancel, value)
            )
            model_params.progress_callback = progress_callback
        log.recent_errors = []
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not model and cancel is not None and cancel.is_set():
            raise ModelLoadCancelled(f"Loading “{path.name}” was cancelled.")
        if not model and _reports_allocation_failure(log):
            raise ModelMemoryError(
                f"There is not enough free memory to load “{path.name}” ({log.first_error('')}). "
                "Close other programs, or choose a smaller model or quantization."
            )
        if not model:
            raise ModelLoadError(
                f"“{path.name}” could not be loaded. The file may be damaged, incomplete or "
                f"made for a newer version of llama.cpp. ({log.first_error('llama.cpp could not read it')})"
            )
        try:
            self._open_context(model, path, settings, gpu_layers, log)
            if settings.projector is not None:
                self._open_projector(Path(settings.projector))
            self._find_saved_states(path, settings.projector)
        except Exception:
            if self._model is None:  # failed before the context took the model over
                llama_cpp.llama_model_free(model)
            self.unload()
            raise
        assert self.facts is not None
        return self.facts

    def _open_projector(self, path: Path) -> None:
        """Loads the vision projector beside the model, after checking it in Python: libmtmd
        ends the process on some damaged files instead of failing."""
        header = checked_projector(path, llama_cpp.llama_model_n_embd(self._model))
        layers = header.metadata.get("clip.vision.block_count")
        self._vision = VisionProjector(
            path,
            self._model,
            use_gpu=self.facts.gpu_layers > 0,
            threads=self.facts.threads,
            token_limit=IMAGE_DETAIL_TOKENS[DEFAULT_IMAGE_DETAIL],
            layers=layers if isinstance(layers, int) else 1,
        )
        self.facts = replace(self.facts, projector=path)

    def _open_context(self, model, path: Path, settings: LoadSettings, gpu_layers: int, log: LlamaLog) -> None:
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        trained_context = llama_cpp.llama_model_n_ctx_train(model)
        context_size = max(256, min(settings.context_size, trained_context))
        threads = settings.threads or default_thread_count()
        backend = compiled_backend()
        batch_size = settings.batch_size or default_batch_size(backend)

        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = context_size
        context_params.n_batch = batch_size
        context_params.n_ubatch = batch_size
        context_params.n_seq_max = 1
        # Only the last prompt token's logits are ever read; reserving logits for a whole batch
        # would cost batch × vocabulary floats (~490 MiB with Qwen3.5's 248k tokens).
        context_params.n_outputs_max = 1
        context_params.n_threads = threads
        context_params.n_threads_batch = threads
        context_params.no_perf = True
        log.recent_errors = []
        self._context = llama_cpp.llama_init_from_model(model, context_params)
        if not self._context:
            raise ModelMemoryError(
                f"“{path.name}” loaded, but llama.cpp could not set up a {context_size:,}-token "
                f"context for it ({log.first_error('not enough memory?')}). Try a smaller context size."
            )
        self._batch = llama_cpp.llama_batch_init(batch_size, 0, 1)

        template_source = self._metadata("tokenizer.chat_template")
        try:
            self._template = ChatTemplate(
                template_source,
                eos_token=self._token_text(llama_cpp.llama_vocab_eos(self._vocab)),
            )
            thinks_by_default = self._template.thinks_by_default()
        except ChatTemplateError as error:
            raise ModelLoadError(f"“{path.name}” cannot be used for chat: {error}") from error

        self.facts = ModelFacts(
            path=path,
            name=self._metadata("general.name") or path.stem,
            architecture=self._metadata("general.architecture"),
            size_label=self._metadata("general.size_label"),
            parameter_count=llama_cpp.llama_model_n_params(model),
            file_size=path.stat().st_size,
            trained_context=trained_context,
            context_size=llama_cpp.llama_n_ctx(self._context),
            chat_template=template_source,
            thinks_by_default=thinks_by_default,
            backend=backend,
            gpu_layers=gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0,
            threads=threads,
            batch_size=batch_size,
        )

    def unload(self) -> None:
        """Frees the model, its projector and context (safe to call when nothing is loaded),
        keeping its newest state on disk first."""
        self.keep_states()
        self._snapshots.clear()
        self._on_disk, self._kept, self._state_key, self._typing_state = [], set(), "", None
        self._spare_buffer = None
        self._last_tokenized = None
        self._last_rendered = None
        self._last_prompt = None
        self._evaluated = []
        self._position = 0
        if self._vision is not None:
            self._vision.free()
            self._vision = None
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._context:
            llama_cpp.llama_free(self._context)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._model = self._context = self._vocab = None
        self._template = None
        self.facts = None

    @property
    def is_loaded(self) -> bool:
        return self._context is not None

    # ----------------------------------------------------------------------------------- prompts

    def render_prompt(self, messages: Sequence[ChatMessage], *, enable_thinking: bool) -> str:
        return self._render(messages, enable_thinking)

    def reply_reserve(self, sampling: SamplingSettings) -> int:
        """Context kept free for the reply: its limit, but at most a quarter of the context."""
        context_size = self.facts.context_size if self.facts else 0
        return max(1, min(sampling.max_tokens, max(256, context_size // 4)))

    def fit_to_context(
        self, messages: Sequence[ChatMessage], *, enable_thinking: bool, reply_tokens: int
    ) -> tuple[list[ChatMessage], int]:
        """The messages to send so that the prompt leaves ``reply_tokens`` of the context free,
        and how many were left out (see :func:`fit_to_context`)."""
        self._require_template()
        budget = (self.facts.context_size if self.facts else 0) - reply_tokens

        def prompt_length(kept: list[ChatMessage]) -> int:
            return _cells(self._prompt_items(kept, enable_thinking))

        return fit_to_context(messages, budget, prompt_length)

    def _prompt_items(self, messages: Sequence[ChatMessage], enable_thinking: bool, suffix: str = "") -> list[PromptItem]:
        """The prompt for ``messages`` (then ``suffix``) as it is evaluated: its tokens, with the
        tokens and span of each image where the template placed it."""
        text = self._render(messages, enable_thinking) + suffix
        images = [image for message in messages for image in message.images]
        if not images:
            return self.tokenize(text)
        if self._vision is None:
            raise PromptRejectedError(NO_PROJECTOR_MESSAGE)
        vision = self._projector_for_request()
        pieces = text.split(IMAGE_PLACEHOLDER)
        if len(pieces) != len(images) + 1:
            raise PromptRejectedError("This model's chat template does not show images, so it cannot be asked about one.")
        items: list[PromptItem] = self.tokenize(pieces[0])
        for image, piece in zip(images, pieces[1:]):
            self._images[image.sha256] = image
            items.extend(vision.items(image))
            items.extend(self._tokenize(piece))
        return items

    def count_tool_tokens(self, tools: Sequence[Mapping]) -> int:
        """How many prompt tokens offering ``tools`` costs: the template's tool section."""
        template = self._require_template()
        question = [ChatMessage("user", "?")]
        with_tools = template.render(question, enable_thinking=False, tools=tools)
        without = template.render(question, enable_thinking=False)
        return max(0, len(self._tokenize(with_tools)) - len(self._tokenize(without)))

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` with special tokens (``<|im_start|>``…) parsed, no BOS added."""
        # A turn's prompt is tokenized to fit it into the context, then again to evaluate it:
        # remembering the last one saves ~10 ms per 4,000 tokens of history.
        if self._last_tokenized is not None and self._last_tokenized[0] == text:
            return list(self._last_tokenized[1])
        tokens = self._tokenize(text)
        self._last_tokenized = (text, tokens)
        return list(tokens)

    def _tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buffer = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, True)
        if count < 0:  # too small: llama.cpp returns minus the size it needs
            capacity = -count
            buffer = (llama_cpp.llama_token * capacity)()
            count = llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, True)
        return list(buffer[:count])

    # -------------------------------------------------------------------------------- generating

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        enable_thinking: bool,
        sampling: SamplingSettings,
        cancel: threading.Event,
        on_text: Callable[[str, str], None],
        on_prompt_progress: Callable[[int, int], None] | None = None,
        continuation: ChatMessage | None = None,
        tools: Sequence[Mapping] = (),
        reply_room: int | None = None,
        image_token_limit: int | None = None,
        on_image_progress: Callable[[int, int, float], None] | None = None,
        on_waiting_for_server: Callable[[], None] | None = None,  # never called: nothing waits on a server here
    ) -> GenerationResult:
        """Streams the assistant's reply to ``messages``.

        Images of the messages are read by the projector, each as at most ``image_token_limit``
        tokens (None: the bound it was last used with, at first the default detail's), and only those no saved state holds yet are
        encoded: ``on_image_progress(number, count, fraction)`` follows that, image ``number``
        (from 1) of ``count``.

        ``tools`` are offered to the model; the calls it writes are held back from
        ``on_text`` and returned in the result's ``tool_calls``. ``reply_room`` is
        :attr:`GenerationRequest.reply_room`: None fits the history to the context by leaving
        out its oldest turns; a number uses it whole or raises :class:`PromptTooLongError`.

        With ``continuation`` (an unfinished assistant turn, e.g. one stopped at the token
        limit), the model carries on writing that turn instead of starting a new one; the
        result holds only the new text.

        ``on_text(reasoning_delta, answer_delta)`` is called for each piece as it is generated;
        ``on_prompt_progress(done, total)`` after each batch of prompt tokens is evaluated.
        Setting ``cancel`` from any thread stops it within one ``llama_decode`` step, also while
        the prompt is still being evaluated. Raises :class:`PromptTooLongError` if the prompt
        leaves no room for a reply.
        """
        self._begin_request(cancel, tools, image_token_limit)
        self._on_image_progress = on_image_progress
        try:
            return self._generate(
                messages, enable_thinking, sampling, cancel, on_text, on_prompt_progress, continuation, reply_room
            )
        except ChatTemplateCancelled:  # stopped before the prompt was even ready: nothing written
            stats = GenerationStats(0, 0, 0, 0.0, 0.0, StopReason.CANCELLED)
            return GenerationResult("", "", stats)
        except ChatTemplateError as error:
            raise PromptRejectedError(str(error)) from error
        finally:
            self._end_request()

    def _begin_request(self, cancel: threading.Event, tools: Sequence[Mapping], image_token_limit: int | None) -> None:
        self._cancel = cancel  # also ends a chat template that renders too long
        self._tools = tuple(tools)
        self._image_token_limit = image_token_limit

    def _end_request(self) -> None:
        self._cancel = None
        self._tools = ()
        self._images = {}
        self._on_image_progress = None
        self._image_token_limit = None

    def _projector_for_request(self) -> VisionProjector:
        """The projector, reading images at the running request's detail."""
        limit = self._image_token_limit
        if limit is not None and self._vision.token_limit != limit:
            # libmtmd takes its image bound when the projector is loaded: load it again (the
            # file is in the page cache by now). Saved states stay usable up to their first
            # image read at the old detail: those spans no longer match.
            path, layers = self._vision.path, self._vision.layers
            self._vision.free()
            self._vision = None
            self._vision = VisionProjector(
                path, self._model, use_gpu=self.facts.gpu_layers > 0, threads=self.facts.threads,
                token_limit=limit, layers=layers,
            )
        return self._vision

    def _prompt(self, messages, enable_thinking, sampling, continuation, reply_room) -> _Prompt:
        """The prompt of a request. The last one is remembered: a message read whole while it
        was typed is sent as it stood, and for a long chat making its prompt again (fitting,
        tokenizing, counting cells) would cost more than the rest of the way to its first token."""
        key = (
            tuple(messages), enable_thinking, repr(self._tools), self.reply_reserve(sampling),
            continuation, reply_room, self._image_token_limit,
        )
        if self._last_prompt is not None and self._last_prompt[0] == key:
            prompt = self._last_prompt[1]
            self._images.update(prompt.images)
            return prompt
        prompt = self._make_prompt(messages, enable_thinking, sampling, continuation, reply_room)
        self._last_prompt = (key, prompt)
        return prompt

    def _make_prompt(self, messages, enable_thinking, sampling, continuation, reply_room) -> _Prompt:
        if reply_room is None:
            messages, omitted = self.fit_to_context(
                messages, enable_thinking=enable_thinking, reply_tokens=self.reply_reserve(sampling)
            )
        else:
            messages, omitted = list(messages), 0
        prompt = self._render(messages, enable_thinking)
        suffix = ""
        if continuation is not None:
            suffix = _written_so_far(continuation, opened_reasoning=prompt_opens_reasoning(prompt))
        prompt_tokens = self._prompt_items(messages, enable_thinking, suffix)
        prompt += suffix
        prompt_length = _cells(prompt_tokens)
        context_size = self.facts.context_size if self.facts else 0
        room = context_size - (reply_room or 0)
        if reply_room is not None and room <= 0:
            raise PromptTooLongError(
                f"A reply of up to {reply_room:,} tokens cannot fit the loaded context of {context_size:,} "
                "tokens, which holds the prompt and the reply together: ask for a shorter reply."
            )
        if reply_room is not None and prompt_length > room:
            raise PromptTooLongError(
                f"The prompt is {prompt_length:,} tokens, but the loaded context holds "
                f"{context_size:,} tokens"
                + (f" with {reply_room:,} kept for the reply" if reply_room > 1 else "")
                + f": shorten it by {prompt_length - room:,} tokens."
            )
        images = {image.sha256: self._images[image.sha256] for message in messages for image in message.images}
        return _Prompt(list(messages), prompt_tokens, omitted, prompt, prompt_length, images)

    def _generate(self, messages, enable_thinking, sampling, cancel, on_text, on_prompt_progress, continuation, reply_room):
        started = time.perf_counter()
        prompt = self._prompt(messages, enable_thinking, sampling, continuation, reply_room)
        prompt_tokens = prompt.items
        read_whole = self._logits_current and self._evaluated == prompt_tokens  # while it was typed
        splitter = ReasoningSplitter(starts_in_reasoning=prompt_opens_reasoning(prompt.text))
        calls = ToolCallSplitter(self._tools) if self._tools else None

        def emit(reasoning: str, answer: str) -> None:
            if calls is not None and answer:
                answer = calls.feed(answer)
            if reasoning or answer:
                on_text(reasoning, answer)

        evaluated_prompt_tokens = 0
        prompt_ready = False
        generated = 0
        first_token_at = generation_started = None
        stop_reason = StopReason.CANCELLED
        sampler = self._make_sampler(sampling)
        try:
            if read_whole:
                prompt_ready, self._reused_cells = True, prompt.cells
            else:
                # Where the next turn's prompt will part from this one, to keep a state there.
                stable_length = self._stable_prefix_length(prompt.messages, enable_thinking, prompt_tokens)
                evaluated_prompt_tokens, prompt_ready = self._evaluate_prompt(
                    prompt_tokens, stable_length, on_prompt_progress
                )
            generation_started = time.perf_counter()
            if prompt_ready:
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                room = llama_cpp.llama_n_ctx(self._context) - prompt.cells
                stop_reason, generated, first_token_at = self._generate_tokens(
                    sampler, sampling.max_tokens, room, cancel, decoder, splitter, emit
                )
                emit(*splitter.feed(decoder.decode(b"", final=True)))
        finally:
            llama_cpp.llama_sampler_free(sampler)
        emit(*splitter.finish())
        answer, tool_calls = splitter.answer, ()
        if calls is not None:
            rest, tool_calls = calls.finish()
            if rest:
                on_text("", rest)
            answer = calls.answer
            if not tool_calls:  # small models sometimes call a tool while still thinking
                _, tool_calls = parse_tool_calls(splitter.reasoning, self._tools)
        finished = time.perf_counter()
        decode_seconds = finished - generation_started if generation_started else 0.0
        prompt_length = prompt.cells
        if not prompt_ready:  # stopped while reading the prompt: count what got into the context
            prompt_length = self._reused_cells + evaluated_prompt_tokens
        stats = GenerationStats(
            prompt_tokens=prompt_length,
            evaluated_prompt_tokens=evaluated_prompt_tokens,
            generated_tokens=generated,
            time_to_first_token_s=(first_token_at or finished) - started,
            tokens_per_second=generated / decode_seconds if generated and decode_seconds > 0 else 0.0,
            stop_reason=stop_reason,
        )
        return GenerationResult(splitter.reasoning, answer, stats, prompt.omitted, tool_calls)

    def _generate_tokens(self, sampler, max_tokens, room, cancel, decoder, splitter, emit):
        """The hot loop: sample, detokenize, stream, decode, one token at a time, at most
        ``room`` (the context cells left after the prompt)."""
        context, vocab = self._context, self._vocab
        token_array = (llama_cpp.llama_token * 1)()
        generated = 0
        first_token_at = None
        while True:
            if cancel.is_set():
                return StopReason.CANCELLED, generated, first_token_at
            if generated >= max_tokens:
                return StopReason.MAX_TOKENS, generated, first_token_at
            token = llama_cpp.llama_sampler_sample(sampler, context, -1)
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                return StopReason.END_OF_TURN, generated, first_token_at
            generated += 1
            emit(*splitter.feed(decoder.decode(self._token_bytes(token))))
            if generated >= room:
                return StopReason.CONTEXT_FULL, generated, first_token_at
            token_array[0] = token
            # The position comes from the cache (its last one + 1): always right here, because
            # a prompt ends with text, evaluated at explicit positions.
            if llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(token_array, 1)) != 0:
                self._forget_live_state()
                raise RuntimeError("llama.cpp failed to evaluate the generated token")
            self._evaluated.append(token)
            self._position += 1
            self._logits_current = True

    # ------------------------------------------------------------------------------ state reuse

    def prepare_next_turn(
        self,
        messages: Sequence[ChatMessage],
        *,
        enable_thinking: bool,
        sampling: SamplingSettings,
        cancel: threading.Event,
        tools: Sequence[Mapping] = (),
        image_token_limit: int | None = None,
        typed: ChatMessage | None = None,
        saved_only: bool = False,
    ) -> int:
        """Evaluates now, while the user reads and types (or an API client reads the reply),
        what the next turn's prompt will start with: ``messages`` (the conversation including
        the reply just written) up to where the next user message's text begins, and, given
        ``typed`` (that message as far as it is written, with its pictures), as much of it as
        is certain already: its pictures and the tokens no continuation of its text can change. Only the state at the message's start is
        saved: an edit behind what was read starts from there; the typed part is live state,
        which the turn that sends the message goes on from. ``saved_only`` (a chat opened
        again) restores the state saved for it, from disk if need be, and evaluates nothing:
        a chat only looked at costs no computing.

        The template re-renders the last reply differently from how it was generated (its
        reasoning dropped), so without this the next turn would evaluate that whole reply before
        the new question. A state snapshot is kept at the end, so the next turn (or an edit of it)
        evaluates only the new message. Setting ``cancel`` stops it within one ``llama_decode``
        step; the states saved earlier are still there then. Returns how many tokens were
        evaluated (0 when there was nothing to gain, e.g. when the history will no longer fit
        whole: where the next turn cuts it depends on the new message's length).
        """
        if not self.is_loaded:
            return 0
        self._begin_request(cancel, tools, image_token_limit)
        try:
            evaluated = self._prepare_next_turn(messages, enable_thinking, sampling, saved_only)
            if typed is not None and not cancel.is_set():
                evaluated += self._read_typed(messages, typed, enable_thinking, sampling)
            return evaluated
        finally:
            self._end_request()

    def _prepare_next_turn(self, messages, enable_thinking, sampling, saved_only: bool = False) -> int:
        known = self._certain_prefix(messages, ChatMessage("user", ""), enable_thinking, sampling)
        if not known:
            return 0
        # The restore takes a strict prefix of what comes next: any token after ``known`` will do.
        self._restore_best_state([*known, -1])
        if self._evaluated == known or saved_only:
            return 0
        evaluated, complete = self._evaluate_prompt(known, len(known), None)
        if complete:
            self._save_snapshot()
        return evaluated

    def _read_typed(self, messages, typed: ChatMessage, enable_thinking: bool, sampling: SamplingSettings) -> int:
        known = self._certain_prefix(messages, typed, enable_thinking, sampling)
        if not known:
            return 0
        try:
            # Made as the request sending it will make it, which then finds it made.
            as_sent = self._prompt([*messages, typed], enable_thinking, sampling, None, None).items
        except (ChatTemplateError, PromptRejectedError, PromptTooLongError):
            as_sent = []
        self._restore_best_state([*known, -1])
        evaluated = 0
        if len(self._evaluated) < len(known):
            evaluated, complete = self._evaluate_prompt(known, 0, None)
            if not complete:
                return evaluated
        if self._evaluated == known and len(as_sent) > len(known) and _is_prefix(known, as_sent):
            # The rest is read too, as if the message were sent now: sent as it is, its reply
            # starts from the logits this leaves. Typing on goes back to the state kept here.
            self._keep_typing_state()
            more, _complete = self._evaluate_prompt(as_sent, 0, None)
            evaluated += more
        return evaluated

    def _keep_typing_state(self) -> None:
        """A snapshot of the message read so far, in place of the one kept at the last pause."""
        previous = self._typing_state
        if previous is not None and previous in self._snapshots:
            self._snapshots.remove(previous)
            self._recycle(previous)
        self._save_snapshot()
        tokens = tuple(self._evaluated)
        self._typing_state = next((snapshot for snapshot in self._snapshots if snapshot.tokens == tokens), None)

    def _certain_prefix(self, messages, typed: ChatMessage, enable_thinking: bool, sampling: SamplingSettings) -> list[PromptItem]:
        """The prompt tokens the next turn starts with whatever text follows ``typed``, the
        next user message so far (the tokens several unlike continuations share); empty when
        the history will not fit whole (where the next turn cuts it depends on the new
        message's length)."""
        endings = (_PLACEHOLDER, "?", "a", " ")
        try:
            first, *others = (
                self._prompt_items([*messages, replace(typed, content=typed.content + ending)], enable_thinking)
                for ending in endings
            )
            _, omitted = self.fit_to_context(
                [*messages, replace(typed, content=typed.content + _PLACEHOLDER)], enable_thinking=enable_thinking,
                reply_tokens=self.reply_reserve(sampling),
            )
        except (ChatTemplateError, PromptTooLongError, PromptRejectedError):
            return []
        if omitted:
            return []
        return first[: min(_common_prefix_length(first, other) for other in others)]

    def _stable_prefix_length(
        self, messages: Sequence[ChatMessage], enable_thinking: bool, prompt_tokens: list[int]
    ) -> int:
        """How many leading prompt tokens the *next* turn's prompt will start with as well."""
        future = list(messages) + [
            ChatMessage("assistant", _PLACEHOLDER, _PLACEHOLDER),
            ChatMessage("user", _PLACEHOLDER),
        ]
        try:
            future_tokens = self._prompt_items(future, enable_thinking)
        except (ChatTemplateError, PromptRejectedError):
            return 0
        # At least one token must stay to evaluate, so the restored state yields fresh logits.
        return min(_common_prefix_length(prompt_tokens, future_tokens), len(prompt_tokens) - 1)

    def _evaluate_prompt(
        self,
        prompt_tokens: list[PromptItem],
        stable_length: int,
        on_progress: Callable[[int, int], None] | None,
    ) -> tuple[int, bool]:
        """Brings sequence 0 to exactly ``prompt_tokens`` (tokens and images).

        Returns how many context cells were evaluated, and False if cancelled before the end.
        """
        self._restore_best_state(prompt_tokens)
        start = len(self._evaluated)
        # Evaluate up to the stable point, copy the state there, then evaluate the rest. A state
        # is also copied after each new image: asking about it in other words (editing the
        # question that shows it) then starts from there instead of reading the image again.
        image_ends = [end for end in self._image_ends(prompt_tokens) if start < end < len(prompt_tokens)]
        boundaries = sorted({*image_ends, len(prompt_tokens), *([stable_length] if stable_length > start else [])})
        batch_size = llama_cpp.llama_n_batch(self._context)
        total = _cells(prompt_tokens)
        done = first_done = self._reused_cells = _cells(self._evaluated)
        unread = [item for item in prompt_tokens[start:] if isinstance(item, ImageSpan)]
        llama_cpp.llama_set_abort_callback(self._context, self._abort_callback, None)
        try:
            index = start
            for boundary in boundaries:
                while index < boundary:
                    if self._cancel is not None and self._cancel.is_set():
                        # Between steps the state is exactly ``_evaluated``: the next request may
                        # go on from it (a message sent while it was being read as typed).
                        return done - first_done, False
                    item = prompt_tokens[index]
                    if isinstance(item, ImageSpan):
                        self._logits_current = False
                        if not self._evaluate_image(item, unread.index(item) + 1, len(unread), batch_size):
                            return done - first_done, False
                        run = [item]
                    else:
                        end = index
                        while end < min(boundary, index + batch_size) and not isinstance(prompt_tokens[end], ImageSpan):
                            end += 1
                        run = prompt_tokens[index:end]
                        result = self._decode_text(run)
                        if result != 0:
                            self._forget_live_state()
                            if result == 2:  # aborted by the cancel flag
                                return done - first_done, False
                            raise RuntimeError(f"llama.cpp failed to evaluate the prompt (code {result})")
                        self._position += len(run)
                        self._logits_current = True
                    self._evaluated.extend(run)
                    index += len(run)
                    done += _cells(run)
                    if on_progress is not None:
                        on_progress(done, total)
                if boundary < len(prompt_tokens):
                    self._save_snapshot()
        finally:
            # The abort check runs between graph nodes; one token's decode is short enough to
            # check between tokens instead, so the hot loop pays nothing for it.
            llama_cpp.llama_set_abort_callback(self._context, llama_cpp.ggml_abort_callback(), None)
            if self._log is not None:
                self._log.aborting = False
        return done - first_done, True

    def _image_ends(self, items: Sequence[PromptItem]) -> list[int]:
        """Where each image's markup in ``items`` ends: after its span and the tokens that
        close it (``<|vision_end|>``)."""
        ends = []
        for index, item in enumerate(items):
            if isinstance(item, ImageSpan):
                layout = self._vision.items(self._images[item.sha256])
                ends.append(index + len(layout) - layout.index(item))
        return ends

    def _decode_text(self, tokens: Sequence[int]) -> int:
        """Evaluates ``tokens`` at explicit positions from ``self._position`` (after an image
        the cache's last position + 1 is not the next one); llama_decode's result."""
        batch = self._batch
        batch.n_tokens = len(tokens)
        for offset, token in enumerate(tokens):
            batch.token[offset] = token
            batch.pos[offset] = self._position + offset
            batch.n_seq_id[offset] = 1
            batch.seq_id[offset][0] = 0
            batch.logits[offset] = 0
        batch.logits[len(tokens) - 1] = 1  # only the last prompt token's logits are ever read
        return llama_cpp.llama_decode(self._context, batch)

    def _evaluate_image(self, span: ImageSpan, number: int, count: int, batch_size: int) -> bool:
        """Encodes and evaluates one image; False when cancelled (the live state is gone)."""
        report = self._on_image_progress

        def on_progress(fraction: float) -> None:
            if report is not None:
                report(number, count, fraction)

        on_progress(0.0)
        try:
            position = self._vision.evaluate(
                self._images[span.sha256], span, self._context, self._position, batch_size, self._cancel, on_progress
            )
        except Exception:
            self._forget_live_state()
            raise
        if position is None:
            self._forget_live_state()
            return False
        self._position = position
        return True

    def _restore_best_state(self, prompt_tokens: list[int]) -> None:
        """Starts from the longest held state that is a strict prefix of ``prompt_tokens``, or
        from the live state when it is exactly ``prompt_tokens`` with their logits still there
        (a message read whole while it was typed: its reply starts without evaluating)."""
        live_usable = _is_prefix(self._evaluated, prompt_tokens) and (
            len(self._evaluated) < len(prompt_tokens) or (self._logits_current and len(self._evaluated) == len(prompt_tokens))
        )
        best_live = len(self._evaluated) if live_usable else 0
        candidates = [
            snapshot
            for snapshot in self._snapshots
            if len(snapshot.tokens) < len(prompt_tokens) and _is_prefix(snapshot.tokens, prompt_tokens)
        ]
        best = max(candidates, key=lambda snapshot: len(snapshot.tokens), default=None)
        held = max(best_live, len(best.tokens) if best is not None else 0)
        best = self._state_from_disk(prompt_tokens, held) or best
        if best is not None and len(best.tokens) > best_live:
            memory = llama_cpp.llama_get_memory(self._context)
            llama_cpp.llama_memory_clear(memory, True)
            written = llama_cpp.llama_state_seq_set_data(self._context, best.data, best.size, 0)
            self._logits_current = False  # a saved state holds no logits
            if written:
                self._evaluated = list(best.tokens)
                self._position = best.position
                self._snapshots.remove(best)
                self._snapshots.append(best)
                return
            logger.warning("llama.cpp rejected a saved state; evaluating the prompt from the start")
            self._snapshots.remove(best)
            if best.from_file is not None:
                self._state_files.forget(best.from_file)
            self._forget_live_state()
        elif not live_usable:
            self._forget_live_state()

    def keep_states(self) -> None:
        """Gives the newest saved states to the state files, to be written in the background:
        the conversation they belong to resumes from them later, also after a restart (its next
        question, its last reply regenerated, its last question edited)."""
        if self._state_files is None or not self._state_key:
            return
        for snapshot in self._snapshots[-KEPT_STATES:]:
            if snapshot.tokens not in self._kept:
                self._kept.add(snapshot.tokens)
                data = memoryview(snapshot.data)[: snapshot.size]
                snapshot.written = self._state_files.save(self._state_key, snapshot.tokens, snapshot.position, data)

    def _find_saved_states(self, path: Path, projector: Path | None) -> None:
        if self._state_files is None:
            return
        self._state_key = model_key(path, projector, llama_cpp.llama_n_ctx(self._context), llama_cpp.__version__)
        self._look_at_files()

    def _look_at_files(self) -> None:
        self._files_seen = self._state_files.files_written
        self._on_disk = self._state_files.saved(self._state_key)

    def _state_from_disk(self, prompt_tokens: list[PromptItem], held: int) -> _StateSnapshot | None:
        """The longest state on disk that is a strict prefix of ``prompt_tokens`` and longer
        than ``held``, read and checked, as a snapshot; None when there is none."""
        if self._state_files is None:
            return None
        if self._state_files.files_written != self._files_seen:
            # States kept this session may have left memory since: their files are still there.
            self._look_at_files()
        usable = [
            state for state in self._on_disk
            if held < len(state.tokens) < len(prompt_tokens) and _is_prefix(state.tokens, prompt_tokens)
        ]
        for state in sorted(usable, key=lambda state: len(state.tokens), reverse=True):
            buffer = self._state_buffer(state.size)
            self._on_disk.remove(state)  # from now on it is a snapshot in memory, or gone
            if self._state_files.read_into(state, buffer):
                snapshot = _StateSnapshot(state.tokens, buffer, state.size, state.position, state)
                self._snapshots.append(snapshot)
                self._kept.add(state.tokens)  # it is on disk already
                return snapshot
            self._spare_buffer = buffer
        return None

    def _save_snapshot(self) -> None:
        tokens = tuple(self._evaluated)
        if any(snapshot.tokens == tokens for snapshot in self._snapshots):
            return
        size = llama_cpp.llama_state_seq_get_size(self._context, 0)
        data = self._state_buffer(size)
        if llama_cpp.llama_state_seq_get_data(self._context, data, size, 0) != size:
            logger.warning("llama.cpp could not copy the sequence state; the next turn starts over")
            return
        self._snapshots.append(_StateSnapshot(tokens, data, size, self._position))
        while len(self._snapshots) > 1 and (
            len(self._snapshots) > self._max_snapshots or self.saved_state_bytes > self._snapshot_budget
        ):
            self._recycle(self._snapshots.pop(0))  # least recently used first
        if self.saved_state_bytes > self._snapshot_budget:
            self._spare_buffer = None

    def _recycle(self, dropped: _StateSnapshot) -> None:
        """Keeps a dropped snapshot's memory for the next one, when nothing reads it anymore."""
        if dropped.reusable:
            self._spare_buffer = dropped.data

    def _state_buffer(self, size: int) -> ctypes.Array:
        """Memory for a state of ``size`` bytes: the last evicted snapshot's when it is big enough.

        New memory costs more than the copy itself: the system zeroes every page on first touch
        (~50 ms for the 69 MB state of a 4,000-token 0.8B chat, on the critical path of the reply).
        New buffers get a quarter more room, so the slightly larger states of later turns fit.
        """
        spare, self._spare_buffer = self._spare_buffer, None
        if spare is not None and len(spare) >= size:
            return spare
        return (ctypes.c_uint8 * (size + size // 4))()

    @property
    def saved_state_bytes(self) -> int:
        """Memory held by the states saved for reuse in later turns."""
        spare = len(self._spare_buffer) if self._spare_buffer is not None else 0
        return spare + sum(len(snapshot.data) for snapshot in self._snapshots)

    def _forget_live_state(self) -> None:
        if self._context:
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._context), True)
        self._evaluated = []
        self._position = 0
        self._logits_current = False

    # ----------------------------------------------------------------------------------- helpers

    def _should_abort(self, _data) -> bool:
        cancel = self._cancel
        if cancel is not None and cancel.is_set():
            if self._log is not None:
                self._log.aborting = True
            return True
        return False

    def _make_sampler(self, sampling: SamplingSettings):
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

        def add(sampler) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)

        if sampling.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return chain
        # top-k first keeps the penalty pass over 20 candidates, not the 248k-token vocabulary.
        add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
        if sampling.presence_penalty:
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            add(llama_cpp.llama_sampler_init_penalties(n_vocab, 256, 1.0, 0.0, sampling.presence_penalty))
        add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
        seed = sampling.seed if sampling.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
        add(llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def _token_bytes(self, token: int) -> bytes:
        buffer = self._piece_buffer
        length = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, True)
        if length < 0:
            self._piece_buffer = buffer = ctypes.create_string_buffer(-length)
            length = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[:length]

    def _token_text(self, token: int) -> str:
        return self._token_bytes(token).decode("utf-8", "replace") if token >= 0 else ""

    def _metadata(self, key: str) -> str:
        size = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), None, 0)
        if size < 0:
            return ""
        buffer = ctypes.create_string_buffer(size + 1)
        llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, size + 1)
        return buffer.value.decode("utf-8", "replace")

    def _render(self, messages: Sequence[ChatMessage], enable_thinking: bool) -> str:
        """The prompt for ``messages`` with the running request's tools; its cancel flag also
        stops the template. The last one is remembered: a turn renders the prompt its
        preparation (or fitting it to the context) just rendered, and for a long chat each
        rendering costs milliseconds on the way to the first token."""
        key = (tuple(messages), enable_thinking, repr(self._tools))
        if self._last_rendered is not None and self._last_rendered[0] == key:
            return self._last_rendered[1]
        text = self._require_template().render(
            messages, enable_thinking=enable_thinking, cancel=self._cancel, tools=self._tools
        )
        self._last_rendered = (key, text)
        return text

    def _require_template(self) -> ChatTemplate:
        if self._template is None:
            raise RuntimeError("No model is loaded.")
        return self._template


def _written_so_far(turn: ChatMessage, *, opened_reasoning: bool) -> str:
    """An unfinished assistant turn as the model wrote it after the generation prompt."""
    if not turn.reasoning:
        return turn.content
    if opened_reasoning:  # the prompt already holds "<think>\n"
        return f"{turn.reasoning}\n</think>\n\n{turn.content}" if turn.content else turn.reasoning
    return f"<think>\n{turn.reasoning}\n</think>\n\n{turn.content}"


def _report_progress(
    progress: Callable[[float], None] | None, cancel: threading.Event | None, value: float
) -> bool:
    """llama.cpp's progress callback: returning False abandons the load."""
    if progress is not None:
        try:
            progress(float(value))
        except Exception:  # an exception must not unwind through llama.cpp's C frames
            logger.exception("load progress callback failed")
    return not (cancel is not None and cancel.is_set())


def _reports_allocation_failure(log: LlamaLog) -> bool:
    """Whether llama.cpp's recent errors say memory ran out ("unable to allocate CPU buffer",
    "failed to allocate buffer for kv cache"…), rather than that the file is bad."""
    return any("allocate" in line or "out of memory" in line.lower() for line in log.recent_errors)


def _check_gguf_file(path: Path) -> None:
    """Clear messages for the common user mistakes, before llama.cpp sees the file."""
    problem = gguf_file_problem(path)
    if problem is not None:
        raise ModelLoadError(problem)


def _cells(items: Sequence[PromptItem]) -> int:
    """Context cells ``items`` take: one per token, an image's token count for an image."""
    return sum(item.tokens if isinstance(item, ImageSpan) else 1 for item in items)


def _is_prefix(prefix: Sequence[int], tokens: Sequence[int]) -> bool:
    return len(prefix) <= len(tokens) and list(tokens[: len(prefix)]) == list(prefix)


def _common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    length = 0
    for a, b in zip(first, second):
        if a != b:
            break
        length += 1
    return length
