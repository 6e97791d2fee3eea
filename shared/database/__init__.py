"""Connections to the one PostgreSQL that is the source of truth (embedded or DATABASE_URL)."""
