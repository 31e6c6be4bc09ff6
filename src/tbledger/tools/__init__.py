"""Tools around the library that the library never imports: the load generator
(`tbledger.tools.loadtest`), the benchmarks (`tbledger.tools.bench`), the demo
(`tbledger.tools.demo`) and code generation (`tbledger.tools.sync_client`).

The command line starts them lazily (``tbledger loadtest``, ``bench``, ``demo``); a test checks
that importing the library (the service, flows, store, engines, API, client) leaves this package
out of ``sys.modules``.
"""
