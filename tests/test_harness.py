"""The test harness itself, against bare mitmdump (no gateway addon).

Also a worked example of the harness: a module-scoped proxy shared by several tests (one mitmdump
start for the module), and the ``mitmdump_proxy`` factory for tests that need their own.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.support.clients import curl, fetch, httpx_client, peer_certificate
from tests.support.mitmdump import Mitmdump, MitmdumpError
from tests.support.origins import OriginServer, ok_body, pattern_bytes
from tests.support.ports import device_address

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    with OriginServer(tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mitmdump]:
    with Mitmdump(workdir=tmp_path_factory.mktemp("bare-mitmdump"), origin=origin) as running:
        yield running


@pytest.mark.parametrize("url", ["http://example.org/hello?x=1", "https://www.facebook.com/a/b?q=2"])
def test_httpx_through_proxy_reaches_origin_by_name(proxy: Mitmdump, origin: OriginServer, url: str) -> None:
    got = fetch(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path)

    split = httpx.URL(url)
    path = split.raw_path.decode()
    assert got.status == 200
    assert got.text == ok_body(split.host, path)
    seen = origin.seen(host=split.host, path=path)[-1]
    assert seen.scheme == split.scheme
    assert seen.sni == (split.host if split.scheme == "https" else None)
    proxy.wait_for_output(re.escape(f"GET {url}"))


@pytest.mark.parametrize("url", ["http://example.org/curl", "https://www.bbc.co.uk/curl"])
def test_curl_through_proxy_reaches_origin_by_name(proxy: Mitmdump, url: str) -> None:
    got = curl(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path)

    assert got.status == 200
    assert got.text == ok_body(httpx.URL(url).host, "/curl")
    assert got.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_many_requests_for_several_hosts_on_one_kept_alive_client_connection(proxy: Mitmdump, scheme: str) -> None:
    urls = [f"{scheme}://{host}/keep/{n}" for n in range(4) for host in ("example.org", "www.bbc.co.uk", "example.com")]

    with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, timeout=5) as client:
        bodies = [client.get(url).text for url in urls]

    assert bodies == [ok_body(httpx.URL(url).host, httpx.URL(url).path) for url in urls]
    # The proxy logs the names the client asked for, not the origin's address.
    for url in urls:
        proxy.wait_for_output(re.escape(f"GET {url}"))


SPY = """\
import logging
HOOKS = ("requestheaders", "request", "responseheaders", "response")
class Spy:
    def __getattr__(self, hook):
        if hook not in HOOKS:
            raise AttributeError(hook)
        return lambda flow: logging.warning(f"spy {hook} {flow.request.pretty_url} host={flow.request.host}")
addons = [Spy()]
"""


def test_addons_loaded_after_the_router_see_the_requested_url_in_every_hook(
    mitmdump_proxy, origin_https: OriginServer, tmp_path: Path
) -> None:
    spy = tmp_path / "spy.py"
    spy.write_text(SPY)
    proxy = mitmdump_proxy([str(spy)], origin=origin_https)

    for url in ("http://example.org/spy", "https://www.facebook.com/spy"):
        assert fetch(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path).status == 200
        for hook in ("requestheaders", "request", "responseheaders", "response"):
            line = proxy.wait_for_output(rf"spy {hook} {re.escape(url)} .*$").group(0)
            assert line.endswith(f"host={httpx.URL(url).host}")


def test_https_certificate_chains_to_the_fresh_confdir_ca(proxy: Mitmdump) -> None:
    ca = x509.load_pem_x509_certificate(proxy.ca_cert_path.read_bytes())
    assert proxy.ca_cert_path.parent == proxy.confdir

    chain = peer_certificate("www.facebook.com", proxy=proxy.proxy_url, ca=proxy.ca_cert_path)

    leaf = chain[0]
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "www.facebook.com" in names.get_values_for_type(x509.DNSName)


def test_https_fails_for_a_client_that_does_not_trust_the_gateway_ca(proxy: Mitmdump) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        peer_certificate("www.facebook.com", proxy=proxy.proxy_url, ca=Path(ssl.get_default_verify_paths().openssl_cafile))
    with pytest.raises(subprocess.CalledProcessError) as failed:
        curl("https://www.facebook.com/", proxy=proxy.proxy_url)
    assert b"certificate" in failed.value.stderr


def test_request_headers_and_large_bodies_pass_through(proxy: Mitmdump) -> None:
    echoed = fetch("https://example.org/headers", proxy=proxy.proxy_url, ca=proxy.ca_cert_path, headers={"X-Test": "1"})
    size = 5 * 1024 * 1024 + 3
    large = curl(f"http://example.org/bytes/{size}", proxy=proxy.proxy_url)

    assert echoed.status == 200
    assert echoed.headers["content-type"] == "application/json"
    assert httpx.Response(200, content=echoed.body).json()["x-test"] == "1"
    assert large.status == 200
    assert large.body == pattern_bytes(size)


def test_clients_from_different_source_addresses_are_different_devices(proxy: Mitmdump) -> None:
    ipad, chromebook = device_address(1), device_address(2)

    by_httpx = fetch("http://example.org/ipad", proxy=proxy.proxy_url, source_address=ipad)
    by_curl = curl("https://example.org/chromebook", proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=chromebook)

    assert (by_httpx.status, by_curl.status) == (200, 200)
    proxy.wait_for_output(rf"^127\.0\.0\.2:\d+: GET http://example\.org/ipad$")
    proxy.wait_for_output(rf"^127\.0\.0\.3:\d+: GET https://example\.org/chromebook$")


def test_one_mitmdump_can_listen_on_several_hosts(mitmdump_proxy, origin_http: OriginServer) -> None:
    proxy = mitmdump_proxy(origin=origin_http, listen_hosts=("127.0.0.1", "127.0.0.4"))

    assert set(proxy.addresses) == {"127.0.0.1", "127.0.0.4"}
    for host in proxy.addresses:
        got = fetch(f"http://example.org/via-{host}", proxy=proxy.proxy_url_for(host))
        assert got.text == ok_body("example.org", f"/via-{host}")


@pytest.mark.parametrize(
    "source",
    [
        "raise RuntimeError('deliberately broken addon')\n",
        "class Broken:\n    def running(self):\n        raise RuntimeError('deliberately broken addon')\naddons = [Broken()]\n",
    ],
    ids=["on-load", "in-running"],
)
def test_a_script_that_fails_at_startup_stops_it_with_its_output(mitmdump_proxy, tmp_path: Path, source: str) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(source)

    with pytest.raises(MitmdumpError, match="deliberately broken addon"):
        mitmdump_proxy([str(broken)])


@pytest.mark.postgres
def test_postgres_fixture_gives_a_working_database(postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE harness_check (id int PRIMARY KEY, note text)"))
            conn.execute(sa.text("INSERT INTO harness_check VALUES (1, 'ok')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT note FROM harness_check")).scalar_one() == "ok"
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one().startswith(("gateway_test_", "test"))
    finally:
        engine.dispose()
