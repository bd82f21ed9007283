"""Read a process's memory cgroup: its limit and its OOM-kill count.

Linux mounts cgroups in one of three layouts, and this module handles each:

* v1: one hierarchy per controller, e.g. ``/sys/fs/cgroup/memory``; ``/proc/PID/cgroup`` has a
  line ``N:memory:/path``; the limit is ``memory.limit_in_bytes`` and ``memory.oom_control`` counts
  kills in its ``oom_kill`` line.
* v2 (unified): one hierarchy at ``/sys/fs/cgroup``; the line is ``0::/path``; the limit is
  ``memory.max`` and ``memory.events`` counts kills.
* hybrid: the v1 controllers plus an empty v2 hierarchy at ``/sys/fs/cgroup/unified`` that
  contains no controllers (systemd calls this its hybrid mode). There the memory controller is v1,
  so the v1 files apply. bosun's test machine has this layout: runc 1.1.5 drives the v1
  controllers there, and crun 1.8.1 refuses to create containers on it.

conmon detects OOM kills itself; these helpers let a test or a recovery pass confirm one.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no memory limit" as LONG_MAX rounded down to a page (9223372036854771712),
# so any value from 2**62 up is read as unlimited.
_V1_UNLIMITED_MIN = 1 << 62


def cgroup_layout(root: Path = CGROUP_ROOT) -> str:
    """Return ``"v2"``, ``"hybrid"`` or ``"v1"`` for the cgroup mounts under ``root``."""
    if (root / "cgroup.controllers").exists():
        return "v2"
    if (root / "unified" / "cgroup.controllers").exists():
        return "hybrid"
    return "v1"


def memory_cgroup_dir(pid: int, root: Path = CGROUP_ROOT) -> Path | None:
    """Return the memory cgroup directory of ``pid``, or None when the process is gone.

    The path in ``/proc/PID/cgroup`` is taken relative to the hierarchy's mount point under
    ``root``, which is right for processes in the host's cgroup namespace.
    """
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None

    unified_path = None
    for line in lines:
        _hierarchy, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return root / "memory" / path.lstrip("/")
        if controllers == "":
            unified_path = path
    if unified_path is not None and cgroup_layout(root) == "v2":
        return root / unified_path.lstrip("/")
    return None


def memory_limit(cgroup_dir: Path) -> int | None:
    """Return the memory limit in bytes of the cgroup at ``cgroup_dir``; None means unlimited."""
    v2_file = cgroup_dir / "memory.max"
    if v2_file.exists():
        text = v2_file.read_text().strip()
        return None if text == "max" else int(text)
    value = int((cgroup_dir / "memory.limit_in_bytes").read_text().strip())
    return None if value >= _V1_UNLIMITED_MIN else value


def oom_kill_count(cgroup_dir: Path) -> int | None:
    """Return how many processes the OOM killer ended in the cgroup, or None when unknown.

    v1 kernels before 4.13 have no ``oom_kill`` line in ``memory.oom_control``, hence None.
    """
    for name in ("memory.events", "memory.oom_control"):
        try:
            text = (cgroup_dir / name).read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    return None
