"""Validation of the identifiers that become stream names and paths.

Container, exec and checkpoint ids follow the usual container-id rule, checked before any path
is built from them, so an id can never escape its directory.
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 76
ID_RULE = (
    "letters and digits, with single '.', '_' or '-' between them, "
    f"at most {MAX_ID_LENGTH} characters"
)
_ID_PATTERN = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


class InvalidIdentifier(ValueError):
    """Raised when an id does not follow the container-id rule."""

    def __init__(self, kind: str, value: object) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"invalid {kind} {value!r}: use {ID_RULE}")


def validate_id(value: object, kind: str = "container id") -> str:
    """Return ``value`` if it is a valid id, else raise ``InvalidIdentifier``."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_ID_LENGTH
        or _ID_PATTERN.fullmatch(value) is None
    ):
        raise InvalidIdentifier(kind, value)
    return value
