"""The address of the device behind a console or portal request.

Through the proxy every device reaches the web app from the proxy's own loopback address, so the proxy tells the
app the real one in `X-Gateway-Client-IP` (it removes any copy a client sends, and sets it only on requests to the
console's configured URL). The header is believed only from the proxy's address: from anyone else it would let a
device act as another, sign another device in or out, or spend another device's sign-in attempts.
"""

from __future__ import annotations

import ipaddress

from flask import abort, current_app, request

CLIENT_IP_HEADER = "X-Gateway-Client-IP"
TRUSTED_PROXIES = ("127.0.0.1", "::1")


def client_ip() -> str:
    peer = request.remote_addr or ""
    forwarded = request.headers.get(CLIENT_IP_HEADER)
    if forwarded and peer in current_app.config.get("GATEWAY_TRUSTED_PROXIES", TRUSTED_PROXIES):
        try:
            return str(ipaddress.ip_address(forwarded.strip()))
        except ValueError:
            abort(400, description=f"{CLIENT_IP_HEADER} is not an address")
    return peer
