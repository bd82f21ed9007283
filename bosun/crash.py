"""Crash injection: the daemon kills itself at a named point, for crash-recovery tests.

Point names are ``<command>:after-intent`` (the intent is committed, nothing else happened),
``<command>:after-runtime`` (the runtime call returned, its outcome is not journaled) and
``recovery:<step>``. The setting comes from ``bosun daemon --crash-at`` or ``BOSUN_CRASH_AT``.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

COMMAND_POINTS = ("after-intent", "after-runtime")
RECOVERY_POINTS = ("recovery:after-replay", "recovery:mid-reconcile", "recovery:before-finish")


class CrashPoints:
    """Kills the process with SIGKILL when a named point is reached."""

    def __init__(self, crash_at: str | None) -> None:
        self.crash_at = crash_at or None

    def reach(self, point: str) -> None:
        if self.crash_at is not None and point == self.crash_at:
            logger.warning("crash point %s reached: killing the daemon with SIGKILL", point)
            # SIGKILL, not sys.exit: no finally blocks, no atexit, no flushed buffers, as in
            # a real crash.
            os.kill(os.getpid(), signal.SIGKILL)
