"""Fixtures for images: the tiny projector beside the tiny text model, and test pictures.

The projector is written at test time (``self_test_projector``), so the real libmtmd reads real
images in every test run without downloading anything.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.core.domain.generation import ChatImage
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.images.image_intake import prepare_image


@pytest.fixture(scope="session")
def tiny_projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vision projector (``mmproj``) that pairs with the tiny text models."""
    return write_tiny_qwen35_projector(tmp_path_factory.mktemp("projectors") / "mmproj-tiny.gguf")


def picture_bytes(width: int = 640, height: int = 480, *, colour=(200, 60, 40), file_format: str = "PNG", **save) -> bytes:
    """A picture with some structure (a gradient, a disc and a bar), encoded as ``file_format``."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=colour)
    draw.rectangle((width // 2, height // 2, width - width // 8, height - height // 8), fill=(30, 90, 200))
    output = io.BytesIO()
    image.save(output, file_format, **save)
    return output.getvalue()


def chat_image(width: int = 640, height: int = 480, **options) -> ChatImage:
    """A checked picture as the engine receives it."""
    prepared = prepare_image(picture_bytes(width, height, **options))
    return ChatImage(prepared.sha256, prepared.data)
