"""A private OpenLDAP server (Debian's ``slapd``) for tests: its own config and mdb database in a folder,
on 127.0.0.1 and a free port, as a child process that dies with the test run.

    with Slapd(tmp_path, users=[LdapUser("mrp", "Raj Patel", "staff", "secret")]) as ldap:
        ldap.url, ldap.port, ldap.base, ldap.admin_dn, ldap.admin_password

Entries: ``dc=school,dc=test``; ``ou=<ou>,ou=people,...`` for each user's ``ou``; each user an
``inetOrgPerson`` ``cn=<full name>`` with ``uid=<username>`` (as Active Directory has ``cn`` for the name and
``sAMAccountName`` for the log-in) and a salted SHA password made by ``slappasswd``. Only the admin and the
entry itself can read ``userPassword``; anyone may bind.

Skips the test when ``/usr/sbin/slapd`` is missing, unless ``GATEWAY_REQUIRE_LDAP=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import LOOPBACK, free_port

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SLAPPASSWD = Path("/usr/sbin/slappasswd")
MISSING = f"{SLAPD} is missing: apt-get install -y slapd ldap-utils (scripts/bootstrap installs them)"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def _die_with_parent() -> None:
    """Runs in the child before exec: a killed test run must not leave slapd behind on a shared machine."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass


def require_slapd() -> None:
    if not (SLAPD.exists() and SLAPADD.exists() and SLAPPASSWD.exists()):
        if os.environ.get("GATEWAY_REQUIRE_LDAP") == "1":
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)


@dataclass(frozen=True)
class LdapUser:
    username: str
    full_name: str
    ou: str
    password: str


class Slapd:
    base = "dc=school,dc=test"
    admin_dn = "cn=admin,dc=school,dc=test"
    admin_password = "directory-admin-secret"

    def __init__(self, folder: Path, users: list[LdapUser]) -> None:
        self.folder = folder
        self.users = users
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.port}"

    def people(self) -> str:
        return f"ou=people,{self.base}"

    def dn(self, user: LdapUser) -> str:
        return f"cn={user.full_name},ou={user.ou},{self.people()}"

    def _config(self) -> Path:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "slapd.conf"
        schemas = "".join(f"include /etc/ldap/schema/{name}.schema\n" for name in SCHEMAS)
        conf.write_text(
            f"{schemas}"
            "modulepath /usr/lib/ldap\n"
            "moduleload back_mdb\n"
            f"pidfile {self.folder / 'slapd.pid'}\n"
            "database mdb\n"
            "maxsize 16777216\n"
            f'suffix "{self.base}"\n'
            f'rootdn "{self.admin_dn}"\n'
            f"rootpw {self.admin_password}\n"
            f"directory {data}\n"
            "access to attrs=userPassword by self read by anonymous auth by * none\n"
            "access to * by * read\n"
        )
        return conf

    def _ldif(self) -> str:
        entries = [f"dn: {self.base}\nobjectClass: dcObject\nobjectClass: organization\no: Test School\ndc: school\n",
                   f"dn: {self.people()}\nobjectClass: organizationalUnit\nou: people\n"]
        for ou in sorted({u.ou for u in self.users}):
            entries.append(f"dn: ou={ou},{self.people()}\nobjectClass: organizationalUnit\nou: {ou}\n")
        for u in self.users:
            hashed = subprocess.run([str(SLAPPASSWD), "-s", u.password], check=True, capture_output=True,
                                    text=True).stdout.strip()
            entries.append(f"dn: {self.dn(u)}\nobjectClass: inetOrgPerson\ncn: {u.full_name}\n"
                           f"sn: {u.full_name.split()[-1]}\nuid: {u.username}\nuserPassword: {hashed}\n")
        return "\n".join(entries)

    def start(self, timeout: float = 15.0) -> Slapd:
        require_slapd()
        conf = self._config()
        ldif = self.folder / "people.ldif"
        ldif.write_text(self._ldif())
        subprocess.run([str(SLAPADD), "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
        log = open(self.folder / "slapd.log", "wb")
        for _attempt in range(3):  # free_port has a small race with other tests binding ports
            self.port = free_port()
            # -d 0: stay in the foreground (a child we can stop), no debug output.
            self.process = subprocess.Popen(
                [str(SLAPD), "-f", str(conf), "-h", self.url + "/", "-d", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                    log.close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        log.close()
        raise RuntimeError(f"slapd did not start:\n{(self.folder / 'slapd.log').read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
