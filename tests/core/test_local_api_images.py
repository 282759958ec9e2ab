"""Images through the local API: OpenAI's ``image_url`` parts with ``data:`` URLs, read once."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.core.engines.llama.self_test_model import THINKING_ANSWER
from tests.api_fixtures import ServedModel, serving
from tests.vision_fixtures import picture_bytes

PHOTO_TOKENS = 300  # a 640 × 480 picture at the default detail


@pytest.fixture(scope="module")
def served_vision(tool_model: Path, tiny_projector: Path) -> Iterator[ServedModel]:
    """The tiny model with the real Qwen3.5 template and its projector."""
    with serving(tool_model, projector=tiny_projector) as served:
        yield served


def _image_part(data: bytes, media_type: str = "image/png", **extra) -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64," + base64.b64encode(data).decode(), **extra}}


def _ask(served: ServedModel, content, **options):
    return served.client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}], max_tokens=32, **options)


def test_a_data_url_picture_is_read_and_answered(served_vision: ServedModel) -> None:
    reply = _ask(served_vision, [_image_part(picture_bytes()), {"type": "text", "text": "What is this?"}])
    assert reply.choices[0].message.content == THINKING_ANSWER
    assert reply.usage.prompt_tokens > PHOTO_TOKENS


def test_a_second_request_with_the_same_picture_reuses_its_reading(served_vision: ServedModel) -> None:
    picture = picture_bytes(colour=(250, 250, 0))
    first = _ask(served_vision, [_image_part(picture), {"type": "text", "text": "What is this?"}])
    second = _ask(served_vision, [_image_part(picture), {"type": "text", "text": "What colour is the disc?"}])
    assert first.usage.prompt_tokens_details.cached_tokens < PHOTO_TOKENS
    assert second.usage.prompt_tokens_details.cached_tokens > PHOTO_TOKENS


def test_low_detail_reads_a_picture_as_fewer_tokens_than_high(served_vision: ServedModel) -> None:
    picture = picture_bytes(1280, 960)
    low = _ask(served_vision, [_image_part(picture, detail="low"), {"type": "text", "text": "Hi"}])
    high = _ask(served_vision, [_image_part(picture, detail="high"), {"type": "text", "text": "Hi"}])
    assert low.usage.prompt_tokens < 256 + 40 < high.usage.prompt_tokens


@pytest.mark.parametrize(
    ("part", "reason"),
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not base64@@"}}, "not valid base64"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}, "must be base64"),
        (_image_part(b"GIF89a broken"), "not an image"),
        (_image_part(b""), "empty"),
        (_image_part(picture_bytes(64, 64), detail="ultra"), "detail"),
    ],
    ids=["bad base64", "not base64", "not an image", "empty", "unknown detail"],
)
def test_a_bad_image_is_refused_with_400_naming_the_part(served_vision: ServedModel, part: dict, reason: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(served_vision, [part, {"type": "text", "text": "What is this?"}])
    assert reason in refused.value.body["message"]
    assert refused.value.body["param"].startswith("messages")


def test_only_user_messages_may_show_images(served_vision: ServedModel) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        served_vision.client.chat.completions.create(model="m", max_tokens=8, messages=[
            {"role": "system", "content": [_image_part(picture_bytes(64, 64))]},
            {"role": "user", "content": "Hi"},
        ])
    assert "only user messages" in refused.value.body["message"]
