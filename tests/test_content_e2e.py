"""Content analysis through a real mitmdump with the demo policy's analyser and phrase files: pages from a real
origin over HTTP and HTTPS are blocked, flagged or passed untouched before the browser gets them; large bodies
stream; searches are scored; an analyser that fails blocks."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import brotli
import pytest

from gateway.decisions.types import Action
from gateway.identity.types import Identity

try:
    from compression import zstd
except ImportError:  # Python < 3.14
    from backports import zstd  # type: ignore[no-redef]

from tests.support.clients import httpx_client
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer, _Handler, pattern_bytes
from tests.support.policies import DEMO_POLICY, compile_demo

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}
FIXTURES = Path(__file__).parent / "fixtures" / "content"
HARMFUL = (FIXTURES / "harmful" / "en_suicide_forum_1.html").read_bytes()
BENIGN = (FIXTURES / "benign" / "en_first_aid.html").read_bytes()
POLISH = (FIXTURES / "harmful" / "pl_samobojstwo_1.html").read_text(encoding="utf-8")
ARABIC = (FIXTURES / "harmful" / "ar_intihar.html").read_text(encoding="utf-8")
def first_flagged() -> tuple[bytes, str]:
    """A corpus page the demo policy flags for a pupil, and its category (the phrase lists grow: not by name)."""
    analyser = compile_demo().content
    assert analyser is not None
    for page in sorted((FIXTURES / "harmful").glob("*.html")):
        finding = analyser.analyse_page(page.read_text(encoding="utf-8"), Identity(group="pupil"))
        if finding.action is Action.FLAG and finding.category:
            return page.read_bytes(), finding.category
    raise AssertionError("no corpus page is flagged for a pupil")


FLAGGED, FLAGGED_CATEGORY = first_flagged()
BIG = 6 * 1024 * 1024
HELD_AFTER = 1024 * 1024
PADDING = b"<p>" + b"The river flows gently past the old mill and the meadow. " * 20 + b"</p>\n"
SENTINEL = b"most painless way to die"


class _PageHandler(_Handler):
    """Serves the pages the tests name: `/page/<name>` from `ContentOrigin.pages`, plus a held download, a
    chunked padded page and an HTML body sent as an image."""

    def _answer(self) -> None:
        origin: ContentOrigin = self.server.origin  # type: ignore[assignment]
        path = urlsplit(self.path).path
        origin.paths.append(path)
        if path.startswith("/page/"):
            content_type, encoding, body = origin.pages[path.removeprefix("/page/")]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path == "/held":
            self._held(origin, "application/octet-stream")
        elif path == "/held.mp4":
            self._held(origin, "video/mp4")
        elif path.startswith("/padded"):
            self._padded(gzipped=path.endswith(".gz"))
        elif path.startswith("/chunked/"):
            self._chunked(*origin.pages[path.removeprefix("/chunked/")])
        else:
            super()._answer()

    def _held(self, origin: ContentOrigin, content_type: str) -> None:
        """Sends the first MB, then waits for the test to say the client has it before sending the rest: a proxy
        that held the body would deliver nothing until the origin had sent it all."""
        body = pattern_bytes(BIG)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(BIG))
        self.end_headers()
        self.wfile.write(body[:HELD_AFTER])
        self.wfile.flush()
        origin.release.wait(15)
        self.wfile.write(body[HELD_AFTER:])
        origin.finished.set()

    def _padded(self, *, gzipped: bool) -> None:
        """3 MB of harmless text, then harm, then more harmless text, chunked (no length known in advance)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        pieces = [b"<html><body>"] + [PADDING * 50] * (3 * 1024 * 1024 // (len(PADDING) * 50) + 1)
        pieces += [HARMFUL] + [PADDING * 50] * 4 + [b"</body></html>"]
        data = b"".join(pieces)
        if gzipped:
            data = gzip.compress(data)
        for start in range(0, len(data), 64 * 1024):
            chunk = data[start : start + 64 * 1024]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunked(self, content_type: str, encoding: str | None, body: bytes) -> None:
        """A page of unknown length (chunked), as most dynamic sites send them."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        for start in range(0, len(body), 512):
            chunk = body[start : start + 512]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_HEAD = _answer


class ContentOrigin(OriginServer):
    def __init__(self) -> None:
        super().__init__(tls=True)
        self.pages: dict[str, tuple[str, str | None, bytes]] = {}
        self.release = threading.Event()
        self.finished = threading.Event()
        self.paths: list[str] = []

    def start(self) -> ContentOrigin:
        super().start()
        assert self._server is not None
        self._server.RequestHandlerClass = _PageHandler
        return self


PAGES: dict[str, tuple[str, str | None, bytes]] = {
    "harmful": ("text/html; charset=utf-8", None, HARMFUL),
    "benign": ("text/html; charset=utf-8", None, BENIGN),
    "flagged": ("text/html; charset=utf-8", None, FLAGGED),
    "harmful-gzip": ("text/html; charset=utf-8", "gzip", gzip.compress(HARMFUL)),
    "harmful-br": ("text/html; charset=utf-8", "br", brotli.compress(HARMFUL)),
    "harmful-zstd": ("text/html; charset=utf-8", "zstd", zstd.compress(HARMFUL)),
    "harmful-deflate": ("text/html; charset=utf-8", "deflate", zlib.compress(HARMFUL)),
    # 64 MB of padding, then harm: 64 KB on the wire, far more once decompressed.
    "harmful-gzip-bomb": ("text/html; charset=utf-8", "gzip",
                          gzip.compress(b"<p>" + b" " * (64 << 20) + b"</p>" + HARMFUL, compresslevel=9)),
    "benign-gzip": ("text/html; charset=utf-8", "gzip", gzip.compress(BENIGN)),
    # The charset only in the page's <meta>, as many older Polish sites send it.
    "polish-latin2": ("text/html", None,
                      POLISH.replace('charset="utf-8"', 'charset="iso-8859-2"').encode("iso-8859-2")),
    "arabic-1256": ("text/html; charset=windows-1256", None,
                    ARABIC.replace('<meta charset="utf-8">', "").encode("windows-1256", "replace")),
    "harmful-json": ("application/json", None, b'{"post": "' + SENTINEL + b' i want to die, goodbye forever, '
                     b'suicide methods, end it all, kill myself tonight"}'),
    "harmful-untyped": ("", None, HARMFUL),
    "harmful-as-png": ("image/png", None, HARMFUL),
    "broken-gzip": ("text/html; charset=utf-8", "gzip", b"\x1f\x8b\x08\x00not really gzip" + HARMFUL),
    "image": ("image/png", None, b"\x89PNG\r\n\x1a\n" + pattern_bytes(2 * 1024 * 1024)),
}


@pytest.fixture(scope="module")
def content_origin() -> Iterator[ContentOrigin]:
    with ContentOrigin() as origin:
        origin.pages.update(PAGES)
        yield origin


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, content_origin: ContentOrigin) -> Iterator[Mitmdump]:
    proxy = start_gateway(tmp_path_factory.mktemp("content"), DEMO_POLICY, origin=content_origin)
    yield proxy
    proxy.stop()


@pytest.fixture(params=["http", "https"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def get(proxy: Mitmdump, url: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL, timeout=30) as client:
        response = client.get(url, headers=headers or PAGE)
        response.read()
        return response


def logged(proxy: Mitmdump, host: str, path: str, terms: str | None = None) -> tuple[str, str, str | None, str | None]:
    """The latest access-log row for host and path (and search terms), once the writer has it."""
    deadline = time.monotonic() + 8
    while True:
        with sqlite3.connect(proxy.workdir / "gateway.db") as db:
            row = db.execute(
                "SELECT action, source, list_name, matched FROM access_log WHERE host = ? AND path = ? "
                "AND (? IS NULL OR search_terms = ?) ORDER BY row_id DESC LIMIT 1",
                (host, path, terms, terms),
            ).fetchone()
        if row or time.monotonic() > deadline:
            assert row, f"no access-log row for {host}{path}"
            return row
        time.sleep(0.2)


def test_a_harmful_page_on_an_allowed_site_is_blocked_before_the_browser_gets_it(gateway, scheme):
    got = get(gateway, f"{scheme}://www.bbc.co.uk/page/harmful")
    assert got.status_code == 403
    assert "content analysis found suicide content" in got.text
    assert SENTINEL.decode() not in got.text
    assert logged(gateway, "www.bbc.co.uk", "/page/harmful")[:3] == ("block", "content", "suicide")


def test_a_benign_educational_page_passes_byte_for_byte(gateway, scheme):
    got = get(gateway, f"{scheme}://www.bbc.co.uk/page/benign")
    assert got.status_code == 200
    assert got.content == BENIGN
    assert logged(gateway, "www.bbc.co.uk", "/page/benign")[0] == "allow"


def test_a_flagged_page_passes_and_is_logged_as_a_content_flag(gateway):
    got = get(gateway, "https://www.bbc.co.uk/page/flagged")
    assert got.status_code == 200 and got.content == FLAGGED
    action, source, category, matched = logged(gateway, "www.bbc.co.uk", "/page/flagged")
    assert (action, source, category) == ("flag", "content", FLAGGED_CATEGORY)
    assert matched
    # The officer's queue has it, with the phrases and an excerpt from the page.
    with sqlite3.connect(gateway.workdir / "gateway.db") as db:
        report = db.execute("SELECT kind, queue, url, category, matches, excerpt FROM report WHERE host = ? "
                            "AND category = ?", ("www.bbc.co.uk", FLAGGED_CATEGORY)).fetchone()  # fmt: skip
    assert report is not None
    kind, queue, url, _, matches, excerpt = report
    assert (kind, queue, url) == ("page", "officer", "https://www.bbc.co.uk/page/flagged")
    assert matched in json.loads(matches) and excerpt


@pytest.mark.parametrize("name", ["harmful-gzip", "harmful-br", "harmful-zstd", "harmful-deflate",
                                  "harmful-gzip-bomb", "polish-latin2", "arabic-1256", "harmful-json",
                                  "harmful-untyped"])
def test_encoded_compressed_and_other_language_pages_are_decoded_and_blocked(gateway, name):
    got = get(gateway, f"https://www.bbc.co.uk/page/{name}")
    assert got.status_code == 403, got.text[:300]
    assert logged(gateway, "www.bbc.co.uk", f"/page/{name}")[:2] == ("block", "content")


def test_a_compressed_benign_page_arrives_as_the_origin_sent_it(gateway):
    with httpx_client(proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=PUPIL) as client:
        with client.stream("GET", "https://www.bbc.co.uk/page/benign-gzip", headers=PAGE) as response:
            raw = b"".join(response.iter_raw())
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == BENIGN


def test_a_body_that_cannot_be_decompressed_is_blocked_as_unchecked(gateway):
    got = get(gateway, "https://www.bbc.co.uk/page/broken-gzip")
    assert got.status_code == 403 and "could not check this page" in got.text
    assert logged(gateway, "www.bbc.co.uk", "/page/broken-gzip")[:2] == ("block", "failure")


@pytest.mark.parametrize("path", ["/held", "/held.mp4"])
def test_a_big_download_or_video_streams_instead_of_being_held(gateway, content_origin, path):
    content_origin.release.clear()
    content_origin.finished.clear()
    received = bytearray()
    with httpx_client(proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=PUPIL, timeout=30) as client:
        with client.stream("GET", f"https://downloads.bbc.co.uk{path}") as response:
            chunks = response.iter_raw()
            while len(received) < 256 * 1024:
                received += next(chunks)
            # The client has the start while the origin still holds the rest back.
            assert not content_origin.finished.is_set()
            content_origin.release.set()
            for chunk in chunks:
                received += chunk
    assert response.status_code == 200
    assert bytes(received) == pattern_bytes(BIG)


def test_an_image_passes_untouched(gateway):
    got = get(gateway, "https://www.bbc.co.uk/page/image", headers={"Accept": "image/*"})
    assert got.status_code == 200 and got.content == PAGES["image"][2]


def test_html_sent_as_an_image_is_not_analysed(gateway):
    """Documented choice: browsers never render a declared image type as a page (they only sniff among image
    types), so an image is streamed unanalysed whatever its body looks like."""
    got = get(gateway, "https://www.bbc.co.uk/page/harmful-as-png", headers={"Accept": "image/*"})
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == HARMFUL


@pytest.mark.parametrize("path", ["/padded", "/padded.gz"])
def test_harm_behind_three_megabytes_of_padding_does_not_get_through(gateway, path):
    got = get(gateway, f"https://www.bbc.co.uk{path}")
    body = got.content
    assert SENTINEL not in body
    if path.endswith(".gz"):
        # Padding compresses well: the whole page came within max_bytes, was held and analysed whole, and the
        # block page took the place of its body (its status had gone out before the page ended).
        assert b"content analysis found suicide content" in body
    else:
        # The harmless start went through as it streamed; the page was cut at the harm, its end never sent.
        assert len(body) > 2 * 1024 * 1024
        assert not body.rstrip().endswith(b"</html>")
    assert logged(gateway, "www.bbc.co.uk", path)[:3] == ("block", "content", "suicide")


def test_a_small_chunked_page_is_held_whole_and_its_body_becomes_the_block_page(gateway):
    """The status line went out when the stream started (mitmproxy sends a streamed response's headers first), so
    the block page arrives as the body; the harm never does."""
    got = get(gateway, "https://www.bbc.co.uk/chunked/harmful-gzip")
    assert SENTINEL.decode() not in got.text
    assert "content analysis found suicide content" in got.text
    assert logged(gateway, "www.bbc.co.uk", "/chunked/harmful-gzip")[:3] == ("block", "content", "suicide")
    clean = get(gateway, "https://www.bbc.co.uk/chunked/benign")
    assert clean.status_code == 200 and clean.content == BENIGN


def test_a_chunked_page_that_cannot_be_decompressed_is_not_passed_on(gateway):
    got = get(gateway, "https://www.bbc.co.uk/chunked/broken-gzip")
    assert SENTINEL.decode() not in got.text and "could not check this page" in got.text
    assert logged(gateway, "www.bbc.co.uk", "/chunked/broken-gzip")[:2] == ("block", "failure")


@pytest.fixture(scope="module")
def lazy_gateway(tmp_path_factory: pytest.TempPathFactory, content_origin: ContentOrigin) -> Iterator[Mitmdump]:
    """Connecting upstream only when a request comes, mitmproxy speaks HTTP/2 to a client that offers it (with an
    HTTP/1.1 origin); eagerly, it would mirror the origin's HTTP/1.1."""
    proxy = start_gateway(tmp_path_factory.mktemp("content-h2"), DEMO_POLICY, origin=content_origin,
                          connection_strategy="lazy")  # fmt: skip
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("path", ["/page/harmful", "/padded", "/chunked/harmful", "/page/benign"])
def test_over_http2_harm_does_not_get_through_either(lazy_gateway, tmp_path, path):
    body = tmp_path / "body"
    result = subprocess.run(
        ["curl", "-q", "-sS", "--http2", "--compressed", "--max-time", "30", "--proxy", lazy_gateway.proxy_url,
         "--cacert", str(lazy_gateway.ca_cert_path), "--interface", PUPIL, "-H", "Accept: text/html",
         "-H", "Sec-Fetch-Dest: document", "-o", str(body), "-w", "%{http_version} %{http_code}",
         f"https://www.bbc.co.uk{path}"],
        capture_output=True, text=True, timeout=40,
    )  # fmt: skip
    version, status = result.stdout.split()
    assert version == "2"
    if path == "/page/benign":
        assert status == "200" and body.read_bytes() == BENIGN
        return
    assert SENTINEL not in body.read_bytes()
    if path == "/page/harmful":
        assert status == "403"
    assert logged(lazy_gateway, "www.bbc.co.uk", path)[:2] == ("block", "content")


SEARCHES = [
    ("https://www.google.com/search?q=porn+xxx&hl=en", "www.google.com", "/search"),
    ("https://www.google.co.uk/search?q=how+to+kill+myself", "www.google.co.uk", "/search"),
    ("https://www.bing.com/search?q=porn%20xxx&form=QBLH", "www.bing.com", "/search"),
    ("https://duckduckgo.com/?q=porn+xxx&ia=web", "duckduckgo.com", "/"),
    ("https://www.youtube.com/results?search_query=how+to+kill+myself", "www.youtube.com", "/results"),
    ("https://en.wikipedia.org/w/index.php?search=porn+xxx&title=Special:Search", "en.wikipedia.org", "/w/index.php"),
    # The term in the path, not the query.
    ("https://en.wikipedia.org/wiki/Special:Search/porn_xxx", "en.wikipedia.org", "/wiki/Special:Search/porn_xxx"),
    ("https://www.dailymotion.com/search/porn%20xxx/videos", "www.dailymotion.com", "/search/porn%20xxx/videos"),
    ("https://www.bing.com/images/search?q=p0rn+xxx", "www.bing.com", "/images/search"),
]


@pytest.mark.parametrize(("url", "host", "path"), SEARCHES)
def test_a_harmful_search_is_blocked_naming_its_category(gateway, content_origin, url, host, path):
    content_origin.paths.clear()
    got = get(gateway, url)
    assert got.status_code == 403
    assert "content analysis found" in got.text
    action, source, category, _ = logged(gateway, host, path)
    assert (action, source) == ("block", "content") and category in ("adult", "suicide")
    assert path not in content_origin.paths


def test_a_harmless_search_passes(gateway):
    got = get(gateway, "https://www.google.com/search?q=photosynthesis+for+kids")
    assert got.status_code == 200


def test_a_search_the_policy_only_reports_passes_and_is_flagged(gateway):
    got = get(gateway, "https://www.bing.com/search?q=buy+cocaine")
    assert got.status_code == 200
    assert logged(gateway, "www.bing.com", "/search", "buy cocaine")[:3] == ("flag", "content", "drugs")
    # The officer's report names the search as typed.
    with sqlite3.connect(gateway.workdir / "gateway.db") as db:
        report = db.execute("SELECT kind, category, search_terms FROM report WHERE host = 'www.bing.com' "
                            "AND kind = 'search' AND search_terms = 'buy cocaine'").fetchone()  # fmt: skip
    assert report == ("search", "drugs", "buy cocaine")


def test_a_search_term_with_markup_is_never_echoed_unescaped(gateway):
    got = get(gateway, "https://www.google.com/search?q=porn+xxx+%3Cscript%3Ealert(1)%3C/script%3E")
    assert got.status_code == 403
    assert "<script>alert(1)" not in got.text


def test_the_gateways_own_console_is_not_analysed(tmp_path):
    """The officer's report queue quotes the harmful phrases it found: it must reach the officer."""
    with ContentOrigin() as console:
        console.pages["reports"] = ("text/html; charset=utf-8", None, HARMFUL)
        proxy = start_gateway(tmp_path, DEMO_POLICY, gateway_portal_url=f"http://127.0.0.1:{console.port}")
        try:
            got = get(proxy, f"http://127.0.0.1:{console.port}/page/reports")
            assert got.status_code == 200 and got.content == HARMFUL
        finally:
            proxy.stop()


FAULTY_ANALYSER = '''
from gateway.content.analyser import ContentAnalyser
_analyse = ContentAnalyser.analyse_page
def exploding(self, text, identity):
    if "EXPLODE-ANALYSER" in text:
        raise RuntimeError("test fault in content analysis")
    return _analyse(self, text, identity)
ContentAnalyser.analyse_page = exploding
addons = []
'''


def test_an_analyser_that_raises_blocks_the_page(tmp_path, content_origin):
    script = tmp_path / "faulty_analyser.py"
    script.write_text(FAULTY_ANALYSER)
    content_origin.pages["explode"] = ("text/html", None, b"<p>a lesson plan EXPLODE-ANALYSER</p>")
    proxy = start_gateway(tmp_path, DEMO_POLICY, origin=content_origin, scripts=[script])
    try:
        got = get(proxy, "https://www.bbc.co.uk/page/explode")
        assert got.status_code == 403 and "could not check this page" in got.text
        assert "EXPLODE" not in got.text
        assert logged(proxy, "www.bbc.co.uk", "/page/explode")[:2] == ("block", "failure")
        proxy.wait_for_output(r"a gateway part failed in response; failing closed")
        assert get(proxy, "https://www.bbc.co.uk/page/benign").content == BENIGN
    finally:
        proxy.stop()


@pytest.mark.parametrize("url", ["https://html.duckduckgo.com/html/", "https://lite.duckduckgo.com/lite/"])
def test_a_search_posted_from_a_form_is_scored_too(gateway, content_origin, url):
    # DuckDuckGo's HTML and lite pages post the search box: the terms are in the body, not the address.
    content_origin.clear()
    with httpx_client(proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=PUPIL, timeout=30) as client:
        harmful = client.post(url, data={"q": "how to kill myself", "b": ""}, headers=PAGE)
        padded = client.post(url, content=f"q=porn+xxx&pad={'x' * 100_000}".encode(), headers={
            **PAGE, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        harmless = client.post(url, data={"q": "photosynthesis for kids"}, headers=PAGE)
    assert harmful.status_code == 403 and "content analysis found" in harmful.text
    assert padded.status_code == 403
    assert harmless.status_code == 200
    host, path = url.split("/")[2], "/" + url.split("/", 3)[3]
    deadline = time.monotonic() + 8
    while len(actions := posted_rows(gateway, host, path)) < 3:
        assert time.monotonic() < deadline, f"only {actions} logged"
        time.sleep(0.2)
    assert actions == [("block", "content"), ("block", "content"), ("allow", "default")]
    # Safe search may add its own parameter (DuckDuckGo's kp) to the address and the form: only the terms matter.
    reached = [(r.method, parse_qs(r.body.decode())["q"]) for r in content_origin.seen(host=host)
               if urlsplit(r.path).path == path]  # fmt: skip
    assert reached == [("POST", ["photosynthesis for kids"])], "only the harmless search reached the site"


def posted_rows(proxy: Mitmdump, host: str, path: str) -> list[tuple[str, str]]:
    with sqlite3.connect(proxy.workdir / "gateway.db") as db:
        return db.execute("SELECT action, source FROM access_log WHERE host = ? AND path = ? AND method = 'POST' "
                          "ORDER BY row_id", (host, path)).fetchall()  # fmt: skip
