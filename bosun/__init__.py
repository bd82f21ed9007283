"""bosun: a container supervisor whose state is the fold of an append-only journal."""

__version__ = "0.1.0"
