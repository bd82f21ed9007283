"""Redaction of exec environment values from the client's journaled command line."""

from __future__ import annotations

from bosun.redact import REDACTED_PREFIX, redact_command_line, redact_value

KEY = bytes(range(32))


def test_separate_and_joined_env_redacted() -> None:
    command_line = "bosun exec --env TOKEN=zqv --env=PASS='x y' web probe -- sleep 1"

    redacted = redact_command_line(command_line, ["TOKEN=zqv", "PASS=x y"], KEY)

    assert "zqv" not in redacted
    assert "x y" not in redacted
    assert f"--env TOKEN={redact_value('zqv', KEY)}" in redacted
    assert f"--env=PASS={redact_value('x y', KEY)}" in redacted
    assert redacted.endswith("web probe -- sleep 1")


def test_unbalanced_quotes_still_redacted() -> None:
    command_line = "bosun exec --env TOKEN=zqv 'cut off at the header lim"

    redacted = redact_command_line(command_line, ["TOKEN=zqv"], KEY)

    assert "TOKEN=zqv" not in redacted
    assert f"TOKEN={REDACTED_PREFIX}" in redacted


def test_keep_values_leaves_command_line() -> None:
    command_line = "bosun exec --env TOKEN=zqv web probe -- true"

    assert redact_command_line(command_line, ["TOKEN=zqv"], None) == command_line
