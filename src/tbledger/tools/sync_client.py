"""Generate the blocking `LedgerClient` from the async one (``-m tbledger.tools.sync_client``).

The async client (``tbledger/client/_async_client.py``) is the only source: the blocking one is
the same text with the async words taken out (the approach of psycopg's ``async_to_sync``), so the
two cannot drift apart. ``--check`` exits 1 when the generated file is not current (a test runs
it). The rules are plain textual replacements, in order; the async source is written to need no
others.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SOURCE", "TARGET", "generate", "main"]

SOURCE = Path(__file__).resolve().parent.parent / "client" / "_async_client.py"
TARGET = SOURCE.with_name("_sync_client.py")

_PYPROJECT = SOURCE.parents[3] / "pyproject.toml"

HEADER = (
    "# Generated from _async_client.py by `python -m tbledger.tools.sync_client`: do not edit.\n"
)

_RULES: tuple[tuple[str, str], ...] = (
    (
        r"`AsyncLedgerClient`: every route of the HTTP API as one typed, async method\.",
        "`LedgerClient`: every route of the HTTP API as one typed, blocking method.",
    ),
    (r"\bAsyncLedgerClient\b", "LedgerClient"),
    (r"\bHttpxAsyncTransport\b", "HttpxTransport"),
    (r"\bAsyncTransport\b", "SyncTransport"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r", async\. ", ", blocking. "),
    (r"``async with (\w+)\(", r"``with \1("),
)


def generate(source: str) -> str:
    """The blocking client's source for the async client's `source`."""
    text = source
    for pattern, replacement in _RULES:
        text = re.sub(pattern, replacement, text)
    return HEADER + text


def _formatted(text: str) -> str:
    """`text` as ruff formats and sorts it (the repository's style), so that the generated file
    passes the linters as it stands."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / TARGET.name
        path.write_text(text)
        ruff = [sys.executable, "-m", "ruff"]
        config = ["--config", str(_PYPROJECT)] if _PYPROJECT.exists() else []
        subprocess.run(
            [*ruff, "check", "--quiet", "--fix", "--select", "I", *config, str(path)], check=False
        )
        subprocess.run([*ruff, "format", "--quiet", *config, str(path)], check=True)
        return path.read_text()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    wanted = _formatted(generate(SOURCE.read_text()))
    if "--check" in args:
        if not TARGET.exists() or TARGET.read_text() != wanted:
            print(f"{TARGET} is not current: run python -m tbledger.tools.sync_client")
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
