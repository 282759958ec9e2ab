"""Chatting: the chat session that runs every turn, its prompt rules, settings and events."""
