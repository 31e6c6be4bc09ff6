#!/usr/bin/env bash
# The service benchmark of the ledger service's write path, as ratios to the raw client of the
# same engine measured in the same run: batch path without and with the PostgreSQL audit trail,
# and concurrent single calls through the coalescer. The twin always; the official client on a
# real server too when TIGERBEETLE_BIN (a server binary) or TIGERBEETLE_ADDRESSES is set.
# Figures go to bench-results/service/results.json; `make bench` runs every section.
set -euo pipefail
cd "$(dirname "$0")/.."
make --quiet .venv/.installed
exec .venv/bin/tbledger bench --only engine,service --out bench-results/service "$@"
