"""Images from outside are checked, made upright, scaled, cleaned and refused with a reason."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from app.core.images.image_intake import MAX_EDGE, ImageRejected, decode_rgb, prepare_image
from tests.vision_fixtures import picture_bytes


def _opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(("file_format", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/png"), ("BMP", "image/png"), ("GIF", "image/png")])
def test_every_common_format_is_taken_and_kept_as_png_or_jpeg(file_format: str, media_type: str) -> None:
    prepared = prepare_image(picture_bytes(320, 200, file_format=file_format))
    assert prepared.media_type == media_type
    assert (prepared.width, prepared.height) == (320, 200)
    assert _opened(prepared.data).size == (320, 200)


def test_the_exif_orientation_is_applied_and_every_piece_of_metadata_is_dropped() -> None:
    photo = Image.new("RGB", (400, 100), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to show
    exif[0x010F] = "Camera maker"
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", exif=exif.tobytes())

    prepared = prepare_image(buffer.getvalue())

    assert (prepared.width, prepared.height) == (100, 400)
    cleaned = _opened(prepared.data)
    assert not cleaned.getexif()
    assert b"Camera maker" not in prepared.data
    assert "icc_profile" not in cleaned.info


def test_a_huge_picture_is_scaled_down_to_what_the_model_can_use() -> None:
    prepared = prepare_image(picture_bytes(5000, 2500, file_format="JPEG"))
    assert (prepared.width, prepared.height) == (MAX_EDGE, MAX_EDGE // 2)


def test_an_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (50, 40), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    red, green, blue = _opened(prepare_image(buffer.getvalue()).data).convert("RGB").getpixel((10, 10))
    assert red > 200 and blue < 50


def test_the_same_picture_always_gives_the_same_bytes() -> None:
    data = picture_bytes()
    assert prepare_image(data).sha256 == prepare_image(data).sha256


def test_transparency_is_kept_and_shown_to_the_model_on_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (20, 10), (0, 0, 0, 0)).save(buffer, "PNG")
    prepared = prepare_image(buffer.getvalue())
    assert prepared.media_type == "image/png" and _opened(prepared.data).mode == "RGBA"
    width, height, pixels = decode_rgb(prepared.data)
    assert (width, height) == (20, 10) and pixels[:3] == b"\xff\xff\xff" and len(pixels) == 20 * 10 * 3


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb's trick)."""
    data = bytearray(picture_bytes(8, 8))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"GIF89a but not really", "not an image"),
        (b"%PDF-1.7 a document", "not an image"),
        (_png_claiming(20_000, 20_000), "too large to open"),
        (picture_bytes(300, 300, file_format="JPEG")[:2000], "damaged or incomplete"),
    ],
    ids=["empty", "garbage", "a document", "a decompression bomb", "a truncated photo"],
)
def test_what_is_not_a_usable_image_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected, match=reason):
        prepare_image(data)


def test_a_file_over_the_size_limit_is_refused_unread() -> None:
    with pytest.raises(ImageRejected, match="up to 50 MB"):
        prepare_image(b"\x89PNG" + bytes(51 * 1024 * 1024))
