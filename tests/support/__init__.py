"""Reusable end-to-end test harness for the gateway.

The pieces, each usable on its own and wired together by the fixtures in ``tests/conftest.py``:

- :mod:`tests.support.ports`: free loopback ports and source addresses (127.0.0.2, … act as devices).
- :mod:`tests.support.origins`: real HTTP/HTTPS origin servers on 127.0.0.1 that answer for any host name.
- :mod:`tests.support.mitmdump`: a real ``mitmdump`` subprocess with a fresh CA in a temporary confdir.
- :mod:`tests.support.route_to_origin`: the test-only mitmproxy script that sends every upstream
  connection to the local origin, so ``https://www.facebook.com/`` works without the internet.
- :mod:`tests.support.clients`: httpx and curl fetches through the proxy, from any loopback source address.
"""
