"""Renders a conversation into prompt text with the model's own Jinja chat template.

Why not llama-cpp-python's ``Jinja2ChatFormatter``: it never passes ``enable_thinking`` to the
template, and Qwen3.5's templates decide whether the model thinks from exactly that variable.
The template comes from the GGUF file (untrusted input), so it runs in Jinja's sandbox, with
bounds of our own on top (``_BoundedSandbox``): the sandbox stops a template from reaching Python's
internals, not from running forever or filling the memory.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from datetime import datetime
from typing import Any, Sequence

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.domain.generation import ChatMessage
from app.core.engines.reasoning_splitter import prompt_opens_reasoning


RENDER_SECONDS = 2.0  # a real template renders a long chat in milliseconds
MAX_OUTPUT_CHARACTERS = 16 * 1024 * 1024  # a prompt beyond this cannot fit any context anyway
MAX_VALUE_SIZE = MAX_OUTPUT_CHARACTERS  # the longest string or list an operation may build
MAX_INTEGER_BITS = 256  # templates count messages; they have no use for astronomic numbers


# A field width of nine digits or more in a format string ("%0999999999d", "{:999999999}"):
# formatting would build a string of that many characters before any size check could see it.
_HUGE_FORMAT_WIDTH = re.compile(r"(?:%[-+ #0]*|\{[^{}]*:[^{}0-9]*)\d{9,}")


class ChatTemplateError(Exception):
    """The model's chat template is missing or cannot render this conversation."""


class ChatTemplateCancelled(ChatTemplateError):
    """Rendering stopped because the request's cancel flag was set."""


class _Bounds:
    """The limits of one render: its deadline and the cancel flag that also ends it."""

    def __init__(self) -> None:
        self.deadline = float("inf")
        self.cancel: threading.Event | None = None

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise ChatTemplateError(f"The model's chat template takes too long to render (over {RENDER_SECONDS:g} s).")
        if self.cancel is not None and self.cancel.is_set():
            raise ChatTemplateCancelled("Rendering the chat template was cancelled.")


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_VALUE_SIZE:
        raise ChatTemplateError("The model's chat template builds a value too large to render.")
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise ChatTemplateError("The model's chat template computes a number too large to render.")
    return value


def _check_arguments(arguments: Sequence[Any]) -> None:
    """Refuses numbers that would make a string method or filter build a huge value
    (``"a".ljust(10**10)``, ``"x"|center(10**10)``) before it runs."""
    for argument in arguments:
        if isinstance(argument, str) and _HUGE_FORMAT_WIDTH.search(argument):
            raise ChatTemplateError("The model's chat template asks for a value too large to render.")
        if isinstance(argument, int) and not isinstance(argument, bool) and abs(argument) > MAX_VALUE_SIZE:
            raise ChatTemplateError("The model's chat template asks for a value too large to render.")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox with a deadline, size limits and no compile-time folding of large values.

    Every call, attribute or item access and arithmetic operation passes here, so a loop that
    does anything at all meets the deadline check; the sandbox already caps ``range`` at
    ``MAX_RANGE`` items, which bounds the loops that do nothing. Intercepting the operators also
    keeps Jinja from folding them at compile time (it folds constants even in branches never
    taken, so ``'a' * 10**10`` would be computed while compiling).
    """

    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})

    def __init__(self, bounds: _Bounds, **options: Any) -> None:
        super().__init__(**options)
        self.bounds = bounds
        for name, function in list(self.filters.items()):
            self.filters[name] = _bounded_filter(function)

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        self.bounds.check()
        if operator_name == "*":
            sequence, count = (right, left) if isinstance(left, int) else (left, right)
            if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and len(sequence) * count > MAX_VALUE_SIZE:
                raise ChatTemplateError("The model's chat template builds a value too large to render.")
        if operator_name == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and right * max(abs(left).bit_length(), 1) > MAX_INTEGER_BITS:
                raise ChatTemplateError("The model's chat template computes a number too large to render.")
        if operator_name == "+" and isinstance(left, (str, list)) and isinstance(right, (str, list)):
            if len(left) + len(right) > MAX_VALUE_SIZE:
                raise ChatTemplateError("The model's chat template builds a value too large to render.")
        if operator_name == "%" and isinstance(left, str):
            _check_arguments((left, *(right if isinstance(right, tuple) else (right,))))
        return _check_size(super().call_binop(context, operator_name, left, right))

    def call(self, __context, __obj, *args: Any, **kwargs: Any) -> Any:
        self.bounds.check()
        _check_arguments(args)
        _check_arguments(tuple(kwargs.values()))
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.bounds.check()
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            _check_arguments((obj,))  # the widths are in the string, not in the arguments
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.bounds.check()
        return super().getitem(obj, argument)


def _bounded_filter(function):
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args)
        _check_arguments(tuple(kwargs.values()))
        return _check_size(function(*args, **kwargs))

    return bounded


# What Qwen's templates write for each image of a message (Qwen2-VL … Qwen3.5 alike).
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def _template_message(message: ChatMessage) -> dict[str, Any]:
    # A message with images is a list of parts, as Hugging Face's processors pass it: the
    # images first, then the text.
    content: Any = message.content
    if message.images:
        content = [{"type": "image"} for _ in message.images] + [{"type": "text", "text": message.content}]
    rendered: dict[str, Any] = {"role": message.role, "content": content}
    if message.role == "assistant":
        # Qwen templates read reasoning from `reasoning_content` and keep it only where the
        # model needs it (after the last user query); elsewhere they drop it themselves.
        rendered["reasoning_content"] = message.reasoning
        if message.tool_calls:
            rendered["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": _arguments(call.arguments)}}
                for call in message.tool_calls
            ]
    if message.role == "tool" and message.tool_call_id:
        rendered["tool_call_id"] = message.tool_call_id
    return rendered


def _arguments(text: str) -> dict[str, Any]:
    """A call's arguments as the mapping Qwen templates iterate (``arguments|items``): the API
    carries them as JSON text, and a template given that text fails."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _raise_exception(message: str) -> None:
    # Templates call raise_exception() to reject conversations they cannot render.
    raise ChatTemplateError(message)


def _to_json(value: Any, indent: int | None = None, **_: Any) -> str:
    # Jinja's own tojson escapes <, > and & for HTML; chat templates need plain JSON.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(format_string: str) -> str:
    return datetime.now().strftime(format_string)


class ChatTemplate:
    """A compiled chat template; ``render`` is pure and cheap, so call it freely."""

    def __init__(self, source: str, *, eos_token: str = "", bos_token: str = "") -> None:
        if not source.strip():
            raise ChatTemplateError("The model file has no chat template.")
        # The same environment Hugging Face's tokenizers render chat templates with, so prompts
        # match what the model was trained on.
        self._bounds = _Bounds()
        environment = _BoundedSandbox(self._bounds, trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        environment.filters["tojson"] = _to_json
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = _strftime_now
        try:
            self._template = environment.from_string(source)
        except (TemplateError, ChatTemplateError) as error:
            raise ChatTemplateError(f"The model's chat template is invalid: {error}") from error
        except RecursionError:
            raise ChatTemplateError("The model's chat template nests too deeply to compile.") from None
        except Exception as error:  # untrusted code: whatever compiling it raises is its fault
            raise ChatTemplateError(f"The model's chat template cannot be compiled: {error}") from error
        self._special_tokens = {"eos_token": eos_token, "bos_token": bos_token}

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        enable_thinking: bool | None,
        add_generation_prompt: bool = True,
        cancel: threading.Event | None = None,
        tools: Sequence[Any] = (),
    ) -> str:
        """The prompt text. ``enable_thinking=None`` leaves the variable undefined (template
        default); ``tools`` (function definitions) are offered to the model. Raises ``ChatTemplateError`` when the template fails, runs past
        ``RENDER_SECONDS``, writes more than ``MAX_OUTPUT_CHARACTERS`` or ``cancel`` is set."""
        variables: dict[str, Any] = {
            "messages": [_template_message(message) for message in messages],
            "add_generation_prompt": add_generation_prompt,
            **self._special_tokens,
        }
        if enable_thinking is not None:
            variables["enable_thinking"] = enable_thinking
        if tools:
            variables["tools"] = list(tools)
        self._bounds.deadline = time.monotonic() + RENDER_SECONDS
        self._bounds.cancel = cancel
        try:
            return self._bounded_output(variables)
        except ChatTemplateError:
            raise
        except RecursionError:
            raise ChatTemplateError("The model's chat template recurses too deeply.") from None
        except MemoryError:
            raise ChatTemplateError("The model's chat template needs more memory than there is.") from None
        except Exception as error:  # the template is untrusted code: any failure is its failure
            raise ChatTemplateError(f"The model's chat template failed: {error}") from error
        finally:
            self._bounds.deadline, self._bounds.cancel = float("inf"), None

    def _bounded_output(self, variables: dict[str, Any]) -> str:
        pieces, length = [], 0
        for piece in self._template.generate(**variables):
            length += len(piece)
            if length > MAX_OUTPUT_CHARACTERS:
                raise ChatTemplateError("The model's chat template writes a prompt too long to use.")
            self._bounds.check()
            pieces.append(piece)
        return "".join(pieces)

    def thinks_by_default(self) -> bool:
        """Whether the model thinks when ``enable_thinking`` is not given.

        Qwen3.5 4B/9B templates open a ``<think>`` block by default; 0.8B/2B do not. Reading it
        off the template's own output is more reliable than guessing from the model size.
        """
        prompt = self.render([ChatMessage("user", "x")], enable_thinking=None)
        return prompt_opens_reasoning(prompt)
