"""The intent/audit store, run against SQLite and PostgreSQL."""
