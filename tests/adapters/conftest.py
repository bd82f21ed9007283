"""Fixtures for the adapter tests: a private root per test and cleanup of everything started.

Real-runtime tests get a runtime whose ``--root`` is inside the test's temporary directory, so
teardown can kill and delete exactly the containers that test made. The shim writes every conmon
pid file under that directory too, so teardown can kill exactly the conmons that test started.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from adapters.base import RuntimeCommandError
from adapters.bundle import make_busybox_bundle
from adapters.conmon import ConmonShim
from adapters.runc import OciRuntime
from tests.adapters.support import missing_real_runtime

BundleFactory = Callable[..., Path]


@pytest.fixture
def real_runtime_required() -> None:
    """Skip the test, with the reason, when root, runc, conmon or busybox-static is missing."""
    reason = missing_real_runtime()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def test_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh, short directory for one test.

    Short because conmon puts attach sockets under it, and a Unix socket path may hold at most
    107 bytes.
    """
    return tmp_path_factory.mktemp("b", numbered=True)


@pytest.fixture
def make_bundle(test_root: Path) -> BundleFactory:
    """Return ``make_bundle(args, **options)``, building a busybox bundle under the test root."""
    counter = iter(range(1_000_000))

    def factory(args: Sequence[str], **options: Any) -> Path:
        return make_busybox_bundle(test_root / f"bundle{next(counter)}", args, **options)

    return factory


def cleanup_runtime(runtime: OciRuntime) -> None:
    """Kill and delete every container under ``runtime``'s root."""
    try:
        containers = runtime.list()
    except RuntimeCommandError:
        return
    for container in containers:
        with contextlib.suppress(RuntimeCommandError):
            runtime.kill(container.id, signal.SIGKILL, all_processes=True)
        with contextlib.suppress(RuntimeCommandError):
            runtime.delete(container.id, force=True)


def kill_conmons_under(root: Path) -> None:
    """SIGKILL every live conmon whose pid file lies under ``root``."""
    for pid_file in root.rglob("conmon.pid"):
        text = pid_file.read_text().strip()
        if not text.isdigit():
            continue
        pid = int(text)
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            # The pid may have been reused since the test; kill only a conmon.
            if process.name() == "conmon" and process.status() != psutil.STATUS_ZOMBIE:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runtime(real_runtime_required: None, test_root: Path) -> Iterator[OciRuntime]:
    """Return a runc ``OciRuntime`` with a private root; teardown removes its containers."""
    runc = OciRuntime("runc", test_root / "runc")
    yield runc
    cleanup_runtime(runc)


@pytest.fixture
def shim(runtime: OciRuntime, test_root: Path) -> Iterator[ConmonShim]:
    """Return a ``ConmonShim`` over ``runtime``; teardown stops watching and kills its conmons."""
    conmon = ConmonShim(runtime, state_root=test_root / "shim")
    yield conmon
    conmon.close()
    cleanup_runtime(runtime)
    kill_conmons_under(test_root)
