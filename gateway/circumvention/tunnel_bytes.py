"""What a client sent where TLS should be: the first bytes as readable evidence, and the protocol they look like."""

from __future__ import annotations

EVIDENCE_BYTES = 48


def escaped(data: bytes, limit: int = EVIDENCE_BYTES) -> str:
    """Printable ASCII as it is, everything else as `\\xNN`: safe to store, show and mail."""
    out = []
    for byte in data[:limit]:
        if 0x20 <= byte < 0x7F and byte != 0x5C:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out) + ("…" if len(data) > limit else "")


def looks_like(data: bytes) -> str:
    """A guess at the protocol, for the incident page: ssh, openvpn, socks, or unknown."""
    if data.startswith(b"SSH-"):
        return "ssh"
    if len(data) >= 3 and data[2] >> 3 == 7 and int.from_bytes(data[:2], "big") == len(data) - 2:
        # OpenVPN over TCP: a length prefix, then P_CONTROL_HARD_RESET_CLIENT_V2.
        return "openvpn"
    if data[:1] == b"\x05" and len(data) >= 3 and data[1] == len(data) - 2:
        return "socks5"
    if data[:1] == b"\x04" and data[1:2] in (b"\x01", b"\x02"):
        return "socks4"
    return "unknown"
