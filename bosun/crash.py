"""Crash injection: the daemon kills itself at a named point, for crash-recovery tests.

Point names are ``<command>:after-intent`` (the intent is committed, nothing else happened),
``<command>:after-runtime`` (the runtime call returned, its outcome is not journaled) and
``recovery:<step>``. The setting comes from ``bosun daemon --crash-at`` or ``BOSUN_CRASH_AT``.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

logger = logging.getLogger(__name__)

COMMAND_POINTS = ("after-intent", "after-runtime")
RECOVERY_POINTS = ("recovery:after-replay", "recovery:mid-reconcile", "recovery:before-finish")


class SimulatedCrash(BaseException):
    """Raised at a crash point by in-process tests instead of killing the process.

    A ``BaseException``, so that no ``except Exception`` on the way up journals a failure
    outcome, just as nothing would run after a real SIGKILL.
    """

    def __init__(self, point: str) -> None:
        self.point = point
        super().__init__(f"simulated crash at {point}")


def _kill_self(point: str) -> None:
    logger.warning("crash point %s reached: killing the daemon with SIGKILL", point)
    # SIGKILL, not sys.exit: no finally blocks, no atexit, no flushed buffers, as in a real crash.
    os.kill(os.getpid(), signal.SIGKILL)


class CrashPoints:
    """Ends the daemon abruptly when a named point is reached.

    ``on_crash`` defaults to SIGKILL of the own process; property tests that run the supervisor
    in-process pass a function raising ``SimulatedCrash`` instead, and may change ``crash_at``
    between commands.
    """

    def __init__(self, crash_at: str | None, on_crash: Callable[[str], None] = _kill_self) -> None:
        self.crash_at = crash_at or None
        self.on_crash = on_crash

    def reach(self, point: str) -> None:
        if self.crash_at is not None and point == self.crash_at:
            self.on_crash(point)
