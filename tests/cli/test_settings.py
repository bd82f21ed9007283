"""Settings precedence: a flag beats the environment, the environment beats the default."""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bosun

from bosun import cli, config

ENV_NAMES = ("BOSUN_ROOT", "BOSUN_SOCKET", "BOSUN_JOURNAL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def context(*argv: str) -> cli.Context:
    args = cli.build_parser().parse_args(list(argv))
    return cli.Context(args, argv, io.StringIO(), io.StringIO())


def test_root_and_socket_defaults() -> None:
    settings = context("ps").settings
    assert settings.root == Path("/run/bosun")
    assert settings.socket == Path("/run/bosun/bosun.sock")


def test_root_from_env_moves_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_ROOT", "/env/root")
    settings = context("ps").settings
    assert settings.root == Path("/env/root")
    assert settings.socket == Path("/env/root/bosun.sock")


def test_root_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_ROOT", "/env/root")
    settings = context("ps", "--root", "/flag/root").settings
    assert settings.root == Path("/flag/root")
    assert settings.socket == Path("/flag/root/bosun.sock")


def test_socket_env_beats_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_SOCKET", "/env/api.sock")
    assert context("--root", "/flag/root", "ps").settings.socket == Path("/env/api.sock")


def test_socket_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_SOCKET", "/env/api.sock")
    assert context("ps", "--socket", "/flag/api.sock").settings.socket == Path("/flag/api.sock")


def test_journal_default() -> None:
    assert context("journal", "verify").journal_url == "sqlite:////var/lib/bosun/journal.db"


def test_journal_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_JOURNAL", "sqlite:////env/j.db")
    assert context("journal", "verify").journal_url == "sqlite:////env/j.db"


def test_journal_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_JOURNAL", "sqlite:////env/j.db")
    assert context("journal", "verify", "--journal", "sqlite:////flag/j.db").journal_url == "sqlite:////flag/j.db"


@pytest.fixture
def daemon_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Stand in for ``bosun.daemon`` and record the settings its ``run`` receives."""
    received: list[Any] = []
    module = types.ModuleType("bosun.daemon")

    def run(settings: config.DaemonSettings) -> int:
        received.append(settings)
        return 3

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bosun.daemon", module)
    # ``from bosun import daemon`` takes the package attribute first, which is the real module
    # once any earlier test imported it.
    monkeypatch.setattr(bosun, "daemon", module, raising=False)
    monkeypatch.setattr(cli, "_configure_logging", lambda level: None)
    yield received


def test_daemon_settings_from_defaults(daemon_run: list[Any]) -> None:
    assert cli.main(["daemon"]) == 3
    settings = daemon_run[0]
    assert settings.root == Path("/run/bosun")
    assert settings.socket == Path("/run/bosun/bosun.sock")
    assert settings.journal_url == "sqlite:////var/lib/bosun/journal.db"
    assert settings.runtime == "runc"
    assert settings.orphan_policy == "kill"


def test_daemon_settings_from_env(daemon_run: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_ROOT", "/env/root")
    monkeypatch.setenv("BOSUN_JOURNAL", "sqlite:////env/j.db")
    cli.main(["daemon"])
    settings = daemon_run[0]
    assert settings.root == Path("/env/root")
    assert settings.socket == Path("/env/root/bosun.sock")
    assert settings.journal_url == "sqlite:////env/j.db"


def test_daemon_settings_from_flags(daemon_run: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_ROOT", "/env/root")
    monkeypatch.setenv("BOSUN_SOCKET", "/env/api.sock")
    monkeypatch.setenv("BOSUN_JOURNAL", "sqlite:////env/j.db")
    cli.main([
        "--root", "/flag/root", "daemon", "--socket", "/flag/api.sock", "--journal", "sqlite:////flag/j.db",
        "--runtime", "crun", "--runtime-arg=--debug", "--shim", "/opt/conmon", "--start-timeout", "7",
        "--keep-env-values", "--crash-at", "start:after-intent",
    ])
    settings = daemon_run[0]
    assert settings.root == Path("/flag/root")
    assert settings.socket == Path("/flag/api.sock")
    assert settings.journal_url == "sqlite:////flag/j.db"
    assert settings.runtime == "crun"
    assert settings.runtime_args == ("--debug",)
    assert settings.shim == "/opt/conmon"
    assert settings.start_timeout == 7.0
    assert settings.keep_env_values is True
    assert settings.crash_at == "start:after-intent"
