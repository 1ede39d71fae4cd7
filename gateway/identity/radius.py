"""RADIUS accounting (RFC 2866) from the WiFi controller: which 802.1X user holds which IP address.

`AccountingListener` is a UDP server in a daemon thread. It checks each Accounting-Request's authenticator
against the shared secret (and its Message-Authenticator when present), hands the event to a handler, and
answers with an Accounting-Response only once the handler has recorded it, so the controller resends what
was not recorded. Packets from addresses not allowed, or with a wrong authenticator, are dropped silently
(RFC 2866 section 3).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from pyrad import packet
from pyrad.dictionary import Dictionary

from gateway.identity.devices_csv import normalise_mac

log = logging.getLogger(__name__)

STATUS = {"Start": "start", "Stop": "stop", "Interim-Update": "interim", "Accounting-On": "on",
          "Accounting-Off": "off", 1: "start", 2: "stop", 3: "interim", 7: "on", 8: "off"}


@cache
def radius_dictionary() -> Dictionary:
    path = files("gateway.identity").joinpath("radius_dictionary.txt")
    return Dictionary(str(path))


@dataclass(frozen=True, slots=True)
class AccountingEvent:
    # start, interim, stop, on (NAS rebooted: all its sessions are gone), off.
    status: str
    nas: str
    username: str | None = None
    framed_ip: str | None = None
    mac: str | None = None
    session_id: str | None = None


def usernames_for(user_name: str) -> list[str]:
    """The roster usernames an 802.1X identity may mean, most specific first:
    'SCHOOL\\amy' -> ['amy']; 'amy@school.example' -> ['amy@school.example', 'amy']."""
    name = user_name.strip().lower()
    if "\\" in name:
        name = name.rsplit("\\", 1)[1]
    out = [name]
    if "@" in name:
        out.append(name.split("@", 1)[0])
    return [n for n in out if n]


def _first(pkt: packet.Packet, key: str) -> object | None:
    try:
        values = pkt[key]
    except KeyError:
        return None
    return values[0] if values else None


def decode_accounting(pkt: packet.AcctPacket, source_ip: str) -> AccountingEvent | None:
    status = STATUS.get(_first(pkt, "Acct-Status-Type"))  # type: ignore[arg-type]
    if status is None:
        return None
    nas = _first(pkt, "NAS-Identifier") or _first(pkt, "NAS-IP-Address") or source_ip
    user = _first(pkt, "User-Name")
    ip = _first(pkt, "Framed-IP-Address")
    mac = None
    calling = _first(pkt, "Calling-Station-Id")
    if calling:
        try:
            mac = normalise_mac(str(calling))
        except ValueError:
            mac = None
    return AccountingEvent(
        status=status,
        nas=str(nas),
        username=str(user) if user else None,
        framed_ip=str(ip) if ip else None,
        mac=mac,
        session_id=str(_first(pkt, "Acct-Session-Id") or "") or None,
    )


class AccountingListener:
    def __init__(
        self,
        secret: bytes,
        handler: Callable[[AccountingEvent], None],
        host: str = "0.0.0.0",
        port: int = 1813,
        allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        if not secret:
            raise ValueError("a RADIUS shared secret is required")
        self.secret = secret
        self.handler = handler
        self.allowed = list(allowed)
        self.dictionary = radius_dictionary()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.5)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="radius-accounting", daemon=True)
        self._thread.start()
        log.info("RADIUS accounting listening on %s:%d", *self.address)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            try:
                reply = self.handle_datagram(data, peer[0])
            except Exception:
                log.exception("RADIUS accounting: could not record a packet from %s; the NAS will resend", peer[0])
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)

    def handle_datagram(self, data: bytes, source_ip: str) -> bytes | None:
        """The reply to send, or None to drop the packet."""
        if self.allowed:
            addr = ipaddress.ip_address(source_ip)
            if not any(addr in net for net in self.allowed):
                log.warning("RADIUS accounting: dropped a packet from %s, not an allowed client", source_ip)
                return None
        try:
            pkt = packet.AcctPacket(packet=data, secret=self.secret, dict=self.dictionary)
        except packet.PacketError as e:
            log.warning("RADIUS accounting: dropped a malformed packet from %s: %s", source_ip, e)
            return None
        if pkt.code != packet.AccountingRequest:
            return None
        if not pkt.VerifyAcctRequest() or (pkt.message_authenticator and not pkt.verify_message_authenticator()):
            log.warning("RADIUS accounting: dropped a packet from %s with a wrong authenticator "
                        "(is the shared secret the same on the controller?)", source_ip)
            return None
        event = decode_accounting(pkt, source_ip)
        if event is not None:
            self.handler(event)
        reply = pkt.CreateReply()
        return reply.ReplyPacket()
