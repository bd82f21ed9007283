"""A real ``bosun daemon`` process for end-to-end and crash tests, and cleanup of all it started.

Each test gets a short private root (conmon's attach sockets must fit in 107 bytes), its own
journal file and socket. Teardown stops the daemon, then kills and deletes every runtime
container under the root's runtime directory and every conmon whose pid file lies under the root,
each by pid, so no test leaves containers or shims behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from adapters.bundle import make_busybox_bundle

REPOSITORY = Path(__file__).resolve().parent.parent

# Safety nets against a hung test, not measurements.
START_LIMIT = 30.0
STOP_LIMIT = 30.0
COMMAND_LIMIT = 120.0


def missing_real_runtime() -> str | None:
    """Return why real-runtime tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to run containers with runc"
    for executable, package in (("runc", "runc"), ("conmon", "conmon"), ("busybox", "busybox-static")):
        if shutil.which(executable) is None:
            return f"needs {executable!r} (Debian package {package!r})"
    return None


class BosunDaemon:
    """One ``bosun daemon`` subprocess with a private root, journal and socket."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="bt", dir="/tmp"))
        self.root = self.base / "r"
        self.journal = f"sqlite:///{self.base}/journal.db"
        self.socket = self.root / "bosun.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.base / "daemon.log"
        self._bundles = 0

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "BOSUN_ROOT": str(self.root),
            "BOSUN_JOURNAL": self.journal,
            "BOSUN_SOCKET": str(self.socket),
        })
        env.pop("BOSUN_CRASH_AT", None)
        return env

    def start(self, *extra: str, crash_at: str | None = None, wait: bool = True) -> None:
        """Start the daemon and wait until its socket accepts commands (or it exits)."""
        argv = [sys.executable, "-m", "bosun", "daemon", *extra]
        if crash_at:
            argv += ["--crash-at", crash_at]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY)
        log.close()
        if not wait:
            return
        deadline = time.monotonic() + START_LIMIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode} at start:\n{self.log()}")
            if self.socket.exists():
                result = self.cli("ps", "--json", check=False)
                if result.returncode == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"daemon did not serve within {START_LIMIT:g} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Stop the daemon with SIGTERM (a clean stop) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Kill the daemon with SIGKILL, as a crash would."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait()

    def wait_exit(self, timeout: float = START_LIMIT) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def cli(self, *args: str, check: bool = True, timeout: float = COMMAND_LIMIT) -> subprocess.CompletedProcess[str]:
        """Run ``bosun ARGS`` against this daemon and return the finished process."""
        result = subprocess.run(
            [sys.executable, "-m", "bosun", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPOSITORY,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"bosun {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def bundle(self, args: Sequence[str], **options: Any) -> Path:
        self._bundles += 1
        return make_busybox_bundle(self.base / f"bundle{self._bundles}", list(args), **options)

    def runtime_state(self, container_id: str) -> dict[str, Any] | None:
        result = subprocess.run(
            ["runc", "--root", str(self.root / "runtime"), "state", container_id],
            capture_output=True, text=True, timeout=30,
        )
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def cleanup(self) -> None:
        """Stop the daemon and end every container and conmon it started."""
        self.kill()
        runtime_root = self.root / "runtime"
        if runtime_root.exists():
            listed = subprocess.run(["runc", "--root", str(runtime_root), "list", "-q"],
                                    capture_output=True, text=True, timeout=30)
            for container_id in listed.stdout.split():
                subprocess.run(["runc", "--root", str(runtime_root), "delete", "--force", container_id],
                               capture_output=True, timeout=30)
        kill_conmons_under(self.root)
        shutil.rmtree(self.base, ignore_errors=True)


def kill_conmons_under(root: Path) -> None:
    """SIGKILL every live conmon whose pid file lies under ``root``."""
    if not root.exists():
        return
    for pid_file in root.rglob("conmon.pid"):
        text = pid_file.read_text().strip()
        if not text.isdigit():
            continue
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(int(text))
            if process.name() == "conmon":
                process.kill()
