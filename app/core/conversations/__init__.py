"""Stored conversations: the SQLite store, the thread that owns it, export/import, the library."""
