"""Settings of the daemon and the client: flags first, then environment variables, then defaults.

This module is imported by the client, so it must stay free of SQLAlchemy and other heavy
imports: ``bosun ps`` has to return in well under 100 ms.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_ROOT = "/run/bosun"
DEFAULT_JOURNAL = "sqlite:////var/lib/bosun/journal.db"
SOCKET_NAME = "bosun.sock"


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """The client's view of the daemon: its state root and API socket."""

    root: Path
    socket: Path


@dataclasses.dataclass(frozen=True)
class DaemonSettings:
    """Everything the daemon needs to run."""

    root: Path
    journal_url: str
    socket: Path
    runtime: str = "runc"
    runtime_args: tuple[str, ...] = ()
    shim: str = "conmon"
    start_timeout: float = 30.0
    synchronous: str = "FULL"
    # Stream versions between snapshots: a restart folds at most this many events per container.
    snapshot_interval: int = 64
    # Keep environment variable values of process specs in clear in the journal.
    keep_env_values: bool = False
    # Name of a crash point at which the daemon kills itself; for crash-recovery tests only.
    crash_at: str | None = None
    # What recovery does with a container whose shim is gone but whose process is alive.
    orphan_policy: str = "kill"

    @property
    def runtime_root(self) -> Path:
        return self.root / "runtime"

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def secret_path(self) -> Path:
        return self.root / "journal.key"


ORPHAN_POLICIES = ("kill", "adopt")


def resolve_root(flag: str | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(flag or env.get("BOSUN_ROOT") or DEFAULT_ROOT)


def resolve_socket(flag: str | None, root: Path, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(flag or env.get("BOSUN_SOCKET") or root / SOCKET_NAME)


def resolve_journal(flag: str | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return flag or env.get("BOSUN_JOURNAL") or DEFAULT_JOURNAL


def client_settings(root: str | None = None, socket: str | None = None) -> ClientSettings:
    resolved_root = resolve_root(root)
    return ClientSettings(root=resolved_root, socket=resolve_socket(socket, resolved_root))
