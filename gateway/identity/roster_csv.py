"""Parse a school MIS roster export (pupils and staff) into Person values, checking every row first."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date, datetime
from pathlib import Path

from gateway.identity.csv_table import CsvImportError, RowProblem, header_key, read_rows
from gateway.identity.people import Person, StaffRole

_ALIASES = {
    header_key(h): field
    for field, headings in {
        "username": ["username", "user name", "login", "user id", "upn", "network username"],
        "display_name": ["display name", "name", "full name", "preferred name"],
        "forename": ["forename", "first name", "given name", "legal forename", "preferred forename"],
        "surname": ["surname", "last name", "family name", "legal surname", "preferred surname"],
        "group": ["group", "filter group", "policy group"],
        "year_group": ["year group", "year", "nc year", "curriculum year"],
        "school_class": ["class", "reg group", "registration group", "form", "tutor group"],
        "date_of_birth": ["date of birth", "dob", "birth date"],
        "email": ["email", "e-mail", "email address", "primary email"],
        "roles": ["role", "roles", "staff role", "staff roles"],
        "teaches": ["teaches", "classes taught", "teaching classes", "teaching groups"],
    }.items()
    for h in headings
}

_ROLE_NAMES = {
    header_key(alias): role
    for role, aliases in {
        StaffRole.E_SAFETY_OFFICER: ["e-safety officer", "esafety", "e_safety_officer", "dsl", "online safety lead"],
        StaffRole.HEADTEACHER: ["headteacher", "head", "head teacher"],
        StaffRole.DPO: ["dpo", "data protection officer"],
        StaffRole.TEACHER: ["teacher", "class teacher"],
        StaffRole.IT: ["it", "it support", "technician", "network manager"],
    }.items()
    for alias in aliases
}

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_year_group(text: str) -> int | None:
    """'' -> None; 'N'/'Nursery' -> -1; 'R'/'Reception' -> 0; '3', 'Y3', 'Year 3' -> 3. ValueError otherwise."""
    t = text.strip().lower()
    if not t:
        return None
    if t in ("n", "nur", "nursery", "fs1"):
        return -1
    if t in ("r", "rec", "reception", "yr", "fs2"):
        return 0
    m = re.fullmatch(r"(?:y|yr|year|nc year)?\s*(\d{1,2})", t)
    if m and 1 <= int(m.group(1)) <= 13:
        return int(m.group(1))
    raise ValueError(f"year group {text!r} is not N, R or 1-13")


def parse_date_of_birth(text: str, today: date) -> date | None:
    t = text.strip()
    if not t:
        return None
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            d = datetime.strptime(t, fmt).date()
        except ValueError:
            continue
        if not (today.replace(year=today.year - 100) <= d <= today):
            raise ValueError(f"date of birth {t!r} is not a plausible date")
        return d
    raise ValueError(f"date of birth {t!r} is not YYYY-MM-DD or DD/MM/YYYY")


def parse_roles(text: str) -> frozenset[StaffRole]:
    roles = set()
    for part in re.split(r"[;,|/]", text):
        if not part.strip():
            continue
        role = _ROLE_NAMES.get(header_key(part))
        if role is None:
            raise ValueError(f"unknown role {part.strip()!r} (known: {', '.join(r.value for r in StaffRole)})")
        roles.add(role)
    return frozenset(roles)


def parse_classes(text: str) -> frozenset[str]:
    """'5B; 6B' or '5B, 6B' -> {'5B', '6B'}: class names as the roster's Class column spells them."""
    return frozenset(part.strip() for part in re.split(r"[;,|]", text) if part.strip())


def parse_roster(path: Path, known_groups: Collection[str] | None = None, today: date | None = None) -> list[Person]:
    """Every row as a Person, or CsvImportError naming every bad line (duplicates name both lines).

    `known_groups`: the groups the policy defines; a row naming another group is an error.
    """
    today = today or date.today()
    people: list[Person] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    for line, row in read_rows(path, _ALIASES, {"username", "group"}):
        errors: list[str] = []
        username = row["username"]
        if not _USERNAME.match(username):
            errors.append(f"username {username!r} is missing or has characters other than letters, digits, . _ @ -"
                          if username else "username is empty")
        key = username.lower()
        if username and key in first_line:
            errors.append(f"duplicate username {username!r} (also on line {first_line[key]})")
        elif username:
            first_line[key] = line
        display = row.get("display_name", "") or " ".join(
            p for p in (row.get("forename", ""), row.get("surname", "")) if p
        )
        group = row["group"]
        if not group:
            errors.append("group is empty")
        elif known_groups is not None and group not in known_groups:
            errors.append(f"group {group!r} is not a group the policy defines ({', '.join(sorted(known_groups))})")
        year_group = dob = None
        roles: frozenset[StaffRole] = frozenset()
        try:
            year_group = parse_year_group(row.get("year_group", ""))
        except ValueError as e:
            errors.append(str(e))
        try:
            dob = parse_date_of_birth(row.get("date_of_birth", ""), today)
        except ValueError as e:
            errors.append(str(e))
        try:
            roles = parse_roles(row.get("roles", ""))
        except ValueError as e:
            errors.append(str(e))
        email = row.get("email", "") or None
        if email and not _EMAIL.match(email):
            errors.append(f"email {email!r} is not an email address")
        teaches = parse_classes(row.get("teaches", ""))
        if teaches and year_group is not None:
            errors.append("a pupil (a row with a year group) cannot teach classes")
        if any(len(name) > 64 for name in teaches):
            errors.append("a class name in teaches is longer than 64 characters")
        if errors:
            problems.extend(RowProblem(line, e) for e in errors)
            continue
        people.append(
            Person(
                username=key,
                display_name=display or username,
                group=group,
                year_group=year_group,
                school_class=row.get("school_class", "") or None,
                date_of_birth=dob,
                email=email,
                roles=roles,
                teaches=teaches,
            )
        )
    if problems:
        raise CsvImportError(str(path), problems)
    return people
