"""Helpers shared by the adapter tests: requirement checks and waiting for exits."""

from __future__ import annotations

import os
import shutil
import time
import uuid

from adapters.base import ExitInfo, ProcessRef, Shim

# Bound on waiting for a container to exit: a safety net against a hung test, not a measurement.
EXIT_WAIT_LIMIT = 60.0


def missing_real_runtime() -> str | None:
    """Return why the real-runtime tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to run containers with runc"
    requirements = (("runc", "runc"), ("conmon", "conmon"), ("busybox", "busybox-static"))
    for executable, package in requirements:
        if shutil.which(executable) is None:
            return f"needs {executable!r} (Debian package {package!r})"
    return None


def new_container_id() -> str:
    """Return a container id unique across runs.

    runc names the container's cgroup after its id when the bundle sets no cgroupsPath, so a
    reused id could meet a cgroup left by an earlier, interrupted run.
    """
    return f"bosun-test-{uuid.uuid4().hex[:12]}"


def wait_for_exit(shim: Shim, ref: ProcessRef) -> ExitInfo:
    """Poll ``shim.read_exit`` until the process has exited and return its ``ExitInfo``."""
    deadline = time.monotonic() + EXIT_WAIT_LIMIT
    while time.monotonic() < deadline:
        info = shim.read_exit(ref)
        if info is not None:
            return info
        time.sleep(0.05)
    msg = (
        f"container {ref.container_id} process {ref.process_id} did not exit "
        f"within {EXIT_WAIT_LIMIT:g} s"
    )
    raise AssertionError(msg)
