"""Look and feel: native style where it supports dark mode, palettes that follow the system."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from app.core.profile.app_paths import RESOURCES_DIR

THEMES = {"system": None, "light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}
_native_style = ""  # the platform's own style, restored when the system scheme is followed again
_chosen: Qt.ColorScheme | None = None  # the user's override; None follows the system


def apply_theme(app: QApplication, scheme: Qt.ColorScheme | None = None) -> None:
    """Styles ``app`` once at start: ``scheme``, or the system's light or dark mode, followed
    live when it changes."""
    global _native_style
    _native_style = app.style().name()
    app.setWindowIcon(QIcon(str(RESOURCES_DIR / "icons" / "app.svg")))
    QGuiApplication.styleHints().colorSchemeChanged.connect(lambda _scheme: _restyle(app))
    set_color_scheme(app, scheme)


_system_point_size = 0.0  # the platform's own text size, restored by a font size of 0


def set_font_size(app: QApplication, points: int) -> None:
    """Text size for the whole app; 0 goes back to the system's."""
    global _system_point_size
    if not _system_point_size:
        _system_point_size = app.font().pointSizeF()
    font = app.font()
    font.setPointSizeF(points or _system_point_size)
    app.setFont(font)


def set_color_scheme(app: QApplication, scheme: Qt.ColorScheme | None) -> None:
    """Switches to ``scheme`` now (None: follow the system again)."""
    global _chosen
    _chosen = scheme
    _restyle(app)


def _restyle(app: QApplication) -> None:
    if sys.platform == "darwin" and _chosen is None:
        # macOS's native style follows the system's appearance by itself.
        app.setStyle(_native_style)
        app.setPalette(app.style().standardPalette())
    else:
        # Fusion draws both schemes well on every platform.
        app.setStyle("Fusion")
        scheme = _chosen if _chosen is not None else QGuiApplication.styleHints().colorScheme()
        app.setPalette(_dark_palette() if scheme == Qt.ColorScheme.Dark else _light_palette(app.style().standardPalette()))
    icons = (RESOURCES_DIR / "icons" / "actions").as_posix()
    sheet = (RESOURCES_DIR / "style.qss").read_text(encoding="utf-8").replace("{ICONS}", icons)
    if app.palette().color(QPalette.ColorRole.Window).lightness() < 128:
        sheet += DARK_OVERRIDES  # the few colours that are not the palette's
    app.setStyleSheet(sheet)


# The error and warning colours are fixed (red means the same in both themes), so the dark
# theme gets its own shades of them: the light ones glare on a dark window.
DARK_OVERRIDES = """
#errorBanner { background: #3b1d1b; border-bottom: 1px solid #6e2b26; }
#errorBanner QLabel { color: #f6aea9; }
#welcomeError, #modelsMessage, #downloadError { color: #f28b82; }
#warningText { color: #fdd663; }
#toolCallState[tone="done"] { color: #81c995; }
#toolCallState[tone="problem"] { color: #f28b82; }
#testResult[tone="good"] { color: #81c995; }
#testResult[tone="problem"] { color: #fdd663; }
#replyNotice[tone="problem"] { color: #fdd663; border-left-color: #fdd663; }
"""


# One accent in both schemes (the light one darker, for contrast on white), so switching the
# theme never changes the app's colour.
ACCENT_LIGHT = "#5b4fcf"
ACCENT_DARK = "#7c6ff0"


def _light_palette(standard: QPalette) -> QPalette:
    palette = QPalette(standard)
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(group, QPalette.ColorRole.Highlight, QColor(ACCENT_LIGHT))
        palette.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.Link, QColor(ACCENT_LIGHT))
    palette.setColor(QPalette.ColorRole.Dark, QColor("#8c8f94"))
    return palette


def _dark_palette() -> QPalette:
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#1a1b1e",
        QPalette.ColorRole.AlternateBase: "#2a2b2f",
        QPalette.ColorRole.Text: "#e8eaed",
        QPalette.ColorRole.Button: "#2d2e32",
        QPalette.ColorRole.ButtonText: "#e8eaed",
        QPalette.ColorRole.Highlight: ACCENT_DARK,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2d2e32",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#9aa0a6",
        QPalette.ColorRole.Mid: "#3c3d42",
        QPalette.ColorRole.Midlight: "#46474c",
        QPalette.ColorRole.Dark: "#8a8d93",  # outlines that must show on the dark window
        QPalette.ColorRole.Light: "#5f6368",
        QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.Link: "#a59bff",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6e73"))
    return palette
