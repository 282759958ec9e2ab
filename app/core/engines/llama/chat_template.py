"""Renders a conversation into prompt text with the model's own Jinja chat template.

Why not llama-cpp-python's ``Jinja2ChatFormatter``: it never passes ``enable_thinking`` to the
template, and Qwen3.5's templates decide whether the model thinks from exactly that variable.
The template comes from the GGUF file (untrusted input), so it runs in Jinja's sandbox.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Sequence

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.domain.generation import ChatMessage
from app.core.engines.reasoning_splitter import prompt_opens_reasoning


class ChatTemplateError(Exception):
    """The model's chat template is missing or cannot render this conversation."""


def _template_message(message: ChatMessage) -> dict[str, str]:
    rendered = {"role": message.role, "content": message.content}
    if message.role == "assistant":
        # Qwen templates read reasoning from `reasoning_content` and keep it only where the
        # model needs it (after the last user query); elsewhere they drop it themselves.
        rendered["reasoning_content"] = message.reasoning
    return rendered


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
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        environment.filters["tojson"] = _to_json
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = _strftime_now
        try:
            self._template = environment.from_string(source)
        except TemplateError as error:
            raise ChatTemplateError(f"The model's chat template is invalid: {error}") from error
        self._special_tokens = {"eos_token": eos_token, "bos_token": bos_token}

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        enable_thinking: bool | None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text. ``enable_thinking=None`` leaves the variable undefined (template default)."""
        variables: dict[str, Any] = {
            "messages": [_template_message(message) for message in messages],
            "add_generation_prompt": add_generation_prompt,
            **self._special_tokens,
        }
        if enable_thinking is not None:
            variables["enable_thinking"] = enable_thinking
        try:
            return self._template.render(**variables)
        except ChatTemplateError:
            raise
        except Exception as error:  # the template is untrusted code: any failure is its failure
            raise ChatTemplateError(f"The model's chat template failed: {error}") from error

    def thinks_by_default(self) -> bool:
        """Whether the model thinks when ``enable_thinking`` is not given.

        Qwen3.5 4B/9B templates open a ``<think>`` block by default; 0.8B/2B do not. Reading it
        off the template's own output is more reliable than guessing from the model size.
        """
        prompt = self.render([ChatMessage("user", "x")], enable_thinking=None)
        return prompt_opens_reasoning(prompt)
