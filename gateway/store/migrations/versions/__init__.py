"""Alembic revisions: one history, one head."""
