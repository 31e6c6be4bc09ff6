"""Alembic migrations of the store's schema; run them with `tbledger.store.migrate.upgrade`."""
