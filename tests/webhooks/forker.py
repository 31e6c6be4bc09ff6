"""A deliverer process factory for the crash test: imports tbledger once, then forks a fresh
deliverer process per line read on stdin and prints its pid, so a test can SIGKILL deliverers
many times without paying the interpreter's start-up each time. Run as a script:
``python forker.py DATABASE_URL``; the environment's TBLEDGER_WEBHOOK_* settings apply."""

from __future__ import annotations

import asyncio
import os
import sys

from tbledger.config import Settings
from tbledger.webhooks.deliverer import run_deliverer


def main() -> None:
    database_url = sys.argv[1]
    for _line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            # The child: nothing of the parent's runs in it (no loop or threads were started).
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):
                os.dup2(devnull, fd)
            asyncio.run(run_deliverer(Settings(database_url=database_url)))
            os._exit(0)
        print(pid, flush=True)
        # Reap children that were killed, so they do not linger as zombies.
        while True:
            try:
                done, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if done == 0:
                break


if __name__ == "__main__":
    main()
