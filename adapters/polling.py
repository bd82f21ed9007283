"""Wait for a file descriptor to become readable, whatever its number.

``select.select`` refuses descriptors numbered 1024 and above (FD_SETSIZE). A daemon that watches
one pidfd per conmon passes that number with about a thousand running containers, and from then
on every wait on a new pipe or pidfd would fail, so adapters wait with ``poll`` instead.
"""

from __future__ import annotations

import select


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Return True once ``fd`` is readable (or at end of file), False after ``timeout`` seconds.

    ``timeout`` None waits without limit, 0 only checks. A pidfd is readable once its process
    has exited.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    milliseconds = None if timeout is None else max(int(timeout * 1000), 0)
    return bool(poller.poll(milliseconds))
