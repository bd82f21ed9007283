"""An in-process daemon on the simulated runtime, served over TCP on 127.0.0.1 for API tests.

The daemon is the real ``bosun.daemon.Daemon`` with its journal in a private temporary
directory; only the runtime and shim are simulated. The aiohttp application from
``bosun.api.build_app`` runs on its own event loop in a background thread, bound to an ephemeral
loopback port, and ``close`` stops the loop, the daemon and the simulated world.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from adapters.simulated import SimulatedRuntime, SimulatedShim, SimulatedWorld
from bosun.api import build_app
from bosun.config import DaemonSettings
from bosun.daemon import Daemon, prepare_root
from journal import EventStore

# Safety net against a hung server thread, not a measurement.
SERVER_LIMIT = 30.0


def make_bundle(directory: Path, args: list[str], env: list[str] | None = None) -> Path:
    """Write a minimal OCI bundle (config.json and an empty rootfs) into ``directory``."""
    (directory / "rootfs").mkdir(parents=True, exist_ok=True)
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": args, "env": env or ["PATH=/bin"], "cwd": "/"},
        "root": {"path": "rootfs"},
    }
    (directory / "config.json").write_text(json.dumps(config))
    return directory


class SimulatedServer:
    """A ``Daemon`` on ``SimulatedRuntime``/``SimulatedShim`` serving its API on 127.0.0.1."""

    def __init__(self, *, keep_env_values: bool = False) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bapi", dir="/tmp"))
        self.journal_url = f"sqlite:///{self.base}/journal.db"
        self.settings = DaemonSettings(
            root=self.base / "r",
            journal_url=self.journal_url,
            socket=self.base / "r" / "unused.sock",
            keep_env_values=keep_env_values,
        )
        prepare_root(self.settings)
        self.world = SimulatedWorld()
        self.store = EventStore.open(self.journal_url)
        self.daemon = Daemon(
            self.settings,
            self.store,
            SimulatedRuntime(self.world, self.settings.runtime_root),
            SimulatedShim(self.world),
        )
        self.daemon.recover()
        self.session = requests.Session()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="bosun-api-test", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(SERVER_LIMIT)
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> int:
        self._runner = web.AppRunner(build_app(self.daemon), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", SERVER_LIMIT)
        return self.session.request(method, self.base_url + path, **kwargs)

    def bundle(self, name: str, args: list[str] | None = None, env: list[str] | None = None) -> Path:
        return make_bundle(self.base / name, args or ["sleep", "600"], env)

    def event_count(self) -> int:
        return len(self.store.read_all())

    def state_dirs(self) -> set[str]:
        return {path.name for path in self.settings.containers_dir.iterdir()}

    def runtime_containers(self) -> set[str]:
        return set(self.world.containers)

    def close(self) -> None:
        """Stop serving, stop the daemon and the simulated world, and remove the directory."""
        self.session.close()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(SERVER_LIMIT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(SERVER_LIMIT)
        self._loop.close()
        self.daemon.stop("test finished")
        self.world.close()
        shutil.rmtree(self.base, ignore_errors=True)
