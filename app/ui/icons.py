"""The app's action icons (Lucide, ISC licence: resources/icons/actions), drawn in the colours
of the current palette, so they read well in the light and the dark theme alike.

Lucide's SVGs draw with ``currentColor``; Qt's SVG renderer has no current colour, so the colour
is written into the SVG text before it is rendered.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from app.core.profile.app_paths import RESOURCES_DIR

ICONS_DIR = RESOURCES_DIR / "icons" / "actions"
_SIZES = (16, 20, 32, 40)  # 16 and 20 px, and both again for 2x screens


def themed_icon(name: str, palette: QPalette | None = None) -> QIcon:
    """The icon ``name`` (a file in ICONS_DIR, without ".svg") in ``palette``'s text colours."""
    palette = palette or QGuiApplication.palette()
    normal = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText).name()
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText).name()
    return _icon(name, normal, disabled)


@functools.cache
def _icon(name: str, normal: str, disabled: str) -> QIcon:
    svg = (ICONS_DIR / f"{name}.svg").read_text(encoding="utf-8")
    icon = QIcon()
    for mode, color in ((QIcon.Mode.Normal, normal), (QIcon.Mode.Disabled, disabled)):
        renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", color).encode()))
        for size in _SIZES:
            pixmap = QPixmap(size, size)
            pixmap.fill(QColor(Qt.GlobalColor.transparent))
            painter = QPainter(pixmap)
            renderer.render(painter, QRectF(0, 0, size, size))
            painter.end()
            icon.addPixmap(pixmap, mode)
    return icon
