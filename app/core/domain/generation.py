"""What a reply is asked with and what comes back: the values every engine and client share.

Plain values only: nothing here loads a native library, so the fit estimate, settings, the chat
session and a remote engine can use them without llama.cpp.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class StopReason(StrEnum):
    """Why generation of a reply ended."""

    END_OF_TURN = "end_of_turn"  # the model emitted an end-of-generation token such as <|im_end|>
    MAX_TOKENS = "max_tokens"  # the reply reached the max-token limit
    CONTEXT_FULL = "context_full"  # the context window has no room for another token
    CANCELLED = "cancelled"  # the user (or shutdown) asked it to stop
    CONNECTION_LOST = "connection_lost"  # the model server stopped answering mid-reply


@dataclass(frozen=True)
class GenerationStats:
    """What one reply cost.

    ``evaluated_prompt_tokens`` is how many of the ``prompt_tokens`` the engine actually had to
    process; the rest were reused from the state kept since the previous turn.
    """

    prompt_tokens: int
    evaluated_prompt_tokens: int
    generated_tokens: int
    time_to_first_token_s: float
    tokens_per_second: float
    stop_reason: StopReason


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling parameters; defaults are the Qwen3.5 model card's non-thinking text preset."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 20
    min_p: float = 0.0
    presence_penalty: float = 2.0
    frequency_penalty: float = 0.0
    max_tokens: int = 32768
    seed: int | None = None

    @classmethod
    def for_mode(cls, *, thinking: bool, max_tokens: int = 32768, images: bool = False) -> SamplingSettings:
        """The model card's recommended preset for thinking or non-thinking mode; ``images``
        picks its vision preset for non-thinking turns that show the model a picture."""
        if thinking:
            return cls(top_p=0.95, presence_penalty=1.5, max_tokens=max_tokens)
        if images:
            return cls(temperature=0.7, top_p=0.8, presence_penalty=1.5, max_tokens=max_tokens)
        return cls(max_tokens=max_tokens)


def default_batch_size(backend: str) -> int:
    """Prompt tokens per ``llama_decode`` call (also llama.cpp's micro-batch) on ``backend``.

    On a CPU 256 evaluates prompts as fast as any size (bench/README.md: 97 tok/s against 90 for
    512 and 91 for 128 on a 512-token prompt, 0.8B Q4_K_M, 2 cores) with half the compute buffer
    of 512 (25 vs 50 MiB). GPUs want large batches, so they keep llama.cpp's own 512 (no GPU was
    available to measure more).
    """
    return 256 if backend == "CPU" else 512


@dataclass(frozen=True)
class LoadSettings:
    """How to load a model. ``gpu_layers=None`` offloads every layer when a GPU backend exists;
    ``batch_size=None`` takes :func:`default_batch_size` for the backend the engine runs on.
    ``projector`` is the vision projector (``mmproj-*.gguf``) to load beside the model, so that
    it reads images; None: text only."""

    context_size: int = 8192
    gpu_layers: int | None = None
    threads: int | None = None
    batch_size: int | None = None
    main_gpu: int | None = None  # one GPU (ggml's device index) holds the model; None: split over all
    projector: Path | None = None


# How many image tokens one picture may become, by the "image detail" setting. Tokens cost time
# twice, to encode and then to evaluate (a 640×480 photo is 300 tokens, ~11 s with 0.8B on one
# CPU core, bench/README.md), so a CPU user can trade detail for speed. "high" is libmtmd's own
# bound for Qwen's projectors.
IMAGE_DETAIL_TOKENS = {"low": 256, "standard": 1024, "high": 4096}
DEFAULT_IMAGE_DETAIL = "standard"
NO_PROJECTOR_MESSAGE = (
    "The loaded model cannot read images: its image support file (mmproj) is not loaded. "
    "Add it to this model in Models, then ask again."
)


@dataclass(frozen=True)
class RemoteModel:
    """A model that runs on a model server (Settings › Model servers): the server's name there
    and the model's id on that server. Only names: the address and key stay with the server."""

    server: str
    model_id: str


ModelSource = Path | RemoteModel
"""What can be loaded: a GGUF file on this computer, or a model on a model server."""


@dataclass(frozen=True)
class ModelFacts:
    """What the loaded model is and how it runs. A model on a model server has no ``path`` but
    ``remote``, and only what its server says: a ``context_size`` or ``trained_context`` of 0
    is one it did not say; ``backend`` names the server, and the thread and GPU figures are 0."""

    path: Path | None
    name: str
    architecture: str
    size_label: str
    parameter_count: int
    file_size: int
    trained_context: int
    context_size: int
    chat_template: str
    thinks_by_default: bool
    backend: str
    gpu_layers: int
    threads: int
    batch_size: int
    projector: Path | None = None  # the vision projector loaded with it: the model reads images
    remote: RemoteModel | None = None  # where it runs when not on this computer
    server_address: str = ""  # the model server's host (and port), as the person may know it
    leaves_this_computer: bool = False  # the server is elsewhere: messages go over the network
    server_reads_images: bool = False  # the server says this model takes pictures

    @property
    def reads_images(self) -> bool:
        return self.projector is not None or self.server_reads_images

    @property
    def source(self) -> ModelSource:
        """What to load to have this model again."""
        if self.remote is not None:
            return self.remote
        assert self.path is not None
        return self.path


@dataclass(frozen=True)
class ChatImage:
    """A picture shown to the model with a message: its encoded bytes (PNG, JPEG, WebP, GIF or
    BMP, already checked and scaled by ``app.core.images.image_intake``) and their SHA-256,
    which names it in saved states, so a picture evaluated once is recognised in later turns."""

    sha256: str
    data: bytes = field(compare=False, repr=False)


@dataclass(frozen=True)
class ToolCall:
    """A function the model asks its client to call. ``arguments`` is the text of a JSON object
    (as OpenAI's API carries it); ``id`` pairs the call with the ``tool`` message answering it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One turn as the model sees it; ``reasoning`` is an assistant turn's thinking text.

    An assistant turn may carry ``tool_calls``; a ``tool`` turn is the result of the call
    ``tool_call_id``, in ``content``. A user turn may show ``images``, which the model sees
    before its text."""

    role: str
    content: str
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    images: tuple[ChatImage, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    """One reply to generate. Set ``cancel`` (from any thread) to stop it.

    ``continuation`` is an unfinished assistant turn to carry on writing instead of starting a
    new one (a reply stopped at its length limit). ``tools`` are the functions the model may
    call, as JSON-schema definitions in OpenAI's form (``{"type": "function", "function": …}``).

    ``reply_room`` decides what happens to a conversation too long for the context. None (the
    chat window): its oldest turns are left out until a reply fits. A number (the local API,
    whose clients manage their own history): the prompt is used whole, and refused with
    ``PromptTooLongError`` unless that many tokens fit after it.

    ``image_token_limit`` bounds the tokens each image of the messages becomes (see
    ``IMAGE_DETAIL_TOKENS``); None: the bound the engine last read images with.
    """

    messages: tuple[ChatMessage, ...]
    enable_thinking: bool
    sampling: SamplingSettings
    continuation: ChatMessage | None = None
    tools: tuple[Mapping, ...] = ()
    reply_room: int | None = None
    image_token_limit: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass(frozen=True)
class GenerationResult:
    reasoning: str
    answer: str
    stats: GenerationStats
    omitted_messages: int = 0  # oldest messages left out of the prompt so that it fit the context
    tool_calls: tuple[ToolCall, ...] = ()  # functions the reply asks to call (its answer holds the rest)
    problem: str = ""  # why it ended early (StopReason.CONNECTION_LOST), for the user


class ModelLoadError(Exception):
    """The model file could not be loaded; the message is written for the user."""


class ModelLoadCancelled(ModelLoadError):
    """Loading was abandoned because its cancel flag was set."""


@dataclass(frozen=True)
class MemoryShortfall:
    """The estimate of a model that does not fit in the memory free now, and the way out."""

    needed_bytes: int
    available_bytes: int
    fitting_context: int  # the largest context it would fit with (0: none)


class ModelWontFitError(ModelLoadError):
    """Refused before loading: the estimate says the model does not fit in the free memory."""

    def __init__(self, message: str, shortfall: MemoryShortfall) -> None:
        super().__init__(message)
        self.shortfall = shortfall


class ModelMemoryError(ModelLoadError):
    """llama.cpp could not allocate what the model or its context needs: the memory, not the
    file, is the problem."""


class PromptTooLongError(Exception):
    """The rendered prompt does not leave room for a reply in the context window; the message
    says by how much where the engine knows."""


class GenerationError(Exception):
    """No reply could be written (a model server could not be reached, refused, failed…); the
    message is one sentence for the user."""


class PromptRejectedError(Exception):
    """The model's chat template refuses this conversation (a system message in the middle, no
    question at all…): the request is at fault, not the engine. The message says why."""
