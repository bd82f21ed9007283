"""Check that only ``journal/`` imports SQLAlchemy, so other packages see only journal errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def sqlalchemy_imports(package: Path) -> list[str]:
    """Return ``file:line`` of every SQLAlchemy import in the package's Python sources."""
    found = []
    for source in sorted(package.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            if any(module.split(".")[0] == "sqlalchemy" for module in modules):
                found.append(f"{source.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("package", ["fsm", "adapters", "bosun"])
def test_package_does_not_import_sqlalchemy(package: str) -> None:
    directory = REPO_ROOT / package
    if not directory.is_dir():
        pytest.skip(f"{package}/ does not exist yet")

    assert sqlalchemy_imports(directory) == []


def test_checker_finds_journal_imports() -> None:
    assert sqlalchemy_imports(REPO_ROOT / "journal") != []
