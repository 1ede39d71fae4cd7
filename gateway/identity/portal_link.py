"""The page a device is sent back to after signing in to the portal, and proof that it was that device's own.

The proxy, when it sends an unidentified device to sign in, puts the page asked for in `next=` and signs it in
`next_sig=`: an HMAC over the device's address, the time and the URL, with a key only the proxy and the console
hold (`gateway run` makes it once, 0600, beside the console's session key). The portal sends a device on to `next`
only when the signature is the proxy's, for this device, from the last few minutes. A link anyone else made
(`/portal/sign-in?next=https://evil.example/` in a message to a pupil) carries no valid signature, and a genuine
one copied to another device names the wrong address, so the portal's trusted name never redirects anywhere a
third party chose. Unsigned, the pupil is signed in and simply goes back to their page themselves.

Pure standard library: the proxy imports it too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

# A redirect to sign in is followed within seconds; a child may take a few minutes to find their pictures.
LIFETIME_SECONDS = 15 * 60
MAX_URL_LENGTH = 2000


def _mac(key: bytes, client_ip: str, url: str, issued_at: int) -> str:
    message = f"{client_ip}\n{issued_at}\n{url}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, client_ip: str, url: str, issued_at: int) -> str:
    """The `next_sig` value for sending `client_ip` on to `url` after sign-in."""
    return f"{issued_at}.{_mac(key, client_ip, url, issued_at)}"


def verify(key: bytes, client_ip: str, url: str, signature: str, now: float) -> bool:
    issued, _, mac = signature.partition(".")
    if not issued.isascii() or not issued.isdigit() or len(issued) > 12:
        return False
    if not 0 <= now - int(issued) <= LIFETIME_SECONDS:
        return False
    return hmac.compare_digest(mac, _mac(key, client_ip, url, int(issued)))


def plain_web_url(url: str, own_host: str) -> bool:
    """An absolute http(s) URL with nothing a browser could read as another place: no credentials, backslashes,
    spaces or control characters, and not the portal itself (a loop)."""
    if not url or len(url) > MAX_URL_LENGTH or not url.isascii() or "\\" in url:
        return False
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return False
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    return parts.netloc.lower() != own_host.lower()


def load_key(path: Path) -> bytes:
    """The shared key from `path`, made (0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made a moment ago by the other reader (`gateway run` makes it before starting either)
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path}: the portal link key is missing or too short (delete the file to make a new one)")
    return key.encode()
