"""Host names as the lists and the decision engine compare them: one canonical ASCII form, and its label suffixes.

A host is compared only in the form `normalise_host` gives, so `Facebook.COM.`, `facebook.com:443` and
`facebook.com` are one entry, and a unicode name matches its punycode form. IP literals are canonicalised the
way browsers do (WHATWG URL host parsing), so `0x7f.1` and `2130706433` are `127.0.0.1` and cannot slip past an
entry for it.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63

# An already-canonical DNS name: lower-case ASCII labels of 1-63 characters, the last not all digits (a name whose
# last label is a number is an IPv4 address to a browser). Underscores are real-world hosts (UT1 lists thousands,
# browsers resolve them), so they are accepted like letters.
CANONICAL_NAME_MATCH = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*(?![0-9]+\Z|0x[0-9a-f]*\Z)[a-z0-9_-]{1,63}").fullmatch
# An IPv4 address already in canonical dotted-decimal form (the common case of an IP host), checked before the
# general WHATWG parse below.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch
_ASCII_LABEL = re.compile(r"[a-z0-9_-]{1,63}").fullmatch
_HEX = re.compile(r"[0-9a-f]*").fullmatch
_OCTAL = re.compile(r"[0-7]+").fullmatch
_DECIMAL = re.compile(r"[0-9]+").fullmatch
# Full stops that IDNA (UTS #46) treats as label separators.
_IDEOGRAPHIC_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def normalise_host(raw: str) -> str | None:
    """The canonical form of a host (with or without a port), or None when it is not a valid host.

    Lower-cases, drops one trailing dot and any port, encodes unicode labels as punycode, canonicalises IPv4 and
    IPv6 literals (IPv6 without brackets). Rejects empty labels, spaces and other illegal characters, labels over
    63 and names over 253 characters.
    """
    host = raw
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or not _valid_port_suffix(host[end + 1 :]):
            return None
        return _ipv6(host[1:end])
    colons = host.count(":")
    if colons == 1:
        host, _, port = host.partition(":")
        if not _valid_port(port):
            return None
    elif colons > 1:
        return _ipv6(host)
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if len(host) <= MAX_HOST_LENGTH and (CANONICAL_NAME_MATCH(host) or _CANONICAL_IPV4(host)):
        return host
    return _normalise_slow(host)


def suffixes(host: str) -> list[str]:
    """The label suffixes of a normalised host, longest first; an IP literal is only itself.

    `a.b.example.com` -> `[a.b.example.com, b.example.com, example.com, com]`: cut only at dots, so an entry for
    `facebook.com` covers `www.facebook.com` but never `notfacebook.com`.
    """
    if is_ip_literal(host):
        return [host]
    out = [host]
    i = host.find(".")
    while i >= 0:
        out.append(host[i + 1 :])
        i = host.find(".", i + 1)
    return out


def is_ip_literal(host: str) -> bool:
    """Whether a normalised host is an IP address (IPv6 has colons; a canonical name never ends in a numeric label)."""
    return ":" in host or host.rpartition(".")[2].isdigit()


def normalise_url_prefix(raw: str) -> str | None:
    """The canonical `host/path-prefix` form of a URL list entry (squidGuard `urls` format), or None if invalid.

    A scheme is tolerated and dropped, the host normalised, a leading `www.` dropped so an entry also covers the
    bare domain (as squidGuard does), a fragment dropped, and the path lower-cased: the URL index compares paths
    case-insensitively. An entry without a path is the whole host (`host/`).
    """
    entry = raw.strip()
    scheme, sep, rest = entry.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        entry = rest
    entry = entry.partition("#")[0]
    cut = len(entry)
    for ch in "/?":
        i = entry.find(ch)
        if 0 <= i < cut:
            cut = i
    host = normalise_host(entry[:cut])
    if host is None:
        return None
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    path = entry[cut:]
    if not path.startswith("/"):
        path = "/" + path
    if any(ch.isspace() for ch in path):
        return None
    if ":" in host:
        host = f"[{host}]"
    return host + path.lower()


def split_url_prefix(entry: str) -> tuple[str, str]:
    """(host, path prefix) of a normalised URL entry."""
    if entry.startswith("["):
        end = entry.index("]")
        return entry[1:end], entry[end + 1 :]
    host, _, path = entry.partition("/")
    return host, "/" + path


def _valid_port(port: str) -> bool:
    return 0 < len(port) <= 5 and port.isascii() and port.isdigit() and int(port) <= 65535


def _valid_port_suffix(rest: str) -> bool:
    return rest == "" or (rest.startswith(":") and _valid_port(rest[1:]))


def _ipv6(text: str) -> str | None:
    # Zone ids (`fe80::1%eth0`) name an interface of the client, not a host anyone can list.
    if "%" in text:
        return None
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None


def _normalise_slow(host: str) -> str | None:
    if not host.isascii():
        host = unicodedata.normalize("NFKC", host).lower()
        host = unicodedata.normalize("NFC", host).translate(_IDEOGRAPHIC_STOPS)
        if host.endswith("."):
            host = host[:-1]
    labels = host.split(".")
    out = []
    for label in labels:
        if label.isascii():
            if not _ASCII_LABEL(label):
                return None
            out.append(label)
            continue
        if not all(ch == "-" or ch.isalnum() or unicodedata.category(ch).startswith("M") for ch in label):
            return None
        encoded = "xn--" + label.encode("punycode").decode("ascii")
        if len(encoded) > MAX_LABEL_LENGTH:
            return None
        out.append(encoded)
    name = ".".join(out)
    if len(name) > MAX_HOST_LENGTH:
        return None
    if _ipv4_number(out[-1]) is not None:
        return _whatwg_ipv4(out)
    return name


def _whatwg_ipv4(parts: list[str]) -> str | None:
    """Browsers read a host whose last label is a number as IPv4: 1 to 4 parts, each decimal, 0x-hex or 0-octal."""
    if len(parts) > 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None or n > 255 for n in numbers[:-1]):
        return None
    last = numbers[-1]
    if last is None or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))  # type: ignore[operator]  # None excluded above
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str) -> int | None:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16) if _HEX(part[2:]) else None
    if len(part) > 1 and part.startswith("0"):
        return int(part[1:], 8) if _OCTAL(part[1:]) else None
    return int(part) if _DECIMAL(part) else None
