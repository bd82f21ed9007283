"""Checks of user input that must happen before anything is journaled or created.

Each check raises ``InvalidRequest`` with a message naming the value, the file or field, and
what is allowed.
"""

from __future__ import annotations

import json
import signal as signal_module
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class InvalidRequest(ValueError):
    """Raised for input that can never succeed: bad bundle, signal, resources or spec."""


def load_bundle_config(bundle: str) -> tuple[Path, dict[str, Any]]:
    """Check an OCI bundle and return its absolute path and parsed ``config.json``."""
    if not bundle:
        raise InvalidRequest("invalid bundle: the path must not be empty")
    path = Path(bundle)
    if not path.is_absolute():
        raise InvalidRequest(f"invalid bundle {bundle!r}: the path must be absolute")
    if not path.is_dir():
        raise InvalidRequest(f"invalid bundle {bundle}: directory not found")

    config_path = path / "config.json"
    try:
        raw = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if config_path.is_symlink():
            msg = (
                f"invalid bundle {bundle}: {config_path} is a symbolic link to "
                f"{config_path.readlink()}, which does not exist"
            )
            raise InvalidRequest(msg) from None
        raise InvalidRequest(f"invalid bundle {bundle}: {config_path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"invalid bundle {bundle}: cannot read {config_path}: {exc}") from None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        msg = f"invalid bundle {bundle}: {config_path} is not valid JSON: {exc}"
        raise InvalidRequest(msg) from None
    if not isinstance(config, dict):
        raise InvalidRequest(f"invalid bundle {bundle}: {config_path} must hold a JSON object")

    process = config.get("process")
    args = process.get("args") if isinstance(process, dict) else None
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        msg = (
            f"invalid bundle {bundle}: {config_path} field process.args must be a "
            "non-empty list of strings"
        )
        raise InvalidRequest(msg)

    root = config.get("root")
    root_path = root.get("path") if isinstance(root, dict) else None
    if not isinstance(root_path, str) or not root_path:
        raise InvalidRequest(f"invalid bundle {bundle}: {config_path} field root.path is missing")
    rootfs = (path / root_path) if not Path(root_path).is_absolute() else Path(root_path)
    if not rootfs.is_dir():
        msg = f"invalid bundle {bundle}: {config_path} field root.path names {rootfs}, which does not exist"
        raise InvalidRequest(msg)
    return path, config


def parse_signal(value: str | int) -> int:
    """Turn ``SIGKILL``, ``KILL``, ``kill`` or ``9`` into a signal number."""
    if isinstance(value, bool):
        raise InvalidRequest(f"invalid signal {value!r}: use a name such as SIGTERM or a number 1-64")
    # isdigit alone also accepts digits such as "²" that int() rejects, so ASCII is required.
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        number = int(value) if isinstance(value, int) or len(value) <= 4 else 0
        if 1 <= number <= signal_module.SIGRTMAX:
            return number
        msg = f"invalid signal {value!r}: numbers must be between 1 and {int(signal_module.SIGRTMAX)}"
        raise InvalidRequest(msg)
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal_module.Signals[name])
    except KeyError:
        raise InvalidRequest(
            f"invalid signal {value!r}: use a name such as SIGTERM, SIGKILL, SIGHUP or a number 1-64"
        ) from None


# Bounds on the resource values bosun passes to the runtime; anything outside is a mistake.
_MAX_BYTES = 1 << 50  # 1 PiB
_RESOURCE_RULES: dict[str, dict[str, tuple[int, int]]] = {
    "memory": {"limit": (4 * 1024 * 1024, _MAX_BYTES), "reservation": (0, _MAX_BYTES), "swap": (-1, _MAX_BYTES)},
    "cpu": {"shares": (2, 262144), "quota": (-1, 1 << 40), "period": (1000, 1000000)},
    "pids": {"limit": (-1, 1 << 22)},
}


def validate_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """Check OCI ``linux.resources`` values for ``update``; return them unchanged if valid."""
    if not isinstance(resources, Mapping) or not resources:
        raise InvalidRequest(
            "invalid resources: give at least one of memory.limit, memory.reservation, "
            "memory.swap, cpu.shares, cpu.quota, cpu.period, pids.limit"
        )
    for group, values in resources.items():
        rules = _RESOURCE_RULES.get(group)
        if rules is None:
            msg = f"invalid resources: unknown group {group!r}; allowed: {', '.join(_RESOURCE_RULES)}"
            raise InvalidRequest(msg)
        if not isinstance(values, Mapping) or not values:
            raise InvalidRequest(f"invalid resources: {group} must be an object with at least one field")
        for field, value in values.items():
            bounds = rules.get(field)
            if bounds is None:
                msg = f"invalid resources: unknown field {group}.{field}; allowed: {', '.join(rules)}"
                raise InvalidRequest(msg)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequest(f"invalid resources: {group}.{field} must be an integer, got {value!r}")
            low, high = bounds
            if not low <= value <= high:
                msg = f"invalid resources: {group}.{field}={value} is outside {low}..{high}"
                raise InvalidRequest(msg)
    return dict(resources)


def validate_exec_args(args: Any) -> list[str]:
    """Check an exec process's argument list."""
    if not isinstance(args, list) or not args or not all(isinstance(a, str) and a for a in args):
        raise InvalidRequest("invalid exec: args must be a non-empty list of non-empty strings")
    return list(args)


def validate_labels(labels: Any) -> dict[str, str]:
    """Check labels: string keys and values, keys non-empty and without '='."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidRequest("invalid labels: give an object of string keys and string values")
    for key, value in labels.items():
        if not isinstance(key, str) or not key or "=" in key or len(key) > 253:
            raise InvalidRequest(f"invalid label key {key!r}: use a non-empty string without '=', at most 253 characters")
        if not isinstance(value, str) or len(value) > 4096:
            raise InvalidRequest(f"invalid label {key!r}: the value must be a string of at most 4096 characters")
    return dict(labels)
