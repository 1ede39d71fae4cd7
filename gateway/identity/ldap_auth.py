"""Checking proxy credentials (HTTP Basic) against LDAP / Active Directory: find the user's entry with a service
account, then bind as that entry with the password given.

mitmproxy's own `Ldap` validator does the same, but does not suit checks made from worker threads: it binds at
construction (a network round trip in `configure`, on the event loop, with no timeout: a directory that does
not answer stops the gateway starting), keeps one connection for good (never reopened after the server drops
it as idle) and reads that shared connection's last `response` after its search, where another thread's
search can have replaced it; it takes the first result even when it is a referral or one of several, and
speaks LDAPS without checking the server's certificate. Each check here opens its own short connections, with
timeouts and a verified certificate, and a success is remembered briefly so a browser's many requests cost
one round trip, not one each.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from dataclasses import dataclass

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars


class LdapUnavailable(Exception):
    """The directory could not be asked (down, slow, the service account refused): not a wrong password."""


@dataclass(frozen=True)
class LdapSettings:
    host: str
    port: int | None
    use_ssl: bool
    bind_dn: str
    bind_password: str
    subtree: str
    filter_key: str = "cn"
    # CA certificates (PEM) that sign the directory's LDAPS certificate; None: the system's.
    ca_file: str | None = None
    # Whole seconds: ldap3 packs the receive timeout as an integer (SO_RCVTIMEO) on Linux.
    timeout: int = 5


class LdapValidator:
    """Same call shape as mitmproxy's proxyauth validators: (username, password) -> bool. Thread-safe.

    Raises LdapUnavailable when the directory cannot answer, so the caller can tell that from a wrong password.
    """

    def __init__(self, settings: LdapSettings, cache_seconds: float = 300.0) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        tls = None
        if settings.use_ssl:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file)
        self.server = ldap3.Server(settings.host, port=settings.port, use_ssl=settings.use_ssl, tls=tls,
                                   connect_timeout=settings.timeout, get_info=ldap3.NONE)
        self._ok: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _connection(self, user: str, password: str) -> ldap3.Connection:
        return ldap3.Connection(self.server, user, password, receive_timeout=self.settings.timeout,
                                raise_exceptions=False, read_only=True)

    def find_dn(self, username: str) -> str | None:
        """The DN of the one entry whose filter key is `username`; None if there is none, or more than one."""
        s = self.settings
        conn = self._connection(s.bind_dn, s.bind_password)
        try:
            if not conn.bind():
                raise LdapUnavailable(f"the service account {s.bind_dn!r} could not bind: {conn.result}")
            conn.search(s.subtree, f"({s.filter_key}={escape_filter_chars(username)})", attributes=[],
                        size_limit=2)
            entries = [r["dn"] for r in conn.response or () if r.get("type") == "searchResEntry"]
        except LDAPException as e:
            raise LdapUnavailable(str(e)) from e
        finally:
            conn.unbind()
        return entries[0] if len(entries) == 1 else None

    def __call__(self, username: str, password: str) -> bool:
        username = username.strip()
        # An empty password is an unauthenticated bind, which directories accept: never a sign-in.
        if not username or not password:
            return False
        key = (username.lower(), hashlib.sha256(password.encode()).hexdigest())
        now = time.monotonic()
        with self._lock:
            if self._ok.get(key, 0.0) > now:
                return True
        dn = self.find_dn(username)
        if dn is None:
            return False
        conn = self._connection(dn, password)
        try:
            ok = conn.bind()
        except LDAPException as e:
            raise LdapUnavailable(str(e)) from e
        finally:
            conn.unbind()
        if ok:
            with self._lock:
                self._ok = {k: t for k, t in self._ok.items() if t > now}
                self._ok[key] = now + self.cache_seconds
        return ok
