"""Shared pytest fixtures: real origins, a real mitmdump, and a PostgreSQL database.

End-to-end test in a few lines (see ``tests/test_harness.py`` for more)::

    import pytest
    from tests.support.clients import curl, fetch

    @pytest.mark.e2e
    def test_blocks_facebook(mitmdump_proxy, origin_https):
        proxy = mitmdump_proxy(["addons/gateway.py"], {"gateway_policy": "policies/default.yaml"},
                               origin=origin_https)
        got = fetch("https://www.facebook.com/", proxy=proxy.proxy_url, ca=proxy.ca_cert_path,
                    source_address="127.0.0.2")
        assert got.status == 403
        assert not origin_https.seen(host="www.facebook.com")
        proxy.wait_for_output(r"www\\.facebook\\.com")

Clients from other devices: use ``tests.support.clients.fetch``/``curl``/``httpx_client`` with
``source_address="127.0.0.2"``. A plain ``httpx.Client(proxy=..., transport=httpx.HTTPTransport(
local_address=...))`` silently connects from 127.0.0.1 (see ``tests/support/clients.py``).

Fixtures:

- ``origin_http``: an :class:`~tests.support.origins.OriginServer`, plain HTTP only.
- ``origin_https``: an ``OriginServer`` speaking TLS *and* plain HTTP on one port, with a
  certificate for whatever name is asked for; route to this one and both ``http://`` and
  ``https://`` URLs for any host work.
- ``origin``: the same, shared by a whole test module.
- ``mitmdump_proxy(scripts=(), options=None, **kwargs)``: starts a
  :class:`~tests.support.mitmdump.Mitmdump` (keyword arguments as its constructor: ``origin=``,
  ``listen_hosts=``, ``confdir=``, ``ready_line=``, ``extra_args=``, ``env=``) in the test's
  ``tmp_path`` and returns it running; every proxy it started is stopped after the test, and if
  the test failed the end of each proxy's output is printed in the report.
- ``store_url`` / ``store``: a migrated SQLite file in ``tmp_path``, and a session factory on it.
- ``sessions``: the same as a callable making sessions (as the notifiers take it).
- ``inbox``: a real SMTP server (aiosmtpd) collecting the mail the test sends.
- ``postgres_url``: SQLAlchemy URL (``postgresql+psycopg://...``) of a database made for this
  test session and dropped after it (session scope: tests share it, so clean up your rows or use
  unique names). Skips when PostgreSQL is down, fails instead when ``GATEWAY_REQUIRE_PG=1``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ``python -m pytest`` from the repo root already has it on sys.path; a bare ``pytest`` does not.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.mitmdump import Mitmdump  # noqa: E402
from tests.support.origins import OriginServer  # noqa: E402

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
PG_USERS = ("postgres", "root")
PG_UNREACHABLE = "PostgreSQL not reachable on 127.0.0.1:5432 — start it or run .ci/run"
_OUTPUT_TAIL = 6000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(getattr(request.node, f"_report_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture
def origin_http() -> Iterator[OriginServer]:
    with OriginServer() as origin:
        yield origin


@pytest.fixture
def origin_https() -> Iterator[OriginServer]:
    with OriginServer(tls=True) as origin:
        yield origin


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    """One TLS-and-plain origin for a whole test module (clear its record with `origin.clear()`)."""
    with OriginServer(tls=True) as server:
        yield server


@pytest.fixture
def mitmdump_proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Mitmdump]]:
    started: list[Mitmdump] = []

    def start(scripts: list[str] | tuple[str, ...] = (), options: dict[str, Any] | None = None, **kwargs: Any) -> Mitmdump:
        proxy = Mitmdump(scripts, options, workdir=tmp_path / f"mitmdump-{len(started)}", **kwargs)
        started.append(proxy)
        return proxy.start()

    yield start

    for proxy in started:
        proxy.stop()
    if _test_failed(request):
        for proxy in started:
            print(f"--- mitmdump output ({proxy.log_path}), last {_OUTPUT_TAIL} characters ---")
            print(proxy.output()[-_OUTPUT_TAIL:])


def _connect_admin() -> Any:
    """A psycopg autocommit connection to the ``test`` database as the first user that works."""
    import psycopg

    errors = []
    for user in PG_USERS:
        try:
            return psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=PG_DATABASE, autocommit=True, connect_timeout=3
            )
        except psycopg.OperationalError as e:
            errors.append(f"{user}: {str(e).strip()}")
    reason = f"{PG_UNREACHABLE} ({'; '.join(errors)})"
    if os.environ.get("GATEWAY_REQUIRE_PG") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL for this session, as a SQLAlchemy URL.

    Made with ``CREATE DATABASE gateway_test_<random>`` and dropped ``WITH (FORCE)`` at the end. If
    the user may not create databases, a schema of that name in ``test`` is used instead, selected
    by ``search_path`` in the URL (``?options=-csearch_path%3D<schema>``), and dropped ``CASCADE``.
    """
    import psycopg
    from psycopg import sql

    admin = _connect_admin()
    user = admin.info.user
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}?options=-csearch_path%3D{name}"
        finally:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            admin.close()
        return
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="session")
def demo_policy():
    """The shipped demo policy (policies/default.yaml), compiled once per session."""
    from tests.support.policies import compile_demo

    return compile_demo()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    from gateway.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    return url


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    from gateway.store.engine import make_engine, session_factory

    engine = make_engine(store_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def sessions(store):  # type: ignore[no-untyped-def]
    return store


@pytest.fixture
def inbox():  # type: ignore[no-untyped-def]
    from tests.support.inbox import Inbox

    inbox = Inbox().start()
    yield inbox
    inbox.stop()
