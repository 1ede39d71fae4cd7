"""Fixtures for the consent and upload tests: a migrated SQLite store in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(store_url)
    yield session_factory(engine)
    engine.dispose()
