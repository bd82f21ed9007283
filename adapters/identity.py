"""Tell a live process from a recycled pid, with psutil.

A pid alone names a process only while it lives: after it exits the kernel may hand the number to
an unrelated process. bosun stores each pid with its start time (psutil ``create_time()``, seconds
since the epoch derived from the kernel's boot-relative start ticks) and treats a pid as the same
process only when both match.
"""

from __future__ import annotations

import logging
from typing import Any

import psutil

logger = logging.getLogger(__name__)

# psutil computes create_time() as the boot time from /proc/stat plus the start time in clock ticks.
# The kernel derives that boot time from the wall clock, so it can move by a second when the clock
# is adjusted, and a restarted daemon may read a slightly different value for the same process.
# Another process reusing the pid within one second would need the pid space to wrap in that time.
# NOTE: a wall-clock step of more than a second between two readings makes a live process look
# replaced; comparing start ticks instead would need them stored in ProcessRef.
START_TIME_TOLERANCE = 1.0


def process_start_time(pid: int) -> float | None:
    """Return the start time of ``pid`` (psutil ``create_time()``), or None when it does not exist."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def is_same_process(pid: int, start_time: float) -> bool:
    """Tell whether ``pid`` is alive and is the process that started at ``start_time``.

    A zombie counts as not alive: it has exited and only waits for its parent to reap it.
    """
    if pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - start_time) <= START_TIME_TOLERANCE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def process_usage(pid: int) -> dict[str, Any]:
    """Return resource usage of ``pid``: ``rss`` in bytes, ``cpu_user`` and ``cpu_system`` in
    seconds and ``num_fds``.

    Raises ``psutil.NoSuchProcess`` when the process is gone.
    """
    process = psutil.Process(pid)
    with process.oneshot():
        memory = process.memory_info()
        cpu = process.cpu_times()
        return {
            "pid": pid,
            "rss": int(memory.rss),
            "cpu_user": float(cpu.user),
            "cpu_system": float(cpu.system),
            "num_fds": int(process.num_fds()),
        }


def describe_process(pid: int) -> dict[str, Any]:
    """Return what ``top`` shows of ``pid``: parent, user, command line, CPU and memory.

    A process that exits while being read is returned with ``cmdline`` None rather than raising,
    because a container's process list changes between listing and reading.
    """
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return {
                "pid": pid,
                "ppid": process.ppid(),
                "user": process.username(),
                "cmdline": process.cmdline(),
                "cpu_percent": process.cpu_percent(interval=None),
                "rss": int(process.memory_info().rss),
                "status": process.status(),
            }
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return {"pid": pid, "ppid": None, "user": None, "cmdline": None, "cpu_percent": None, "rss": None, "status": "exited"}
    except KeyError:
        # username() raises KeyError for a uid with no passwd entry, common inside containers.
        process = psutil.Process(pid)
        return {"pid": pid, "ppid": process.ppid(), "user": str(process.uids().real), "cmdline": process.cmdline(),
                "cpu_percent": None, "rss": int(process.memory_info().rss), "status": process.status()}
