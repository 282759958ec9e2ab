"""A chat template is untrusted code: it may not run forever, fill the memory or crash the app."""

from __future__ import annotations

import threading

import pytest

from app.core.domain.generation import ChatMessage
from app.core.engines.llama.chat_template import ChatTemplate, ChatTemplateCancelled, ChatTemplateError
from app.core.engines.llama.self_test_model import CHAT_TEMPLATE_THINKS_BY_DEFAULT

CONVERSATION = [ChatMessage("user", "Hello")]

HOSTILE_TEMPLATES = {
    "nested huge loops": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "takes too long to render"
    ),
    "a prompt of billions of characters": (
        "{% for a in range(100000) %}{% for b in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        "writes a prompt too long to use",
    ),
    "a string doubled a hundred times": (
        "{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
        "builds a value too large",
    ),
    "string repetition": ("{{ 'a' * 10**10 }}", "builds a value too large"),
    "a tower of powers": ("{{ 10**10**10 }}", "computes a number too large"),
    "a padding method": ("{{ 'a'.ljust(10**10) }}", "asks for a value too large"),
    "a padding filter": ("{{ 'a'|center(10**10) }}", "asks for a value too large"),
    "a huge printf width": ("{{ '%0999999999d' % 1 }}", "asks for a value too large"),
    "a huge format width": ("{{ '{:999999999}'.format(1) }}", "asks for a value too large"),
    "endless recursion": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recurses too deeply"),
}


@pytest.mark.parametrize("source, reason", HOSTILE_TEMPLATES.values(), ids=HOSTILE_TEMPLATES.keys())
def test_a_hostile_template_fails_with_a_reason_instead_of_hanging_or_filling_memory(source, reason) -> None:
    with pytest.raises(ChatTemplateError, match=reason):
        ChatTemplate(source).render(CONVERSATION, enable_thinking=True)


def test_a_huge_value_in_a_branch_never_taken_is_not_computed_while_compiling() -> None:
    template = ChatTemplate("{% if false %}{{ 'a' * 10**10 }}{{ 'b'|center(10**10) }}{% endif %}ok")
    assert template.render(CONVERSATION, enable_thinking=True) == "ok"


def test_a_template_nested_too_deeply_to_compile_is_refused() -> None:
    with pytest.raises(ChatTemplateError, match="nests too deeply"):
        ChatTemplate("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}")


def test_the_cancel_flag_stops_a_template_that_is_rendering() -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ChatTemplateCancelled):
        ChatTemplate(HOSTILE_TEMPLATES["nested huge loops"][0]).render(CONVERSATION, enable_thinking=True, cancel=cancel)


def test_ordinary_formatting_and_arithmetic_still_work() -> None:
    template = ChatTemplate("{{ '%3d|' % 7 }}{{ '{:>4}'.format('ab') }}|{{ 'x' * 3 }}|{{ 2 ** 10 }}|{{ 'a'|center(5) }}|")
    assert template.render(CONVERSATION, enable_thinking=True) == "  7|  ab|xxx|1024|  a  |"


def test_a_qwen_style_template_renders_as_before() -> None:
    prompt = ChatTemplate(CHAT_TEMPLATE_THINKS_BY_DEFAULT).render(CONVERSATION, enable_thinking=True)
    assert prompt.startswith("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
