"""Bad identifiers, bundles and command arguments through the CLI against a real daemon.

Every rejected command must exit 1 (or 2 for what argparse rejects) with a message naming the
value and the rule, and leave the journal, the state directories, the runtime containers and
the conmon processes as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bosun.client import ApiError, Client
from bosun.ids import ID_RULE
from tests.daemon_support import BosunDaemon
from tests.hardening.conftest import Leftovers, assert_nothing_left, unique_id

pytestmark = pytest.mark.runc

BAD_IDS = ["..", ".", "a/b", "../etc", "a..b", "a__b", "a-", ".a", "a.", "x" * 77, "a b"]


def running_container(daemon: BosunDaemon) -> str:
    container_id = unique_id("run")
    daemon.cli("run", "--detach", container_id, str(daemon.bundle(["sleep", "600"])))
    return container_id


# -- identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [*BAD_IDS, "", "-a"], ids=repr)
def test_create_bad_id_rejected(daemon: BosunDaemon, bad_id: str) -> None:
    bundle = daemon.bundle(["true"])
    before = Leftovers.of(daemon)

    # '--' lets an id that starts with '-' through argparse to the daemon.
    result = daemon.cli("create", "--", bad_id, str(bundle), check=False)

    assert result.returncode == 1
    assert result.stderr == f"bosun: invalid container id {bad_id!r}: use {ID_RULE}\n"
    assert_nothing_left(daemon, before)


def test_create_nul_id_rejected_by_api(daemon: BosunDaemon) -> None:
    # A NUL byte cannot travel in argv, so this one goes through the client library.
    bundle = daemon.bundle(["true"])
    before = Leftovers.of(daemon)

    with pytest.raises(ApiError) as raised:
        Client(daemon.socket).create("a\x00b", str(bundle))

    assert raised.value.status == 400
    assert raised.value.message == f"invalid container id 'a\\x00b': use {ID_RULE}"
    assert_nothing_left(daemon, before)


@pytest.mark.parametrize("bad_id", ["..", "../etc", "x" * 77], ids=repr)
def test_info_bad_id_rejected(daemon: BosunDaemon, bad_id: str) -> None:
    result = daemon.cli("info", bad_id, check=False)

    assert result.returncode == 1
    assert ID_RULE in result.stderr


@pytest.mark.parametrize("exec_id", ["..", "a/b", "x" * 77, "a-", "init"], ids=repr)
def test_exec_bad_id_rejected(daemon: BosunDaemon, exec_id: str) -> None:
    container_id = running_container(daemon)
    before = Leftovers.of(daemon)

    result = daemon.cli("exec", container_id, exec_id, "--", "true", check=False)

    assert result.returncode == 1
    assert f"invalid exec id {exec_id!r}" in result.stderr
    if exec_id != "init":
        assert ID_RULE in result.stderr
    assert_nothing_left(daemon, before)


@pytest.mark.parametrize("name", ["..", "a/b", "x" * 77, "_a"], ids=repr)
def test_checkpoint_bad_name_rejected(daemon: BosunDaemon, name: str) -> None:
    container_id = running_container(daemon)
    before = Leftovers.of(daemon)

    created = daemon.cli("checkpoint", "create", "--leave-running", container_id, name, check=False)
    deleted = daemon.cli("checkpoint", "delete", container_id, name, check=False)
    restored = daemon.cli("start", "--checkpoint", name, container_id, check=False)

    for result in (created, deleted, restored):
        assert result.returncode == 1
        assert f"invalid checkpoint name {name!r}: use {ID_RULE}" in result.stderr
    assert_nothing_left(daemon, before)


def test_duplicate_container_id_rejected(daemon: BosunDaemon) -> None:
    container_id = running_container(daemon)
    before = Leftovers.of(daemon)

    result = daemon.cli("create", container_id, str(daemon.bundle(["true"])), check=False)

    assert result.returncode == 1
    assert f"container {container_id} already exists (state running)" in result.stderr
    assert_nothing_left(daemon, before)


def test_duplicate_live_exec_id_rejected(daemon: BosunDaemon) -> None:
    container_id = running_container(daemon)
    daemon.cli("exec", container_id, "probe", "--", "sleep", "600")
    before = Leftovers.of(daemon)

    result = daemon.cli("exec", container_id, "probe", "--", "sleep", "600", check=False)

    assert result.returncode == 1
    assert f"exec process probe already runs in container {container_id}" in result.stderr
    assert_nothing_left(daemon, before)


# -- bundles --------------------------------------------------------------------------------


def broken_bundle(daemon: BosunDaemon, case: str) -> Path:
    """Return a bundle directory broken in the way ``case`` names."""
    bundle = daemon.bundle(["true"])
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    if case == "missing-directory":
        return daemon.base / "no-such-bundle"
    if case == "missing-config":
        config_path.unlink()
    elif case == "config-is-directory":
        config_path.unlink()
        config_path.mkdir()
    elif case == "dangling-symlink":
        config_path.unlink()
        config_path.symlink_to(daemon.base / "no-such-config.json")
    elif case == "invalid-json":
        config_path.write_text('{"process": ')
    elif case == "no-process-args":
        del config["process"]["args"]
        config_path.write_text(json.dumps(config))
    elif case == "empty-process-args":
        config["process"]["args"] = []
        config_path.write_text(json.dumps(config))
    elif case == "missing-rootfs":
        config["root"]["path"] = "no-such-rootfs"
        config_path.write_text(json.dumps(config))
    return bundle


BUNDLE_CASES = {
    "missing-directory": "invalid bundle {bundle}: directory not found",
    "missing-config": "invalid bundle {bundle}: {bundle}/config.json not found",
    "config-is-directory": "invalid bundle {bundle}: cannot read {bundle}/config.json: [Errno 21] Is a directory",
    "dangling-symlink": "invalid bundle {bundle}: {bundle}/config.json is a symbolic link to {base}/no-such-config.json, "
                        "which does not exist",
    "invalid-json": "invalid bundle {bundle}: {bundle}/config.json is not valid JSON: Expecting value: line 1 column 13",
    "no-process-args": "invalid bundle {bundle}: {bundle}/config.json field process.args must be a non-empty list",
    "empty-process-args": "invalid bundle {bundle}: {bundle}/config.json field process.args must be a non-empty list",
    "missing-rootfs": "invalid bundle {bundle}: {bundle}/config.json field root.path names {bundle}/no-such-rootfs, "
                      "which does not exist",
}


@pytest.mark.parametrize("case", sorted(BUNDLE_CASES))
def test_broken_bundle_rejected(daemon: BosunDaemon, case: str) -> None:
    bundle = broken_bundle(daemon, case)
    container_id = unique_id("bundle")
    before = Leftovers.of(daemon)

    result = daemon.cli("create", container_id, str(bundle), check=False)

    assert result.returncode == 1
    expected = BUNDLE_CASES[case].format(bundle=bundle, base=daemon.base)
    assert result.stderr.startswith(f"bosun: {expected}")
    assert_nothing_left(daemon, before)
    assert daemon.cli("info", container_id, check=False).returncode == 1


# -- commands -------------------------------------------------------------------------------


def version_of(daemon: BosunDaemon, container_id: str) -> int:
    return int(daemon.json("info", container_id)["version"])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("start",), "cannot start container {id}: state is running; start is allowed in created"),
        (("resume",), "cannot resume container {id}: state is running; resume is allowed in paused"),
        (("delete",), "cannot delete container {id}: state is running; delete is allowed in created, stopped"),
        (("kill", "--signal", "SIGFOO"), "invalid signal 'SIGFOO'"),
        (("kill", "--signal", "0"), "invalid signal 0: numbers must be between 1 and 64"),
        (("kill", "--signal", "99"), "invalid signal 99: numbers must be between 1 and 64"),
        (("update", "--memory", "1"), "invalid resources: memory.limit=1 is outside 4194304..1125899906842624"),
        (("update", "--memory", str(1 << 60)), f"invalid resources: memory.limit={1 << 60} is outside"),
        (("update", "--cpu-shares", "0"), "invalid resources: cpu.shares=0 is outside 2..262144"),
        (("kill", "--exec", "nobody"), "exec process nobody of container {id} not found"),
        (("checkpoint", "delete", "{id}", "nope"), "checkpoint nope of container {id} not found; checkpoints: none"),
        (("start", "--checkpoint", "nope"), "checkpoint nope of container {id} not found; checkpoints: none"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_bad_command_changes_nothing(daemon: BosunDaemon, command: tuple[str, ...], message: str) -> None:
    container_id = running_container(daemon)
    version = version_of(daemon, container_id)
    before = Leftovers.of(daemon)
    argv = [part.format(id=container_id) for part in command]
    if "{id}" not in command:
        argv.append(container_id)

    result = daemon.cli(*argv, check=False)

    assert result.returncode == 1
    assert message.format(id=container_id) in result.stderr
    assert version_of(daemon, container_id) == version
    assert daemon.runtime_state(container_id)["status"] == "running"
    assert_nothing_left(daemon, before)


@pytest.mark.parametrize(
    "argv",
    [("update", "--memory", "-5"), ("exec", "{id}", "e1")],
    ids=["negative-memory", "exec-without-args"],
)
def test_usage_error_changes_nothing(daemon: BosunDaemon, argv: tuple[str, ...]) -> None:
    container_id = running_container(daemon)
    version = version_of(daemon, container_id)
    before = Leftovers.of(daemon)
    args = [part.format(id=container_id) for part in argv]
    if "{id}" not in argv:
        args.append(container_id)

    result = daemon.cli(*args, check=False)

    assert result.returncode == 2
    assert "error:" in result.stderr
    assert version_of(daemon, container_id) == version
    assert_nothing_left(daemon, before)


def test_api_negative_memory_and_empty_exec_rejected(daemon: BosunDaemon) -> None:
    # The CLI rejects these before sending, so the daemon's own checks are driven through the client.
    container_id = running_container(daemon)
    version = version_of(daemon, container_id)
    before = Leftovers.of(daemon)
    client = Client(daemon.socket)

    with pytest.raises(ApiError) as memory:
        client.request("POST", f"/v1/containers/{container_id}/update",
                       body={"resources": {"memory": {"limit": -5}}})
    with pytest.raises(ApiError) as empty_exec:
        client.request("POST", f"/v1/containers/{container_id}/exec", body={"exec_id": "e1", "args": []})

    assert memory.value.status == 400
    assert "memory.limit=-5 is outside" in memory.value.message
    assert empty_exec.value.status == 400
    assert "args must be a non-empty list" in empty_exec.value.message
    assert version_of(daemon, container_id) == version
    assert_nothing_left(daemon, before)
