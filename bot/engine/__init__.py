"""Rasa, run in-process: model loading, NLU parsing, and the Redis-backed stores."""
