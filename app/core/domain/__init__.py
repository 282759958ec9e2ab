"""Value types shared by every part of the app: conversations, generation, hardware.

They import nothing else from the app and nothing native (an import-linter contract checks it),
so any layer, a remote engine or a test can use them.
"""
