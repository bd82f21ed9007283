"""Redaction of environment variable values before they reach the journal.

A process spec's environment often carries secrets. By default the journal keeps each key and
replaces the value with a keyed hash (HMAC-SHA256 under a per-installation key), so an auditor
can still tell whether two runs had the same value without reading it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shlex
from collections.abc import Sequence
from pathlib import Path

REDACTED_PREFIX = "hmac-sha256:"


def load_or_create_key(path: Path) -> bytes:
    """Return the redaction key at ``path``, creating a random one (mode 0600) if missing."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another daemon start won the race; use its key.
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def redact_value(value: str, key: bytes) -> str:
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{REDACTED_PREFIX}{digest[:32]}"


def redact_env(env: Sequence[str], key: bytes | None) -> list[str]:
    """Return ``KEY=VALUE`` entries with each value replaced by its keyed hash.

    With ``key`` None (the keep-values setting) the entries are returned unchanged.
    """
    if key is None:
        return [str(item) for item in env]
    redacted = []
    for item in env:
        name, separator, value = str(item).partition("=")
        redacted.append(f"{name}={redact_value(value, key)}" if separator else name)
    return redacted


def redact_command_line(command_line: str, env: Sequence[str], key: bytes | None) -> str:
    """Return ``command_line`` with each ``KEY=VALUE`` of ``env`` in it redacted as in ``redact_env``.

    The client's command line is journaled with the request, and ``exec --env KEY=VALUE`` or
    ``--env=KEY=VALUE`` carries the value there too.
    """
    if key is None or not env:
        return command_line
    replacements = {str(item): redacted for item, redacted in zip(env, redact_env(env, key)) if "=" in str(item)}
    try:
        tokens = shlex.split(command_line)
    except ValueError:
        # Unbalanced quotes (a command line cut at the header limit): replace the text as it is.
        for item, redacted in replacements.items():
            command_line = command_line.replace(item, redacted)
        return command_line
    for index, token in enumerate(tokens):
        for item, redacted in replacements.items():
            if token == item:
                tokens[index] = redacted
            elif token.endswith("=" + item):
                tokens[index] = token[: -len(item)] + redacted
    return shlex.join(tokens)
