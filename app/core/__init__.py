"""The Qt-free core: inference engine, conversation store, settings, paths.

Nothing in this package may import PySide6 or ``app.ui`` (a test enforces it), so every piece can
be tested and reused without a GUI.
"""
