"""The accuracy corpus (tests/fixtures/content: clean pages on sensitive topics and harmful ones in English, Polish,
Urdu and Arabic) served by a real origin over HTTPS through a real mitmdump, as a pupil: what the browser gets must
be what the analyser decides in-process (tests/content/test_accuracy.py), page for page. The rates are printed
(`pytest -s`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from gateway.decisions.types import Action
from tests.content.test_accuracy import CORPUS, outcomes
from tests.support.clients import httpx_client
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.policies import DEMO_POLICY
from tests.test_content_e2e import PAGE, PUPIL, ContentOrigin

pytestmark = pytest.mark.e2e

HOST = "www.bbc.co.uk"


@pytest.fixture(scope="module")
def corpus_origin() -> Iterator[ContentOrigin]:
    with ContentOrigin() as origin:
        for kind in ("benign", "harmful"):
            for page in sorted((CORPUS / kind).glob("*.html")):
                # No charset in the header: the page's <meta> says it, as on many sites.
                origin.pages[f"{kind}/{page.stem}"] = ("text/html", None, page.read_bytes())
        yield origin


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, corpus_origin: ContentOrigin) -> Iterator[Mitmdump]:
    proxy = start_gateway(tmp_path_factory.mktemp("accuracy"), DEMO_POLICY, origin=corpus_origin)
    yield proxy
    proxy.stop()


def through_proxy(proxy: Mitmdump, kind: str, names: list[str]) -> dict[str, Action]:
    """Each page's outcome as the pupil met it: blocked (the block page), or passed whole and logged allow or flag."""
    seen: dict[str, Action] = {}
    with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL, timeout=30) as client:
        for name in names:
            got = client.get(f"https://{HOST}/page/{kind}/{name}", headers=PAGE)
            if got.status_code == 403:
                assert "content analysis found" in got.text, name
                seen[name] = Action.BLOCK
            else:
                assert got.status_code == 200
                assert got.content == (CORPUS / kind / f"{name}.html").read_bytes(), name
    passed = [name for name in names if name not in seen]
    paths = {f"/page/{kind}/{name}": name for name in passed}
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(proxy.workdir / "gateway.db") as db:
            rows = db.execute(
                f"SELECT path, action FROM access_log WHERE host = ? AND path IN ({','.join('?' * len(paths))})",
                (HOST, *paths),
            ).fetchall()
        if len(rows) == len(paths) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for path, action in rows:
        seen[paths[path]] = Action(action)
    return seen


def test_the_proxy_decides_every_corpus_page_as_the_analyser_does_and_the_rates_hold(gateway, demo_policy):
    expected = {kind: outcomes(demo_policy.content, kind) for kind in ("benign", "harmful")}
    got = {kind: through_proxy(gateway, kind, sorted(expected[kind])) for kind in ("benign", "harmful")}
    assert got == expected

    benign, harmful = got["benign"], got["harmful"]
    blocked_benign = sorted(name for name, action in benign.items() if action is Action.BLOCK)
    missed_harmful = sorted(name for name, action in harmful.items() if action is not Action.BLOCK)
    print(
        f"\ncontent accuracy through the proxy (pupil, HTTPS): {len(benign)} clean, {len(harmful)} harmful pages\n"
        f"  false positives (clean page blocked): {len(blocked_benign)} = {len(blocked_benign) / len(benign):.1%} "
        f"{blocked_benign}\n"
        f"  clean pages flagged, not blocked: {sum(a is Action.FLAG for a in benign.values())}\n"
        f"  false negatives (harmful page not blocked): {len(missed_harmful)} = "
        f"{len(missed_harmful) / len(harmful):.1%} {missed_harmful}\n"
        f"  harmful pages neither blocked nor flagged: {sum(a is Action.ALLOW for a in harmful.values())}"
    )
    assert len(benign) >= 50 and len(harmful) >= 50
