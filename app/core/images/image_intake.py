"""Images from outside (a file, a paste, a drop, an API request), checked before anything keeps them.

Every image the app stores or shows the model comes through :func:`prepare_image`: decoded with
Pillow (never by native code that trusts the file), bounded in bytes and pixels before decoding
(a "decompression bomb" is a small file that decodes to gigabytes), turned upright by its EXIF
orientation, scaled down to what the model can use, and encoded again, which drops every piece of
metadata (location, camera, thumbnails). What comes out is small, upright and anonymous, and the
same picture always gives the same bytes, so the store keeps it once by content hash.

:func:`decode_rgb` gives the engine the pixels of such an image, with the same bounds, in case a
stored file was replaced behind the app's back.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# The largest file accepted: a 50-megapixel camera JPEG is ~25 MB, a screenshot PNG a few MB.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
# The most pixels decoded (~ a 10,000 × 10,000 scan); beyond it the file is refused unread.
MAX_SOURCE_PIXELS = 100_000_000
# The longest side kept. The projector reads at most 4,096 image tokens of 32 × 32 pixels
# ("high" detail: 2,048 × 2,048), so larger pictures only cost space and decoding time.
MAX_EDGE = 2048

_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}
_ACCEPTED = "PNG, JPEG, WebP, GIF or BMP"


class ImageRejected(Exception):
    """The bytes are not an image the app takes; the message says why, for the user."""


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to keep and show the model: ``data`` is PNG (or JPEG, for photos that
    came as JPEG) without metadata, at most ``MAX_EDGE`` pixels on its longest side."""

    data: bytes
    media_type: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def prepare_image(data: bytes) -> PreparedImage:
    """``data`` checked, upright, scaled down and re-encoded; raises :class:`ImageRejected`."""
    image, source_format = _open(data)
    try:
        image.seek(0)  # an animation's first frame
    except EOFError:
        pass
    try:
        image = ImageOps.exif_transpose(image)
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageRejected(f"The image is damaged or incomplete and could not be read ({error}).") from error
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if has_alpha else "RGB")
    if max(image.size) > MAX_EDGE:
        image.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS)
    output = io.BytesIO()
    if source_format == "JPEG" and not has_alpha:
        # Re-encoding a photo as PNG would make it several times bigger for no visible gain.
        image.save(output, "JPEG", quality=92)
        media_type = "image/jpeg"
    else:
        image.save(output, "PNG")
        media_type = "image/png"
    return PreparedImage(output.getvalue(), media_type, image.width, image.height)


def decode_rgb(data: bytes) -> tuple[int, int, bytes]:
    """The width, height and RGB pixels (row by row, 3 bytes each) of a stored image; a
    transparent one is shown on white, as the app displays it. Raises :class:`ImageRejected`."""
    image, _ = _open(data)
    try:
        image.seek(0)
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageRejected(f"The image is damaged and could not be read ({error}).") from error
    if image.mode in ("RGBA", "LA", "PA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    image = image.convert("RGB")
    return image.width, image.height, image.tobytes()


def sample_picture(width: int = 96, height: int = 64) -> PreparedImage:
    """A small synthetic picture (a colour gradient), for the checks that must show the model
    an image without any file: the first-use check of a projector, the installed app's self-test."""
    gradient = Image.linear_gradient("L").resize((width, height))
    picture = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90).resize((width, height)), gradient))
    output = io.BytesIO()
    picture.save(output, "PNG")
    return PreparedImage(output.getvalue(), "image/png", width, height)


def _open(data: bytes) -> tuple[Image.Image, str]:
    if not data:
        raise ImageRejected("The image is empty (0 bytes).")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(
            f"The image is {len(data) / 1024 / 1024:,.0f} MB; images up to "
            f"{MAX_IMAGE_BYTES // 1024 // 1024} MB can be attached."
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own pixel limit; the size is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(_FORMATS))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, Image.DecompressionBombError):
            raise ImageRejected(_too_many_pixels_message()) from error
        raise ImageRejected(f"This is not an image the app can read ({_ACCEPTED}).") from error
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected("The image has no pixels.")
    if width * height > MAX_SOURCE_PIXELS:
        raise ImageRejected(_too_many_pixels_message(width, height))
    return image, image.format or ""


def _too_many_pixels_message(width: int = 0, height: int = 0) -> str:
    size = f" ({width:,} × {height:,} pixels)" if width and height else ""
    return (
        f"The image is too large to open{size}: at most {MAX_SOURCE_PIXELS // 1_000_000} million "
        "pixels. Scale it down first."
    )
