"""The checks `gateway health` runs, each a `Check` with a monitoring status (Nagios/Icinga: OK, WARNING,
CRITICAL) and one line that says what was found.

Each check asks the running gateway what a person relying on it would: does every proxy port answer and decide (a
self-test request signed with the console's secret, answered by a local origin started here, so nothing leaves the
machine), does the console answer, does its PAC file send devices to every worker and never straight to the web, is
the database reachable and migrated, are rows waiting on disk, would the policy load if a worker restarted, when does
the CA expire, is there disk left for the spool, and do the workers' metrics endpoints answer.
"""

from __future__ import annotations

import enum
import http.client
import json
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from gateway.selftest.origin import MARK_HEADER, SelftestOrigin
from gateway.selftest.token import HEADER, RESULT_HEADER, digest, mint, read_secret

TIMEOUT_SECONDS = 5.0
# A host no one can own (RFC 2606): the self-test request names it, and the local origin answers it.
PROBE_URL = "http://gateway-health.invalid/"


class Status(enum.IntEnum):
    # The values are the monitoring plugins' exit codes.
    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    summary: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status.name, "summary": self.summary}


@dataclass(frozen=True, slots=True)
class Limits:
    """When a backlog, the CA's remaining life or the free disk turns a check WARNING or CRITICAL."""

    spool_warn_files: int = 1
    spool_critical_age: float = 3600.0
    ca_warn_days: int = 30
    ca_critical_days: int = 7
    disk_warn_percent: float = 10.0
    disk_critical_percent: float = 5.0


def _address(hostport: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(hostport if "//" in hostport else f"//{hostport}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def port_of(hostport: str) -> int:
    """A --proxy HOST:PORT's port (8080 when none is given, as `gateway run`'s default)."""
    return _address(hostport, 8080)[1]


def _failure(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def check_proxy(hostport: str, secret_file: Path, group: str | None) -> Check:
    """One request through the proxy, as the self-test makes them: the proxy must answer with its own decision."""
    name = f"proxy {hostport}"
    host, port = _address(hostport, 8080)
    secret = None
    try:
        secret = read_secret(secret_file) or None
    except OSError:
        pass
    if secret is None or group is None:
        why = f"no console secret at {secret_file}" if secret is None else "the policy did not load"
        return _plain_answer(name, host, port, why)
    with SelftestOrigin() as origin:
        token = mint(secret, group, None, origin.address)
        started = time.monotonic()
        try:
            status, headers = _ask(host, port, {HEADER: token})
        except (OSError, http.client.HTTPException) as exc:
            return Check(name, Status.CRITICAL, f"no answer: {_failure(exc)}")
        elapsed = (time.monotonic() - started) * 1000
    answer = headers.get(RESULT_HEADER)
    try:
        decision = json.loads(answer) if answer else None
    except ValueError:
        decision = None
    if not isinstance(decision, dict) or decision.get("token") != digest(token):
        return Check(name, Status.CRITICAL, f"answered {status} but not with the gateway's decision (is this the "
                                            "gateway, sharing this console secret?)")  # fmt: skip
    action = decision.get("action")
    if action != "block" and headers.get(MARK_HEADER) != origin.mark:
        return Check(name, Status.CRITICAL, f"decided {action} but the page did not come from the check's origin")
    return Check(name, Status.OK, f"answered and decided ({action} as {group}) in {elapsed:.0f} ms")


def _plain_answer(name: str, host: str, port: int, why: str) -> Check:
    """Without a signed token only an answer can be checked, not that the gateway decided it."""
    try:
        status, _ = _ask(host, port, {})
    except (OSError, http.client.HTTPException) as exc:
        return Check(name, Status.CRITICAL, f"no answer: {_failure(exc)}")
    return Check(name, Status.WARNING, f"answered {status}, but whether it decides could not be checked ({why})")


def _ask(host: str, port: int, headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage]:
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", PROBE_URL, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


def check_console(url: str) -> Check:
    name = f"console {url}"
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/sign-in")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return Check(name, Status.CRITICAL, f"no answer: {_failure(exc)}")
    finally:
        connection.close()
    if status >= 500:
        return Check(name, Status.CRITICAL, f"answered {status}")
    return Check(name, Status.OK, f"answered {status}")


# The worker ports in the PAC file `gateway run` writes (`gateway.deploy.pac`), and any a hand-written one names.
_PAC_PORT_LIST = re.compile(r"\bvar\s+ports\s*=\s*\[([\d,\s]*)\]")
_PAC_PROXY = re.compile(r"\b(?:PROXY|HTTPS?)\s+[^\s;:\"']+:(\d+)")


def check_pac(console_url: str, worker_ports: list[int], written: Path) -> Check:
    """What a device set up with the console's PAC file is told: every worker's port, and never DIRECT (a browser
    whose proxies do not answer would then browse unfiltered). `written`: where `gateway run` keeps the file."""
    url = f"{console_url.rstrip('/')}/proxy.pac"
    name = f"PAC file {url}"
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        text = response.read(1_000_000).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return Check(name, Status.CRITICAL, f"no answer: {_failure(exc)}; browsers that cannot fetch it go without "
                                            "a proxy")  # fmt: skip
    finally:
        connection.close()
    if response.status == 404:
        if written.exists():
            return Check(name, Status.CRITICAL, f"not served, though gateway run wrote {written}: browsers set up "
                                                "with it go without a proxy (is the console's --secret-file in "
                                                "the same folder?)")  # fmt: skip
        # Transparent mode and single-port set-ups (the systemd units) write none, and are right not to.
        return Check(name, Status.OK, "none served, none written (transparent or fixed-port devices); a device "
                                      "given this address would go without a proxy")  # fmt: skip
    if response.status != 200:
        return Check(name, Status.CRITICAL, f"answered {response.status}; browsers set up with it go without a proxy")
    if "DIRECT" in text:
        return Check(name, Status.CRITICAL, "says DIRECT: a device whose proxy does not answer would browse "
                                            "unfiltered")  # fmt: skip
    named = {int(port) for port in _PAC_PROXY.findall(text)}
    for listed in _PAC_PORT_LIST.findall(text):
        named.update(int(port) for port in listed.replace(",", " ").split())
    if not named:
        return Check(name, Status.CRITICAL, "names no proxy port")
    expected = set(worker_ports)
    missing, unknown = sorted(expected - named), sorted(named - expected)
    problems = []
    if missing:
        problems.append(f"leaves out worker port{'s' * (len(missing) > 1)} {_ports(missing)} (no device is sent "
                        f"there)")  # fmt: skip
    if unknown:
        problems.append(f"names port{'s' * (len(unknown) > 1)} {_ports(unknown)}, not among the workers checked "
                        "(devices sent there wait for a proxy that may not be the gateway)")  # fmt: skip
    if problems:
        return Check(name, Status.WARNING, "; ".join(problems) + ": is it from an earlier gateway run?")
    return Check(name, Status.OK, f"sends devices to the {len(expected)} worker port{'s' * (len(expected) > 1)} "
                                  f"({_ports(sorted(expected))}), never DIRECT")  # fmt: skip


def _ports(ports: list[int]) -> str:
    return ", ".join(map(str, ports))


def check_database(db_url: str) -> Check:
    from sqlalchemy.engine import make_url

    from gateway.store.engine import NotMigrated, display_url, make_engine, require_migrated

    name = f"database {display_url(db_url)}"
    parsed = make_url(db_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return Check(name, Status.CRITICAL, "no database file there")
    engine = make_engine(db_url, statement_timeout=TIMEOUT_SECONDS)
    try:
        require_migrated(engine)
    except NotMigrated as exc:
        # "database at URL is not migrated: run ..." -> "not migrated" (the URL is in the check's name already).
        state = str(exc).partition(": run")[0].rpartition(" is ")[2]
        return Check(name, Status.CRITICAL, f"{state} (run `gateway db upgrade`)")
    except Exception as exc:  # noqa: BLE001  refused, unknown host, bad password: all mean unreachable here
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().partition("\n")[0] or type(orig).__name__
        return Check(name, Status.CRITICAL, f"unreachable: {first}")
    finally:
        engine.dispose()
    return Check(name, Status.OK, "reachable and migrated to the code's head revision")


def spooled(spool: Path) -> dict[str, tuple[int, float]]:
    """Batches waiting under the spool folder, by kind: access-log rows the database has not taken yet, rows it
    refused, the audit outbox; each as (files, age in seconds of the oldest). Worker folders below are counted."""
    found: dict[str, tuple[int, float | None]] = {"access": (0, None), "rejected": (0, None), "audit": (0, None)}
    for path in spool.rglob("*.jsonl") if spool.is_dir() else ():
        folders = path.relative_to(spool).parts[:-1]
        kind = "audit" if "audit" in folders else "rejected" if "rejected" in folders else "access"
        try:
            mtime = path.stat().st_mtime
        except OSError:  # delivered and removed while we looked
            continue
        files, oldest = found[kind]
        found[kind] = files + 1, mtime if oldest is None else min(oldest, mtime)
    now = time.time()
    return {kind: (files, now - oldest if oldest is not None else 0.0) for kind, (files, oldest) in found.items()}


def check_backlog(name: str, waiting: tuple[int, float], what: str, limits: Limits) -> Check:
    files, age = waiting
    if files < limits.spool_warn_files:
        return Check(name, Status.OK, f"no {what} waiting")
    status = Status.CRITICAL if age >= limits.spool_critical_age else Status.WARNING
    return Check(name, status, f"{files} {what} waiting, the oldest {_duration(age)} old")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_policy(path: Path) -> tuple[Check, str | None]:
    """Whether the policy would load if a worker started now; and a group to make the proxy check's token for."""
    from gateway.policy.compiled import load_compiled
    from gateway.policy.expectations import check_expectations
    from gateway.policy.loader import PolicyError

    name = f"policy {path}"
    try:
        compiled = load_compiled(path)
        check_expectations(compiled)
    except PolicyError as exc:
        first = str(exc.problems[0]) if exc.problems else str(exc)
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return Check(name, Status.WARNING, f"does not load: {first}{more}; the running proxies keep the policy they "
                                           "loaded, but a worker restarted now would not start"), None  # fmt: skip
    policy = compiled.policy
    return Check(name, Status.OK, f"loads: {len(compiled.rules)} rules, {len(policy.lists)} lists"), policy.default_group


def check_ca(cert: Path, limits: Limits) -> Check:
    from cryptography import x509

    name = f"CA certificate {cert}"
    try:
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        return Check(name, Status.WARNING, f"cannot be read: {_failure(exc)}")
    left = certificate.not_valid_after_utc - datetime.now(UTC)
    days = left.days
    ends = certificate.not_valid_after_utc.date().isoformat()
    if days < limits.ca_critical_days:
        status = Status.CRITICAL
    elif days < limits.ca_warn_days:
        status = Status.WARNING
    else:
        status = Status.OK
    text = f"expired on {ends}" if left.total_seconds() <= 0 else f"expires on {ends}, in {days} days"
    return Check(name, status, text + ("" if status is Status.OK else ": make a new CA and install it on devices"))


def check_disk(folder: Path, limits: Limits) -> Check:
    name = f"disk {folder}"
    try:
        usage = shutil.disk_usage(folder)
    except OSError as exc:
        return Check(name, Status.CRITICAL, f"cannot be read: {_failure(exc)}")
    free = usage.free / usage.total * 100 if usage.total else 0.0
    if free < limits.disk_critical_percent:
        status = Status.CRITICAL
    elif free < limits.disk_warn_percent:
        status = Status.WARNING
    else:
        status = Status.OK
    return Check(name, status, f"{free:.0f}% free ({usage.free / 2**30:.1f} GiB)")


def check_metrics(hostport: str) -> Check:
    name = f"metrics {hostport}"
    host, port = _address(hostport, 9100)
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return Check(name, Status.CRITICAL, f"no answer: {_failure(exc)}")
    finally:
        connection.close()
    if response.status != 200 or "gateway_requests_total" not in text:
        return Check(name, Status.CRITICAL, f"answered {response.status}, not with the gateway's metrics")
    if "\ngateway_identity_store_up{" in text and _gauge(text, "gateway_identity_store_up") == 0:
        return Check(name, Status.WARNING, "answers; the worker identifies clients by network only (its identity "
                                           "sources cannot read the store)")  # fmt: skip
    return Check(name, Status.OK, "answers")


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
