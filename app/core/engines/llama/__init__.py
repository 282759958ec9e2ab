"""The llama.cpp engine: the only code that imports ``llama_cpp``."""
