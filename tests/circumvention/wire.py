"""DNS wire format for the tests: a query as a stub resolver sends it, and the answer a DoH server gives."""

from __future__ import annotations

import random
import struct


def dns_query(name: str, qtype: int = 1) -> bytes:
    """An RD query for `name` (A by default), RFC 1035 wire format."""
    header = struct.pack(">HHHHHH", random.randrange(1 << 16), 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack(">HH", qtype, 1)


def dns_answer(query: bytes, address: str) -> bytes:
    """The answer to an A query: the question repeated and one A record for `address`."""
    ident = query[:2]
    question = query[12:]
    header = ident + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes(int(p) for p in address.split("."))
    return header + question + record


def rcode(message: bytes) -> int:
    return message[3] & 0x0F
