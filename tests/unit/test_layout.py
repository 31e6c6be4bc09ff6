"""The layout's promises: the library never imports the tools, and shells never import the store."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tbledger"


def test_importing_the_library_leaves_the_tools_out() -> None:
    code = (
        "import sys, tbledger, tbledger.api, tbledger.client, tbledger.admin, tbledger.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('tbledger.tools')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_library_module_names_the_tools() -> None:
    for path in SRC.rglob("*.py"):
        if SRC / "tools" in path.parents or path.parent == SRC / "cli":
            continue  # the tools themselves, and the command line that starts them lazily
        named = {m for m in _imports(path) if m.startswith("tbledger.tools")}
        assert not named, (path, named)


def test_the_command_line_and_the_client_never_import_the_store() -> None:
    shells = [SRC / "client", SRC / "cli"]
    for shell in shells:
        for path in [shell] if shell.suffix else shell.rglob("*.py"):
            if path.exists():
                named = {m for m in _imports(path) if m.startswith("tbledger.store")}
                assert not named, (path, named)
