"""Streaming split of <think> reasoning from the answer, whatever the piece boundaries."""

from __future__ import annotations

import pytest

from app.core.engines.reasoning_splitter import ReasoningSplitter

THINKING_REPLY = "\nLet me think about <b>it</b>.\n</think>\n\nThe answer is 42."


def _split(pieces: list[str], *, starts_in_reasoning: bool) -> tuple[str, str]:
    splitter = ReasoningSplitter(starts_in_reasoning=starts_in_reasoning)
    for piece in pieces:
        splitter.feed(piece)
    splitter.finish()
    return splitter.reasoning, splitter.answer


@pytest.mark.parametrize("cut", range(len(THINKING_REPLY) + 1))
def test_a_tag_cut_anywhere_still_separates_reasoning_from_answer(cut: int) -> None:
    pieces = [THINKING_REPLY[:cut], THINKING_REPLY[cut:]]
    assert _split(pieces, starts_in_reasoning=True) == ("Let me think about <b>it</b>.\n", "The answer is 42.")


def test_one_character_at_a_time_gives_the_same_split() -> None:
    assert _split(list(THINKING_REPLY), starts_in_reasoning=True) == (
        "Let me think about <b>it</b>.\n",
        "The answer is 42.",
    )


def test_a_reply_that_opens_its_own_think_block_is_split() -> None:
    assert _split(["<thi", "nk>\nhmm</think>\n\nok"], starts_in_reasoning=False) == ("hmm", "ok")


def test_a_think_tag_later_in_the_answer_is_plain_text() -> None:
    assert _split(["Use <think> tags", " like this."], starts_in_reasoning=False) == ("", "Use <think> tags like this.")


def test_text_is_released_as_soon_as_it_cannot_be_a_tag() -> None:
    splitter = ReasoningSplitter(starts_in_reasoning=True)
    assert splitter.feed("step one <") == ("step one ", "")
    assert splitter.feed("b>") == ("<b>", "")
    assert splitter.feed("</") == ("", "")
    assert splitter.feed("think>Done") == ("", "Done")


def test_unfinished_reasoning_is_released_when_the_reply_ends() -> None:
    splitter = ReasoningSplitter(starts_in_reasoning=True)
    splitter.feed("still thinking </thi")
    assert splitter.finish() == ("</thi", "")
    assert splitter.reasoning == "still thinking </thi"
