"""``python -m tbledger``: the command line entry point (see `tbledger.cli`)."""

from __future__ import annotations

import sys

from tbledger.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
