"""The proxy auto-config (PAC) file for explicit-proxy devices and `gateway run --workers N` (pure: text out).

A device reads it once and asks it for every URL: it hashes the device's own address (`myIpAddress()`) to pick one
worker's port, so a device stays on one worker, and names the next worker's port after it, which the browser uses
when the first does not answer (a worker that died and is being restarted). Nothing goes DIRECT: a device whose
proxies are all down gets no web at all, never the unfiltered one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# Its name in the gateway's var folder, where `gateway run` writes it and the console serves it from.
PAC_NAME = "proxy.pac"


def pac_file(host: str, ports: Sequence[int]) -> str:
    if not ports:
        raise ValueError("a PAC file needs at least one proxy port")
    # JavaScript of the 1990s: a PAC file runs in old engines too (no let, no =>).
    return f"""\
// School web gateway: proxy auto-config, written by `gateway run` for its {len(ports)} proxy worker(s).
function FindProxyForURL(url, host) {{
    var proxy = {json.dumps(host)};
    var ports = {json.dumps(list(ports))};
    var address = myIpAddress();
    var hash = 0;
    for (var i = 0; i < address.length; i++) {{
        hash = (hash * 31 + address.charCodeAt(i)) % 1000003;
    }}
    var first = hash % ports.length;
    var choice = "PROXY " + proxy + ":" + ports[first];
    if (ports.length > 1) {{
        choice += "; PROXY " + proxy + ":" + ports[(first + 1) % ports.length];
    }}
    return choice;
}}
"""

