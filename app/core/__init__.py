"""The Qt-free core, one sub-package per domain (see README.md, "For developers").

Nothing in this package imports PySide6 or ``app.ui``; only ``engines.llama`` imports llama.cpp.
import-linter contracts in pyproject.toml check both, in the test suite.
"""
