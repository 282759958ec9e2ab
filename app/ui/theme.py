"""Look and feel: native style where it supports dark mode, palettes that follow the system."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from app.core.app_paths import RESOURCES_DIR


def apply_theme(app: QApplication, scheme: Qt.ColorScheme | None = None) -> None:
    """Styles ``app``: in ``scheme`` if given, else following the system's light or dark mode."""
    if sys.platform != "darwin" or scheme is not None:
        # Fusion renders both colour schemes everywhere; macOS's native style follows the
        # system by itself, so it is replaced only when the user overrides the scheme.
        app.setStyle("Fusion")
    app.setWindowIcon(QIcon(str(RESOURCES_DIR / "icons" / "app.svg")))
    if scheme is not None:
        _apply_palette(app, scheme)
    elif sys.platform != "darwin":
        hints = QGuiApplication.styleHints()
        _apply_palette(app, hints.colorScheme())
        hints.colorSchemeChanged.connect(lambda changed: _apply_palette(app, changed))
    app.setStyleSheet((RESOURCES_DIR / "style.qss").read_text(encoding="utf-8"))


def _apply_palette(app: QApplication, scheme: Qt.ColorScheme) -> None:
    app.setPalette(_dark_palette() if scheme == Qt.ColorScheme.Dark else app.style().standardPalette())


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
        QPalette.ColorRole.Highlight: "#7c6ff0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2d2e32",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#9aa0a6",
        QPalette.ColorRole.Mid: "#3c3d42",
        QPalette.ColorRole.Midlight: "#46474c",
        QPalette.ColorRole.Link: "#a59bff",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6e73"))
    return palette
