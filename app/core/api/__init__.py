"""The local OpenAI-compatible API: other programs use the loaded model through the engine host."""
