"""Tell a running daemon that a process exited; conmon runs this as its exit command.

Only the standard library is imported, because conmon starts it once per process exit. A
daemon that is not running is not an error: recovery reads the exit file at its next start.
"""

from __future__ import annotations

import http.client
import socket
import sys


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m bosun.notify SOCKET CONTAINER_ID PROCESS_ID", file=sys.stderr)
        return 2
    socket_path, container_id, process_id = argv
    connection = _UnixConnection(socket_path)
    try:
        connection.request("POST", f"/v1/containers/{container_id}/processes/{process_id}/exit-notice", body=b"{}",
                           headers={"Content-Type": "application/json"})
        connection.getresponse().read()
    except OSError:
        return 0
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
