"""Parse a device register export (school-owned and personal devices) into Device values."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from gateway.identity.csv_table import CsvImportError, RowProblem, header_key, read_rows
from gateway.identity.people import Device

_ALIASES = {
    header_key(h): field
    for field, headings in {
        "name": ["name", "device", "device name", "hostname", "asset name"],
        "mac": ["mac", "mac address", "wifi mac", "wi-fi mac", "hardware address"],
        "kind": ["kind", "type", "device type", "model"],
        "ownership": ["ownership", "owner", "owned by", "byod"],
        "username": ["assigned to", "username", "user", "person"],
        "school_class": ["class", "assigned class"],
        "trolley": ["trolley", "cart", "trolley name"],
        "group": ["group", "filter group"],
    }.items()
    for h in headings
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


def normalise_mac(text: str) -> str:
    """'AA-BB-CC-DD-EE-FF', 'aabb.ccdd.eeff', 'aa:bb:cc:dd:ee:ff' -> 'aa:bb:cc:dd:ee:ff'. ValueError otherwise."""
    digits = re.sub(r"[^0-9a-fA-F]", "", text)
    if len(digits) != 12 or re.search(r"[^0-9A-Fa-f:.\- ]", text.strip()):
        raise ValueError(f"MAC address {text!r} is not six hex bytes")
    d = digits.lower()
    return ":".join(d[i : i + 2] for i in range(0, 12, 2))


def _personal(text: str) -> bool:
    t = header_key(text)
    if t in ("", "school", "schoolowned", "no", "n", "false"):
        return False
    if t in ("personal", "byod", "pupil", "staff", "yes", "y", "true", "own"):
        return True
    raise ValueError(f"ownership {text!r} is not 'school' or 'personal'")


def parse_devices(
    path: Path, known_usernames: Collection[str] | None = None, known_groups: Collection[str] | None = None
) -> list[Device]:
    """Every row as a Device, or CsvImportError naming every bad line."""
    devices: list[Device] = []
    problems: list[RowProblem] = []
    names: dict[str, int] = {}
    macs: dict[str, int] = {}
    for line, row in read_rows(path, _ALIASES, {"name", "mac"}):
        errors: list[str] = []
        name = row["name"]
        if not _NAME.match(name):
            errors.append(f"device name {name!r} is empty or has characters other than letters, digits, space . _ -")
        elif name.lower() in names:
            errors.append(f"duplicate device name {name!r} (also on line {names[name.lower()]})")
        else:
            names[name.lower()] = line
        mac: str | None = None
        if row["mac"]:
            try:
                mac = normalise_mac(row["mac"])
            except ValueError as e:
                errors.append(str(e))
            else:
                if mac in macs:
                    errors.append(f"duplicate MAC address {mac} (also on line {macs[mac]})")
                else:
                    macs[mac] = line
        personal = False
        try:
            personal = _personal(row.get("ownership", ""))
        except ValueError as e:
            errors.append(str(e))
        username = row.get("username", "").lower() or None
        school_class = row.get("school_class", "") or None
        trolley = row.get("trolley", "") or None
        if sum(x is not None for x in (username, school_class, trolley)) > 1:
            errors.append("a device is assigned to one of a person, a class or a trolley, not several")
        if personal and not username:
            errors.append("a personal device needs the username of its owner")
        if username and known_usernames is not None and username not in known_usernames:
            errors.append(f"username {username!r} is not in the roster")
        group = row.get("group", "") or None
        if group and known_groups is not None and group not in known_groups:
            errors.append(f"group {group!r} is not a group the policy defines ({', '.join(sorted(known_groups))})")
        if errors:
            problems.extend(RowProblem(line, e) for e in errors)
            continue
        devices.append(
            Device(
                name=name,
                mac=mac,
                kind=row.get("kind", "").lower(),
                personal=personal,
                username=username,
                school_class=school_class,
                trolley=trolley,
                group=group,
            )
        )
    if problems:
        raise CsvImportError(str(path), problems)
    return devices
