"""Qwen Local Chat: chat with Qwen3.5 models offline.

``app.core`` is plain Python (no Qt); ``app.ui`` is the only package that imports PySide6;
``app.main`` is the composition root that wires the two together.
"""
