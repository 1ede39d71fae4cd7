"""Alembic migration scripts; a package so they ship with the installed gateway."""
