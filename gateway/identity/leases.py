"""DHCP leases: which MAC address holds which IP address, read from dnsmasq or ISC dhcpd lease files and
followed as the DHCP server rewrites them."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.identity.devices_csv import normalise_mac

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lease:
    ip: str
    mac: str
    # Aware UTC; None for a lease that never ends.
    expires: datetime | None
    hostname: str | None = None

    def active(self, now: datetime) -> bool:
        return self.expires is None or self.expires > now


@dataclass(frozen=True, slots=True)
class LeaseFile:
    leases: dict[str, Lease]
    # (line number, text) of lines that were not understood, so an operator can see them.
    skipped: list[tuple[int, str]]


def parse_dnsmasq(text: str) -> LeaseFile:
    """dnsmasq's `dhcp-leasefile`: `<expiry epoch> <mac> <ip> <hostname|*> <client-id|*>` per line.

    IPv6 lines (an IAID instead of a MAC) and the `duid` line carry no MAC and are left out silently.
    """
    leases: dict[str, Lease] = {}
    skipped: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "duid":
            continue
        try:
            if len(parts) < 4:
                raise ValueError
            ip = ipaddress.ip_address(parts[2])
            if ip.version == 6:
                continue
            expires = None if parts[0] == "0" else _epoch(parts[0])
            mac = normalise_mac(parts[1])
        except ValueError:
            skipped.append((n, line[:200]))
            continue
        hostname = None if parts[3] == "*" else parts[3]
        leases[str(ip)] = Lease(str(ip), mac, expires, hostname)
    return LeaseFile(leases, skipped)


def _epoch(text: str) -> datetime:
    """Seconds since 1970 as an aware time. ValueError for anything a clock cannot hold: a line with a
    20-digit expiry must be skipped like any other bad line, not abort the reading of the whole file."""
    if not text.isdigit() or len(text) > 12:
        raise ValueError(f"expiry {text[:40]!r} is not a time")
    try:
        return datetime.fromtimestamp(int(text), UTC)
    except (OverflowError, OSError) as e:
        raise ValueError(f"expiry {text!r} is out of range") from e


_ISC_TIME = re.compile(r"^(?:\d\s+(\d{4}/\d{1,2}/\d{1,2}\s+\d{1,2}:\d{2}:\d{2})|epoch\s+(\d+)|(never))")


def _isc_time(value: str) -> datetime | None:
    m = _ISC_TIME.match(value)
    if not m:
        raise ValueError(value)
    if m.group(3):
        return None
    if m.group(2):
        return _epoch(m.group(2))
    return datetime.strptime(m.group(1), "%Y/%m/%d %H:%M:%S").replace(tzinfo=UTC)


def parse_isc(text: str) -> LeaseFile:
    """ISC dhcpd's `dhcpd.leases`: an append-only journal of `lease IP { ... }` blocks; the last block for an
    address wins. Blocks whose binding state is not active are dropped."""
    leases: dict[str, Lease] = {}
    skipped: list[tuple[int, str]] = []
    current: dict[str, str] | None = None
    start_line = 0
    ip = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if current is None:
            m = re.match(r"^lease\s+(\S+)\s*\{$", line)
            if m:
                try:
                    ip = str(ipaddress.IPv4Address(m.group(1)))
                except ValueError:
                    skipped.append((n, raw[:200]))
                    continue
                current, start_line = {}, n
            elif re.match(r"^[\w-]+(\s+.*)?[;{}]$", line):
                # Other top-level statements (server-duid, authoring-byte-order, failover blocks' lines) are
                # not leases but not garbage either.
                continue
            else:
                skipped.append((n, raw[:200]))
            continue
        if line == "}":
            try:
                if current.get("binding state", "active") not in ("active", "backup"):
                    leases.pop(ip, None)
                else:
                    mac = normalise_mac(current["hardware ethernet"])
                    expires = _isc_time(current["ends"]) if "ends" in current else None
                    leases[ip] = Lease(ip, mac, expires, current.get("client-hostname"))
            except (KeyError, ValueError):
                skipped.append((start_line, f"lease {ip} {{ … }} without a usable hardware address or end time"))
            current = None
            continue
        m = re.match(r'^(hardware ethernet|binding state|client-hostname|ends)\s+"?([^";]*)"?;$', line)
        if m:
            current[m.group(1)] = m.group(2)
    if current is not None:
        skipped.append((start_line, f"lease {ip} {{ … not closed"))
    return LeaseFile(leases, skipped)


PARSERS: dict[str, Callable[[str], LeaseFile]] = {"dnsmasq": parse_dnsmasq, "isc": parse_isc}


def detect_format(text: str) -> str:
    return "isc" if re.search(r"^\s*lease\s+\S+\s*\{", text, re.M) else "dnsmasq"


def read_lease_file(path: Path, fmt: str = "auto") -> LeaseFile:
    text = path.read_text(encoding="utf-8", errors="replace")
    return PARSERS[detect_format(text) if fmt == "auto" else fmt](text)


class LeaseFollower:
    """Re-reads a lease file whenever it changes (mtime, size or inode: dnsmasq and dhcpd both replace the file),
    in a daemon thread, and swaps in the new table. `lookup` is a dict read: safe from the event loop."""

    def __init__(
        self,
        path: Path,
        fmt: str = "auto",
        interval: float = 1.0,
        on_change: Callable[[dict[str, Lease]], None] | None = None,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.interval = interval
        self.on_change = on_change
        self.table: dict[str, Lease] = {}
        self.skipped: list[tuple[int, str]] = []
        self._stamp: tuple[int, int, int] | None = None
        self._unreadable = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def lookup(self, ip: str, now: datetime) -> Lease | None:
        lease = self.table.get(ip)
        return lease if lease is not None and lease.active(now) else None

    def poll(self) -> bool:
        """Read the file if it changed; True if it did. A missing file is an empty table."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            parsed = read_lease_file(self.path, self.fmt) if stamp != (0, 0, 0) else LeaseFile({}, [])
        except OSError as e:
            if not self._unreadable:
                log.warning("cannot read lease file %s, keeping the leases read before: %s", self.path, e)
            self._unreadable = True
            # Read again next poll: a permission fix changes none of the stamp.
            self._stamp = None
            return False
        self._unreadable = False
        if parsed.skipped and parsed.skipped != self.skipped:
            # Once per change of the bad lines, not every poll: the rest of the file is in force either way.
            numbers = ", ".join(str(n) for n, _ in parsed.skipped[:10]) + (", …" if len(parsed.skipped) > 10 else "")
            log.warning(
                "lease file %s: skipped %d line(s) not understood (line %s), using the other %d lease(s); "
                "line %d reads %r",
                self.path, len(parsed.skipped), numbers, len(parsed.leases), parsed.skipped[0][0],
                parsed.skipped[0][1],
            )  # fmt: skip
        self.table, self.skipped = parsed.leases, parsed.skipped
        if self.on_change:
            self.on_change(self.table)
        return True

    def start(self) -> None:
        self.poll()
        self._thread = threading.Thread(target=self._run, name="lease-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:
                log.exception("lease follower")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
