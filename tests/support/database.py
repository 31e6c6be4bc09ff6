"""Find a PostgreSQL server for the store tests, or start a throwaway one, and give out databases.

Discovery, first that answers wins:

1. ``TBLEDGER_TEST_DATABASE_URL``: a server you run (its URL names a database the user can log
   in to; the tests create their own database next to it, or their own schema in it when the
   user may not create databases).
2. The local server at ``postgresql://postgres@127.0.0.1:5432/test`` (trust authentication, as on
   a developer machine or CI image with PostgreSQL installed).
3. A throwaway cluster: ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (newest
   version), in a temporary folder, on a free loopback port, with trust authentication, removed
   at the end. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.

With none of them, `postgres_reason()` says why the PostgreSQL cases skip. Each test session
creates one database ``tbledger_test_<random>`` and drops it at the end; each test gets its own
schema in it, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from tbledger.store import DEFAULT_APP_ROLE, StoreOptions

_T = TypeVar("_T")

ENV_URL = "TBLEDGER_TEST_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Set to 1 to skip the env/local server and always start a throwaway cluster (tests that path).
ENV_FORCE_THROWAWAY = "TBLEDGER_TEST_THROWAWAY_POSTGRES"
CONNECT_TIMEOUT_S = 3.0
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PostgresServer:
    """A server the tests may use: `url` logs in to an existing database as a privileged user."""

    url: str
    origin: str  # "env", "local" or "throwaway"

    def database_url(self, database: str) -> str:
        return make_url(self.url).set(database=database).render_as_string(hide_password=False)


def answers(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """None if the server at `url` accepts a login, else why not."""

    async def probe() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=timeout_s)
        await connection.close()

    try:
        _run_async(probe())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def postgres_binaries() -> str | None:
    """The bin folder of the newest PostgreSQL installed from Debian packages, if any."""
    candidates = [
        path
        for path in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(os.path.join(path, "initdb"), os.X_OK)
        and os.access(os.path.join(path, "pg_ctl"), os.X_OK)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda p: int(p.split("/")[-2].split(".")[0]))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL cluster on a free port; stop and delete it on exit."""
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    run_as = _unprivileged_user() if os.geteuid() == 0 else None
    folder = tempfile.mkdtemp(prefix="tbledger-pg-")
    data = os.path.join(folder, "data")
    port = free_port()
    try:
        if run_as is not None:
            os.chown(folder, run_as.pw_uid, run_as.pw_gid)
        _run(
            run_as,
            [
                os.path.join(binaries, "initdb"),
                "--pgdata",
                data,
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        _run(
            run_as,
            [
                os.path.join(binaries, "pg_ctl"),
                "--pgdata",
                data,
                "--log",
                os.path.join(folder, "server.log"),
                "--options",
                options,
                "--wait",
                "--timeout",
                str(int(START_TIMEOUT_S)),
                "start",
            ],
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + START_TIMEOUT_S
        while (reason := answers(url)) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"throwaway PostgreSQL did not answer: {reason}")
            time.sleep(0.1)
        yield PostgresServer(url=url, origin="throwaway")
    finally:
        with contextlib.suppress(Exception):
            _run(
                run_as,
                [os.path.join(binaries, "pg_ctl"), "--pgdata", data, "--mode", "immediate", "stop"],
            )
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _run(user: pwd.struct_passwd | None, argv: list[str]) -> None:
    if user is not None:
        # runuser switches user without a password or a login shell (util-linux, as root only).
        argv = ["runuser", "-u", user.pw_name, "--", *argv]
    # check=False: the failure is raised below with PostgreSQL's own message.
    completed = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({completed.returncode}): {completed.stderr.strip()}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer | str]:
    """The server for this test session, or a string saying why there is none."""
    if os.environ.get(ENV_FORCE_THROWAWAY) != "1":
        url = os.environ.get(ENV_URL)
        if url:
            reason = answers(url)
            if reason is None:
                yield PostgresServer(url=url, origin="env")
            else:
                # An explicit server that does not answer is an error to see, not a silent skip.
                yield f"{ENV_URL}={url!r} does not answer: {reason}"
            return
        if answers(LOCAL_URL) is None:
            yield PostgresServer(url=LOCAL_URL, origin="local")
            return
    if postgres_binaries() is None:
        yield (
            f"no PostgreSQL: set {ENV_URL}, run a server at {LOCAL_URL}, or install the "
            "postgresql package (initdb, pg_ctl)"
        )
        return
    try:
        cluster = throwaway_cluster()
        server = cluster.__enter__()
    except Exception as exc:
        yield f"could not start a throwaway PostgreSQL: {exc}"
        return
    try:
        yield server
    finally:
        cluster.__exit__(None, None, None)


@dataclass(frozen=True)
class SessionDatabase:
    """Where one test session's schemas go: its own database, or the server's when not allowed."""

    url: str
    # True when the session created (and will drop) this database; False when the login user may
    # not create databases and the session's schemas live in the server's own database.
    dedicated: bool
    # Prefix of every schema the session creates, so a shared database can be cleaned up.
    prefix: str

    def new_schema(self) -> str:
        """A fresh schema name of this session's own (under its prefix, so it is dropped too)."""
        return f"{self.prefix}_{secrets.token_hex(4)}"

    def store_options(self) -> StoreOptions:
        """Options for a store in a fresh schema of its own, acting as the application role."""
        return StoreOptions(schema=self.new_schema(), role=DEFAULT_APP_ROLE)


def create_test_database(server: PostgresServer) -> SessionDatabase:
    """CREATE DATABASE tbledger_test_<random>, or fall back to schemas in the server's database."""
    name = f"tbledger_test_{secrets.token_hex(6)}"

    async def create() -> SessionDatabase:
        connection = await asyncpg.connect(_asyncpg_dsn(server.url), timeout=CONNECT_TIMEOUT_S)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.InsufficientPrivilegeError:
            return SessionDatabase(url=server.url, dedicated=False, prefix=name)
        finally:
            await connection.close()
        return SessionDatabase(url=server.database_url(name), dedicated=True, prefix=name)

    return _run_async(create())


def drop_test_database(server: PostgresServer, database: SessionDatabase) -> None:
    """Drop what the session made: its database, or its schemas in a shared one."""

    async def drop() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(server.url), timeout=CONNECT_TIMEOUT_S)
        try:
            if database.dedicated:
                name = make_url(database.url).database
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            schemas = await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{database.prefix}%"
            )
            for row in schemas:
                # The append-only triggers refuse TRUNCATE, not DROP.
                await connection.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        finally:
            await connection.close()

    _run_async(drop())


def _run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    # A thread of its own, so these helpers work from plain code and from inside a running event
    # loop alike (session fixtures are set up from async tests).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _asyncpg_dsn(url: str) -> str:
    # asyncpg takes plain postgresql:// DSNs; SQLAlchemy-style driver suffixes are dropped.
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
