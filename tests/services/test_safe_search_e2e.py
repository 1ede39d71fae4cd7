"""Safe search and the sign-in locks through a real mitmdump: the origin receives the forced parameters, cookie
setting and headers for each engine, per group, over HTTP, HTTPS (HTTP/1.1) and HTTP/2; whatever the pupil sent
in their place (other casing, twice, percent-encoded, a forged header, a posted form) is replaced."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from gateway.policy.compiled import load_compiled
from gateway.policy.loader import PolicyError
from tests.support.clients import curl
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer, SeenRequest
from tests.support.policies import always_lesson_policy, demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL, STAFF, GUEST = "127.0.0.2", "127.0.0.3", "127.0.0.4"
TENANT_ID = "11111111-2222-3333-4444-555555555555"

HEAD = """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - {name: pupils, subnets: [127.0.0.2/32], group: pupil}
  - {name: staff, subnets: [127.0.0.3/32], group: staff}
"""
TAIL = f"""\
rules:
  - {{id: no-games, domains: [games.example], action: block, reason: No games}}
safe_search:
  default: {{search: strict, youtube: strict}}
  groups:
    staff: {{search: strict, youtube: moderate}}
    guest: {{search: off, youtube: off}}
  engines:
    ecosia: {{hosts: [www.ecosia.org], params: {{safesearch: "1"}}, paths: [/search]}}
services:
  google_sign_in: {{allowed_domains: [school.example], groups: [pupil]}}
  microsoft_sign_in: {{tenants: [school.example, school.onmicrosoft.com], context: {TENANT_ID}}}
"""
POLICY = always_lesson_policy(HEAD, TAIL)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, origin: OriginServer) -> Iterator[Mitmdump]:
    folder = tmp_path_factory.mktemp("safe-search")
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    # Lazy: mitmproxy then speaks HTTP/2 to a client that offers it, whatever the origin speaks.
    proxy = start_gateway(folder, policy, origin=origin, connection_strategy="lazy")
    yield proxy
    proxy.stop()


def through(gateway: Mitmdump, origin: OriginServer, url: str, device: str = PUPIL, *, http2: bool = False,
            **kwargs) -> SeenRequest:  # type: ignore[no-untyped-def]  # fmt: skip
    """Send `url` through the gateway from `device`; the request as the origin received it."""
    origin.clear()
    version = ["--http2"] if http2 else ["--http1.1"]
    extra = version + kwargs.pop("extra_args", [])
    got = curl(url, proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=device, extra_args=extra,
               **kwargs)  # fmt: skip
    assert got.status == 200, got.text
    host = urlsplit(url).hostname
    seen = origin.seen(host=host)
    assert len(seen) == 1, seen
    return seen[0]


def params(seen: SeenRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(seen.path).query, keep_blank_values=True)


@pytest.mark.parametrize("scheme", ["http", "https", "h2"])
def test_every_engine_is_forced_safe_for_pupils(gateway, origin, scheme) -> None:
    base = "https" if scheme == "h2" else scheme
    h2 = scheme == "h2"
    google = through(gateway, origin, f"{base}://www.google.co.uk/search?q=cats&safe=off&hl=en", http2=h2)
    assert params(google) == [("q", "cats"), ("hl", "en"), ("safe", "active")]
    bing = through(gateway, origin, f"{base}://www.bing.com/search?q=cats&adlt=off", http2=h2,
                   headers={"Cookie": "MUID=1; SRCHHPGUSR=SRCHLANG=en&ADLT=OFF&NRSLT=50"})  # fmt: skip
    assert params(bing) == [("q", "cats"), ("adlt", "strict")]
    assert "SRCHHPGUSR=SRCHLANG=en&NRSLT=50&ADLT=STRICT" in bing.headers["cookie"]
    assert "MUID=1" in bing.headers["cookie"] and "ADLT=OFF" not in bing.headers["cookie"]
    ddg = through(gateway, origin, f"{base}://duckduckgo.com/?q=cats&kp=-2", http2=h2)
    assert params(ddg) == [("q", "cats"), ("kp", "1")]
    youtube = through(gateway, origin, f"{base}://www.youtube.com/watch?v=abc", http2=h2,
                      headers={"YouTube-Restrict": "none"})  # fmt: skip
    assert youtube.headers["youtube-restrict"] == "Strict"
    # A search engine the policy added.
    ecosia = through(gateway, origin, f"{base}://www.ecosia.org/search?q=cats&safesearch=0", http2=h2)
    assert params(ecosia) == [("q", "cats"), ("safesearch", "1")]


def test_per_group_staff_moderate_and_a_group_left_alone(gateway, origin) -> None:
    staff = through(gateway, origin, "https://m.youtube.com/watch?v=abc", STAFF)
    assert staff.headers["youtube-restrict"] == "Moderate"
    assert params(through(gateway, origin, "https://www.google.com/search?q=x", STAFF)) == [("q", "x"), ("safe", "active")]
    # The policy turns both off for guests: their requests reach the origin as sent.
    guest = through(gateway, origin, "https://www.google.com/search?q=x&safe=off", GUEST,
                    headers={"YouTube-Restrict": "none"})  # fmt: skip
    assert params(guest) == [("q", "x"), ("safe", "off")]
    assert "youtube-restrict" not in through(gateway, origin, "https://www.youtube.com/", GUEST).headers


def test_other_hosts_are_untouched(gateway, origin) -> None:
    seen = through(gateway, origin, "https://www.bbc.co.uk/search?q=x&safe=off", headers={"YouTube-Restrict": "x"})
    assert seen.path == "/search?q=x&safe=off" and seen.headers["youtube-restrict"] == "x"
    # Google's non-search pages keep their query as sent.
    assert through(gateway, origin, "https://www.google.com/maps?safe=off").path == "/maps?safe=off"


@pytest.mark.parametrize("query", [
    "q=x&Safe=Off", "q=x&SAFE=off", "q=x&safe=off&safe=off", "q=x&%73afe=off", "q=x&%53AFE=images",
    "q=x&safe+=off", "q=x;safe=off", "safe=images&q=x",
])  # fmt: skip
def test_a_pupils_own_safe_parameter_never_survives(gateway, origin, query) -> None:
    seen = through(gateway, origin, f"https://www.google.com/search?{query}")
    got = params(seen)
    assert got[-1] == ("safe", "active")
    assert not [p for p in seen.path.split("?", 1)[1].split("&")[:-1] if "afe" in p.lower() or "%73" in p.lower()
                or "%53" in p]  # fmt: skip


@pytest.mark.parametrize("url", [
    "https://www.google.de/search?q=x", "https://www.google.com.au/search?q=x", "https://google.fr/search?q=x",
    "https://images.google.co.jp/images?q=x", "http://www.google.ie/webhp?q=x", "https://www.google.com//search?q=x",
    "https://www.google.com/Search?q=x", "http://WWW.GOOGLE.COM./search?q=x",
])  # fmt: skip
def test_every_country_domain_and_spelling_of_google(gateway, origin, url) -> None:
    seen = through(gateway, origin, url)
    assert ("safe", "active") in params(seen)


@pytest.mark.parametrize("url", ["https://m.youtube.com/results?search_query=x", "https://youtu.be/abc",
                                 "https://www.youtube-nocookie.com/embed/abc",
                                 "https://youtubei.googleapis.com/youtubei/v1/search"])  # fmt: skip
def test_youtube_restricted_on_every_youtube_host(gateway, origin, url) -> None:
    seen = through(gateway, origin, url, headers={"youtube-restrict": "off", "YOUTUBE-RESTRICT": "none"})
    assert seen.headers["youtube-restrict"] == "Strict"


def test_a_posted_search_form_is_forced_too(gateway, origin) -> None:
    seen = through(gateway, origin, "https://html.duckduckgo.com/html/", method="POST", data="q=cats&kp=-2&KP=-1",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert seen.body == b"q=cats&kp=1"
    assert ("kp", "1") in params(seen)
    seen = through(gateway, origin, "https://lite.duckduckgo.com/lite/", method="POST",
                   extra_args=["-F", "q=cats", "-F", "kp=-2"])  # fmt: skip
    assert re.search(rb'name="kp"\r\n(?:[^\r]+\r\n)*\r\n1\r\n', seen.body)
    # The part's value, not the body: curl's random boundary may hold "-2" itself.
    assert not re.search(rb'name="kp"\r\n(?:[^\r]+\r\n)*\r\n-2\r\n', seen.body) and b'name="q"' in seen.body


def test_sign_in_hosts_get_the_lock_headers_replacing_the_clients(gateway, origin) -> None:
    google = through(gateway, origin, "https://accounts.google.com/ServiceLogin",
                     headers={"X-GoogApps-Allowed-Domains": "gmail.com"})  # fmt: skip
    assert google.headers["x-googapps-allowed-domains"] == "school.example"
    # The Google lock is for pupils only in this policy; Microsoft's for everyone.
    assert "x-googapps-allowed-domains" not in through(gateway, origin, "https://accounts.google.com/", STAFF).headers
    for host in ("login.microsoftonline.com", "login.microsoft.com", "login.windows.net"):
        for device in (PUPIL, STAFF):
            seen = through(gateway, origin, f"https://{host}/common/oauth2/authorize", device, http2=True,
                           headers={"Restrict-Access-To-Tenants": "evil.example"})  # fmt: skip
            assert seen.headers["restrict-access-to-tenants"] == "school.example,school.onmicrosoft.com"
            assert seen.headers["restrict-access-context"] == TENANT_ID


def test_blocked_requests_are_not_rewritten_or_sent(gateway, origin) -> None:
    origin.clear()
    got = curl("https://games.example/search?safe=off", proxy=gateway.proxy_url, ca=gateway.ca_cert_path,
               source_address=PUPIL)  # fmt: skip
    assert got.status == 403 and not origin.seen(host="games.example")


def test_a_policy_that_never_intercepts_a_locked_sign_in_host_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(always_lesson_policy(HEAD, TAIL + "never_intercept: {domains: [google.com]}\n"))
    with pytest.raises(PolicyError) as refused:
        load_compiled(policy)
    message = str(refused.value)
    assert "services.google_sign_in" in message and "accounts.google.com is never intercepted" in message
    assert "take it off the never-intercept lists" in message
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(policy)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0 and "accounts.google.com is never intercepted" in run.stdout + run.stderr


def test_the_demo_policy_intercepts_the_sign_in_hosts_it_locks(tmp_path: Path, origin) -> None:
    # The demo never intercepts Microsoft's update hosts; Google's sign-in host, which it locks, is intercepted (the
    # client trusts only the gateway's CA, so a passed-through connection would fail) and carries the header.
    policy = demo_policy_with_devices(tmp_path, {PUPIL: "pupil"})
    proxy = start_gateway(tmp_path, policy, origin=origin)
    try:
        seen = through(proxy, origin, "https://accounts.google.com/signin")
        assert seen.headers["x-googapps-allowed-domains"] == "perryfields.example"
        assert params(through(proxy, origin, "https://www.google.co.uk/search?q=x&safe=off")) == [("q", "x"),
                                                                                            ("safe", "active")]
    finally:
        proxy.stop()
