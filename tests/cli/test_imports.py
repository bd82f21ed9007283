"""The client path stays light: no SQLAlchemy, aiohttp, journal or fsm on a client command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("sqlalchemy", "aiohttp", "alembic", "journal", "fsm")

# Runs one command in a fresh interpreter, then prints the heavy top-level packages it loaded.
PROBE = f"""
import io, sys
from bosun import cli
cli.main(sys.argv[1:], stdout=io.StringIO(), stderr=io.StringIO())
print(",".join(sorted({{name.split(".")[0] for name in sys.modules}} & {set(HEAVY)!r})))
"""


def loaded_heavy_modules(*argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=True,
    )
    line = result.stdout.strip()
    return line.split(",") if line else []


def test_client_command_imports_no_heavy_module(tmp_path: Path) -> None:
    assert loaded_heavy_modules("--socket", str(tmp_path / "none.sock"), "ps") == []


def test_every_client_command_parses_light(tmp_path: Path) -> None:
    socket_path = str(tmp_path / "none.sock")
    for argv in (["logs", "web"], ["events"], ["audit"], ["checkpoint", "list", "web"], ["history", "web"]):
        assert loaded_heavy_modules("--socket", socket_path, *argv) == [], argv


def test_help_imports_no_heavy_module() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bosun", "ps", "--help"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert imported.isdisjoint(HEAVY)
    assert "bosun" in imported


def test_journal_command_does_load_journal(tmp_path: Path) -> None:
    # The probe itself must be able to see a heavy import, or the tests above prove nothing.
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    assert "journal" in loaded_heavy_modules("journal", "migrate", "--journal", url)
