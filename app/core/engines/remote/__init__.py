"""The engine for models that run on a model server, and the servers themselves."""
