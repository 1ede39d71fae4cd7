"""No detector fires on a normal morning's browsing (the recorded session), for pupils or staff."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from gateway.circumvention.detectors import hello_detection, request_detection
from gateway.lists.hosts import normalise_host
from tests.circumvention.session import browsing_session
from tests.support.policies import compile_demo

RULES = compile_demo().circumvention


@pytest.mark.parametrize("group", ["pupil", "staff"])
def test_no_detector_fires_on_the_recorded_session(group):
    for request in browsing_session():
        url = urlsplit(request["url"])
        host = normalise_host(url.netloc)
        headers = {k.lower(): v for k, v in request["headers"].items()}
        path = url.path + (f"?{url.query}" if url.query else "")
        sni = host if url.scheme == "https" else None
        found = request_detection(RULES, group=group, method=request["method"], url=request["url"], asked=[url.netloc],
                                  port=url.port or 443, path=path, content_type=headers.get("content-type", ""),
                                  accept=headers.get("accept", ""), user_agent=headers.get("user-agent", ""), sni=sni,
                                  host=host, host_header=host, allowed=lambda a, p: False)  # fmt: skip
        assert found is None, (request["note"], found)
        if sni:
            assert hello_detection(RULES, group=group, target=host, port=443, sni=sni, allowed=lambda a, p: False) is None
