"""Build small OCI bundles from Debian's busybox-static, for tests and the demo.

A bundle is a directory with ``config.json`` and a ``rootfs``. The rootfs here contains only the
static busybox binary and one symlink per applet, so it needs no image registry and no network.
``config.json`` starts from ``runc spec`` so that it matches what the installed runtime expects.

Command line::

    python -m adapters.bundle PATH [--memory-limit BYTES] [--env K=V ...] -- ARGS...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from adapters.base import AdapterError, ExecutableNotFound
from adapters.runc import DEFAULT_PATH, resolve_executable

logger = logging.getLogger(__name__)

BUSYBOX_PACKAGE = "busybox-static"


def find_static_busybox(busybox: str = "busybox") -> str:
    """Return the path of a statically linked busybox.

    Raises ``ExecutableNotFound`` naming ``busybox-static`` when there is none. A dynamically
    linked busybox is rejected, because the rootfs has no C library for it to load.
    """
    try:
        path = resolve_executable(busybox)
    except ExecutableNotFound:
        raise ExecutableNotFound(busybox, BUSYBOX_PACKAGE) from None
    if not _is_static_elf(path):
        msg = (
            f"busybox at {path} is dynamically linked and cannot run in a bare rootfs "
            f"(install the Debian package {BUSYBOX_PACKAGE!r})"
        )
        raise AdapterError(msg)
    return path


def make_busybox_bundle(
    path: Path | str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | Sequence[str] | None = None,
    memory_limit: int | None = None,
    cwd: str = "/",
    readonly_rootfs: bool = True,
    hostname: str | None = None,
    runtime: str = "runc",
    busybox: str = "busybox",
) -> Path:
    """Create an OCI bundle at ``path`` that runs ``args`` with busybox and return its path.

    ``env`` (a mapping or ``KEY=VALUE`` strings) is added after the default PATH.
    ``memory_limit`` in bytes sets ``linux.resources.memory.limit``. The process runs without a
    terminal, so a shim can hold its stdout and stderr. ``runtime`` is the binary whose ``spec``
    command writes the starting ``config.json``.
    """
    if not args:
        msg = "bundle args must not be empty: give the command the container runs"
        raise ValueError(msg)
    bundle = Path(path).absolute()
    busybox_path = find_static_busybox(busybox)

    # Root filesystem: busybox, its applets, and the mount points the default spec uses.
    rootfs = bundle / "rootfs"
    bin_dir = rootfs / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox_path, bin_dir / "busybox")
    for applet in _list_applets(busybox_path):
        # The list includes "busybox" itself; a symlink there would replace the binary.
        if applet == "busybox" or "/" in applet:
            continue
        link = bin_dir / applet
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")
    for directory in ("proc", "dev", "sys", "tmp", "etc", "root"):
        (rootfs / directory).mkdir(exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")

    # config.json: the runtime's own default, then bosun's changes.
    config_path = bundle / "config.json"
    if config_path.exists():
        config_path.unlink()
    runtime_path = resolve_executable(runtime)
    result = subprocess.run(
        [runtime_path, "spec"],
        cwd=bundle,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        cause = result.stderr.strip()
        msg = f"writing config.json in bundle {bundle}: {runtime} spec failed: {cause}"
        raise AdapterError(msg)
    config = json.loads(config_path.read_text())
    _apply_settings(
        config,
        args=args,
        env=env,
        memory_limit=memory_limit,
        cwd=cwd,
        readonly_rootfs=readonly_rootfs,
        hostname=hostname,
    )
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    logger.debug("made busybox bundle %s running %s", bundle, list(args))
    return bundle


def _apply_settings(
    config: dict[str, Any],
    *,
    args: Sequence[str],
    env: Mapping[str, str] | Sequence[str] | None,
    memory_limit: int | None,
    cwd: str,
    readonly_rootfs: bool,
    hostname: str | None,
) -> None:
    process = config.setdefault("process", {})
    process["terminal"] = False
    process["args"] = list(args)
    process["cwd"] = cwd
    environment = [DEFAULT_PATH]
    if isinstance(env, Mapping):
        environment += [f"{key}={value}" for key, value in env.items()]
    elif env is not None:
        environment += list(env)
    process["env"] = environment

    config.setdefault("root", {})["readonly"] = readonly_rootfs
    if hostname is not None:
        config["hostname"] = hostname

    if memory_limit is not None:
        resources = config.setdefault("linux", {}).setdefault("resources", {})
        resources.setdefault("memory", {})["limit"] = int(memory_limit)

    # A read-only rootfs still needs a writable /tmp for shell scripts and tests.
    mounts = config.setdefault("mounts", [])
    if not any(mount.get("destination") == "/tmp" for mount in mounts):
        mounts.append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            }
        )


def _list_applets(busybox_path: str) -> list[str]:
    result = subprocess.run(
        [busybox_path, "--list"], capture_output=True, text=True, timeout=30, check=True
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _is_static_elf(path: str) -> bool:
    """Tell whether the ELF file at ``path`` has no program interpreter (PT_INTERP)."""
    with open(path, "rb") as elf:
        header = elf.read(64)
        if header[:4] != b"\x7fELF":
            return False
        is_64 = header[4] == 2
        byteorder: Literal["little", "big"] = "little" if header[5] == 1 else "big"
        if is_64:
            phoff = int.from_bytes(header[32:40], byteorder)
            phentsize = int.from_bytes(header[54:56], byteorder)
            phnum = int.from_bytes(header[56:58], byteorder)
        else:
            phoff = int.from_bytes(header[28:32], byteorder)
            phentsize = int.from_bytes(header[42:44], byteorder)
            phnum = int.from_bytes(header[44:46], byteorder)
        elf.seek(phoff)
        table = elf.read(phentsize * phnum)
    pt_interp = 3
    for index in range(phnum):
        entry = table[index * phentsize : index * phentsize + 4]
        if int.from_bytes(entry, byteorder) == pt_interp:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Build a busybox bundle from the command line and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.bundle",
        description="Build an OCI bundle that runs ARGS with Debian's busybox-static.",
    )

    parser.add_argument("path", type=Path, help="bundle directory to create")
    parser.add_argument(
        "--memory-limit", type=int, default=None, help="memory limit in bytes (default: none)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add an environment variable (repeatable)",
    )
    parser.add_argument("--cwd", default="/", help="working directory inside the container")
    parser.add_argument("--hostname", default=None, help="container host name")
    parser.add_argument(
        "--writable-rootfs", action="store_true", help="mount the rootfs read-write"
    )
    parser.add_argument("args", nargs="+", help="command and arguments, after --")
    options = parser.parse_args(argv)

    try:
        bundle = make_busybox_bundle(
            options.path,
            options.args,
            env=options.env,
            memory_limit=options.memory_limit,
            cwd=options.cwd,
            readonly_rootfs=not options.writable_rootfs,
            hostname=options.hostname,
        )
    except AdapterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
