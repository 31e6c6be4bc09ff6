"""``python -m tbledger``: the command line entry point."""

from __future__ import annotations

import argparse
import asyncio
import sys

from tbledger.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tbledger")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="a short demonstration on the embedded engine")
    demo.add_argument("--engine", default="memory://", help="engine URL (default memory://)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        asyncio.run(run_demo(args.engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
