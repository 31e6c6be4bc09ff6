"""No module imports another module's private name, nor a private module from outside its package.

ruff's import-private-name rule (PLC2701, on in pyproject.toml) checks imports across packages
but leaves those within one top-level package alone, which is where tbledger's insides are; this
walks every module of the package for the same rule inside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tbledger

_ROOT = Path(tbledger.__file__).parent


def _module_of(path: Path) -> str:
    parts = ("tbledger", *path.relative_to(_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _violations() -> list[str]:
    found = []
    for path in sorted(_ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = _module_of(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                continue
            source = node.module
            if not source.startswith("tbledger"):
                continue
            # A private module is the inside of the package that holds it.
            parts = source.split(".")
            for depth, part in enumerate(parts):
                owner = ".".join(parts[:depth])
                if _private(part) and not (package == owner or package.startswith(owner + ".")):
                    found.append(f"{module}: from {source} import ...")
            for alias in node.names:
                if _private(alias.name) and source != module:
                    found.append(f"{module}: from {source} import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    assert _violations() == []
