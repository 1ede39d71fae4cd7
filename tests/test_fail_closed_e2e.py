"""A part that raises while deciding blocks, never passes: a real mitmdump with a deliberately broken part."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.clients import curl, httpx_client
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump, MitmdumpError
from tests.support.policies import DEMO_POLICY

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}
FAULTY = Path(__file__).parent / "support" / "faulty_part.py"


@pytest.fixture(scope="module")
def broken(tmp_path_factory, origin):
    proxy = start_gateway(tmp_path_factory.mktemp("broken"), DEMO_POLICY, origin=origin, scripts=[FAULTY])
    yield proxy
    proxy.stop()


def logged(proxy: Mitmdump, host: str) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(proxy.workdir / "gateway.db") as db:
            found = db.execute("SELECT action, source, rule FROM access_log WHERE host = ?", (host,)).fetchall()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.parametrize("host", ["explode.example.org", "identity-explode.example.org"])
def test_a_part_that_raises_gives_the_could_not_check_page_and_a_log_row(broken, origin, host):
    origin.clear()
    got = curl(f"http://{host}/page", proxy=broken.proxy_url, source_address=PUPIL, headers=PAGE)
    assert got.status == 403
    assert "could not check this page" in got.text
    assert not origin.seen(host=host)
    assert ("block", "failure", "gateway-failure") in logged(broken, host)
    broken.wait_for_output(r"a gateway part failed in requestheaders; failing closed")


def test_a_connect_that_cannot_be_decided_blocks_every_request_in_its_tunnel(broken, origin):
    origin.clear()
    with httpx_client(proxy=broken.proxy_url, ca=broken.ca_cert_path, source_address=PUPIL) as client:
        got = client.get("https://explode.example.net/", headers=PAGE)
    assert got.status_code == 403 and "could not check this page" in got.text
    assert not origin.seen()
    broken.wait_for_output(r"a gateway part failed in http_connect; failing closed")


def test_the_gateway_keeps_filtering_after_a_failure(broken, origin):
    assert curl("http://www.facebook.com/", proxy=broken.proxy_url, source_address=PUPIL).status == 403
    assert curl("http://www.bbc.co.uk/", proxy=broken.proxy_url, source_address=PUPIL).status == 200


@pytest.mark.parametrize("option", ["map_remote=|.*|http://elsewhere.example", "modify_headers=/~q/Host/www.bbc.co.uk",
                                    "stickycookie=.*", "save_stream_file=/tmp/flows"])
def test_mitmproxy_addons_that_would_change_traffic_after_the_decision_are_refused(tmp_path, option):
    name, _, value = option.partition("=")
    with pytest.raises(MitmdumpError, match=rf"{name}: the school web gateway does not use mitmproxy's"):
        Mitmdump(["addons/gateway.py"], {"gateway_policy": DEMO_POLICY, "gateway_db": f"sqlite:///{tmp_path}/g.db",
                                         name: value}, workdir=tmp_path).start()  # fmt: skip
