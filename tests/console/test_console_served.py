"""The console served as in production (waitress, and over HTTPS), reached by real HTTP clients and through a real
mitmdump: sign-out ends every copy of the cookie, cookies are Secure on HTTPS, and one device's failures never
keep anyone else out."""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from werkzeug.serving import make_server

from gateway.store.accounts import _hasher
from gateway.store.engine import make_engine
from gateway.store.models.users import ConsoleUser
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import PASSWORD, seed
from tests.support.clients import httpx_client
from tests.support.origins import OriginCA
from tests.support.policies import write_policy
from tests.support.waitress_thread import waitress_thread

COOKIE = "gateway_console"


@contextmanager
def served(tmp_path: Path, **config: object) -> Iterator[tuple[str, str]]:
    url = seed(tmp_path)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), **config))  # type: ignore[arg-type]
    with waitress_thread(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}", url


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def sign_in(client: httpx.Client, base: str, username: str, password: str = PASSWORD) -> httpx.Response:
    """As a browser does, Referer included (the console's Referrer-Policy is same-origin)."""
    token = csrf(client.get(f"{base}/sign-in").text)
    return client.post(f"{base}/sign-in", data={"username": username, "password": password, "csrf_token": token},
                       headers={"Referer": f"{base}/sign-in"})


def reads_the_log(base: str, cookie: str) -> bool:
    with httpx.Client(cookies={COOKIE: cookie}) as copy:
        page = copy.get(f"{base}/logs")
        api = copy.get(f"{base}/api/v1/log")
    assert (page.status_code == 200) == (api.status_code == 200)
    return page.status_code == 200


def test_a_cookie_copied_before_sign_out_reads_nothing_after_it(tmp_path: Path) -> None:
    with served(tmp_path) as (base, _db), httpx.Client() as browser:
        assert sign_in(browser, base, "officer").status_code == 302
        copied = browser.cookies[COOKIE]
        assert reads_the_log(base, copied)
        token = csrf(browser.get(f"{base}/logs").text)
        assert browser.post(f"{base}/sign-out", data={"csrf_token": token}).status_code == 302
        assert not reads_the_log(base, copied)
        with httpx.Client(cookies={COOKIE: copied}) as copy:
            assert "/sign-in" in copy.get(f"{base}/logs").headers["location"]
            assert copy.get(f"{base}/api/v1/log").status_code == 401
        # Signing in again makes a new session; the old cookie stays dead.
        assert sign_in(browser, base, "officer").status_code == 302
        assert reads_the_log(base, browser.cookies[COOKIE]) and not reads_the_log(base, copied)


def test_a_password_change_ends_the_sessions_started_before_it(tmp_path: Path) -> None:
    with served(tmp_path) as (base, db), httpx.Client() as browser:
        assert sign_in(browser, base, "officer").status_code == 302
        copied = browser.cookies[COOKIE]
        engine = make_engine(db)
        with engine.begin() as c:
            c.execute(update(ConsoleUser).where(ConsoleUser.username == "officer")
                      .values(password_hash=_hasher.hash("a new password!"), password_changed_at=datetime.now(UTC)))
        engine.dispose()
        assert not reads_the_log(base, copied)
        assert sign_in(browser, base, "officer", "a new password!").status_code == 302


def set_cookie_of(response: httpx.Response) -> str:
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE))


def test_cookies_are_secure_over_https_and_when_configured(tmp_path: Path) -> None:
    plain_dir, https_dir, configured_dir = (tmp_path / n for n in ("plain", "https", "configured"))
    for d in (plain_dir, https_dir, configured_dir):
        d.mkdir()
    with served(plain_dir) as (base, _db), httpx.Client() as browser:
        assert "secure" not in set_cookie_of(browser.get(f"{base}/sign-in")).lower()
        signed_in = sign_in(browser, base, "officer")
        assert signed_in.status_code == 302 and "secure" not in set_cookie_of(signed_in).lower()
    with served(configured_dir, secure_cookies=True) as (base, _db), httpx.Client() as browser:
        assert "; secure" in set_cookie_of(browser.get(f"{base}/sign-in")).lower()
    # The console served over TLS itself marks them Secure with nothing configured.
    ca = OriginCA(https_dir)
    app = create_app(ConsoleConfig(db_url=seed(https_dir), secret_key_file=str(https_dir / "secret")))
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ca.server_context("127.0.0.1"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"https://127.0.0.1:{server.server_port}"
        with httpx.Client(verify=ssl.create_default_context(cafile=ca.cert_path)) as browser:
            page = browser.get(f"{base}/sign-in")
            assert "; secure" in set_cookie_of(page).lower()
            assert page.headers["strict-transport-security"].startswith("max-age=")
            signed_in = sign_in(browser, base, "officer")
            assert signed_in.status_code == 302 and "; secure" in set_cookie_of(signed_in).lower()
    finally:
        server.shutdown()


@pytest.mark.e2e
def test_a_pupil_guessing_through_the_proxy_locks_out_nobody_else(mitmdump_proxy, tmp_path: Path) -> None:
    with served(tmp_path) as (base, db):
        (tmp_path / "policy").mkdir()
        policy = write_policy(tmp_path / "policy", "")
        proxy = mitmdump_proxy(["addons/gateway.py"], {
            "gateway_policy": str(policy), "gateway_db": db, "gateway_portal_url": base,
            "gateway_spool": str(tmp_path / "spool"),
        })  # fmt: skip
        with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.2") as pupil:
            for n in range(10):
                name = "headteacher" if n < 5 else f"guess{n}"
                assert sign_in(pupil, base, name, "let me in please").status_code == 401
            refused = sign_in(pupil, base, "headteacher")
            assert refused.status_code == 429, "the guessing device is stopped, even with the right password"
            assert pupil.get(f"{base}/api/v1/log", auth=("headteacher", PASSWORD)).status_code == 429
        with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.3") as head:
            started = time.monotonic()
            assert sign_in(head, base, "headteacher").status_code == 302
            assert head.get(f"{base}/logs").status_code == 200
            assert time.monotonic() - started < 5
        with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.4") as tool:
            assert tool.get(f"{base}/api/v1/log", auth=("headteacher", PASSWORD)).status_code == 200
        with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.5") as officer:
            assert sign_in(officer, base, "officer").status_code == 302


def test_sessions_end_on_the_server_with_postgresql_too(postgres_url: str, tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    from gateway.store.accounts import create_user
    from gateway.store.migrate import upgrade

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as s, s.begin():
        create_user(s, "pg.officer", "Officer", "officer", PASSWORD)
    engine.dispose()
    app = create_app(ConsoleConfig(db_url=postgres_url, secret_key_file=str(tmp_path / "secret")))
    with waitress_thread(app, threads=2) as server, httpx.Client() as browser:
        base = f"http://127.0.0.1:{server.effective_port}"
        assert sign_in(browser, base, "pg.officer").status_code == 302
        copied = browser.cookies[COOKIE]
        assert reads_the_log(base, copied)
        token = csrf(browser.get(f"{base}/logs").text)
        assert browser.post(f"{base}/sign-out", data={"csrf_token": token}).status_code == 302
        assert not reads_the_log(base, copied)
