"""``tbledger cdc``: TigerBeetle's change stream (CDC) into the store.

``run`` consumes the stream from the broker at ``TBLEDGER_CDC_URL`` (the exchange
``TBLEDGER_CDC_EXCHANGE`` that `tigerbeetle amqp` publishes to) into the store until interrupted;
with ``--supervise`` it also runs `tigerbeetle amqp` against the cluster of
``TIGERBEETLE_ADDRESSES`` (the binary is ``TIGERBEETLE_BIN``), started again whenever it exits.
``tbledger serve`` runs the same consumer when ``TBLEDGER_CDC_URL`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from tbledger.cli._options import DEFAULT_DATA_DIR, DatabaseOpt, DataDirOpt, database_url_of
from tbledger.cli._output import die, run_or_exit

__all__ = ["cdc_app"]

cdc_app = typer.Typer(
    help="TigerBeetle's change stream (CDC) into the store.", no_args_is_help=True
)


@cdc_app.command("run")
def run(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    supervise: Annotated[
        bool, typer.Option("--supervise", help="also run `tigerbeetle amqp` (TIGERBEETLE_BIN)")
    ] = False,
) -> None:
    """Consume the change stream until interrupted (TBLEDGER_CDC_* settings apply)."""
    from tbledger.cdc import ChangeStream  # noqa: PLC0415 (client commands start fast)
    from tbledger.config import Settings  # noqa: PLC0415
    from tbledger.errors import ConfigurationError  # noqa: PLC0415
    from tbledger.service import LedgerService  # noqa: PLC0415

    try:
        settings = Settings(database_url=database_url_of(database_url, data_dir))
        if supervise:
            settings = settings.model_copy(update={"cdc_supervise": True})
        if settings.cdc_url is None:
            raise ConfigurationError(
                "set TBLEDGER_CDC_URL to the broker the change stream is on "
                "(amqp://user:password@host:5672/vhost)"
            )
    except ConfigurationError as exc:
        raise die(str(exc), 2) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        # The recovery pass is the serving process's; this one only records what the stream says.
        async with contextlib.AsyncExitStack() as stack:
            service = LedgerService(settings)
            await service.connect(recover=False)
            stack.push_async_callback(service.close)
            stream = ChangeStream(service, settings)
            stream.start()
            stack.push_async_callback(stream.stop)
            await stop.wait()

    run_or_exit(main())
