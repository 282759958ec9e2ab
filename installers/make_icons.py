"""Renders the app icon (resources/icons/app.svg) in the formats the installers need.

    python installers/make_icons.py OUT_DIR

writes ``OUT_DIR/png/SIZE.png`` (Linux icon theme), ``OUT_DIR/app.ico`` (Windows executable and
installer) and ``OUT_DIR/app.icns`` (macOS app bundle). Qt, which the app ships anyway, draws the
SVG, so every platform renders the icon the same way without extra tools. Both container formats
hold PNG images, which Windows (Vista and later) and macOS (10.7 and later) read.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # drawing needs no screen

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "app.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# icns element types holding PNG data, by pixel size.
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09", 1024: b"ic10"}


def render_png(renderer: QSvgRenderer, size: int) -> bytes:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    """An ICO file: a header, one 16-byte directory entry per image, then the PNG images."""
    offset = 6 + 16 * len(pngs)
    header = struct.pack("<HHH", 0, 1, len(pngs))
    entries = b""
    for size, png in pngs.items():
        side = size % 256  # 0 stands for 256
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset)
        offset += len(png)
    return header + entries + b"".join(pngs.values())


def icns(pngs: dict[int, bytes]) -> bytes:
    """An ICNS file: "icns" and the total length, then (type, length, PNG) elements."""
    elements = b"".join(ICNS_TYPES[size] + struct.pack(">I", 8 + len(png)) + png for size, png in pngs.items())
    return b"icns" + struct.pack(">I", 8 + len(elements)) + elements


def make_icons(out_dir: Path) -> None:
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"Qt could not read {SVG}")
    pngs = {size: render_png(renderer, size) for size in PNG_SIZES}
    (out_dir / "png").mkdir(parents=True, exist_ok=True)
    for size, png in pngs.items():
        (out_dir / "png" / f"{size}.png").write_bytes(png)
    (out_dir / "app.ico").write_bytes(ico({size: pngs[size] for size in ICO_SIZES}))
    (out_dir / "app.icns").write_bytes(icns({size: pngs[size] for size in ICNS_TYPES}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    make_icons(Path(sys.argv[1]))
