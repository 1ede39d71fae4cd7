"""E2Guardian and squid as benchmark references: each an unprivileged child on a free port, configured in a folder
of the benchmark's own.

- E2Guardian: Debian's configuration (``/etc/e2guardian``) is copied into the folder and every path in it pointed
  there; it runs in the foreground (``-N``, ``nodaemon = on``), logs every request (``loglevel = 3``, the Debian
  default) to the folder, listens on a free port (its transparent HTTPS port too), and with ``mitm`` intercepts
  HTTPS with a CA made for the run, checking the origin's certificate against the benchmark origin's CA.
- squid: ``squid -N -f`` a configuration written into the folder: no cache, an access log in the folder.

Both are asked for the names the gateway is asked for (``www.bbc.co.uk``), which resolve for them alone to the
benchmark origin's address (bench/reference_origin.py): squid reads them from its own ``hosts_file``; E2Guardian,
which has no such option, runs in a mount namespace of its own (``unshare --mount``) where a hosts file of the
folder is bound over ``/etc/hosts``. Nothing of the system is changed. As root, both
drop to their Debian users (``e2guardian``, ``proxy``) before they start, with ``setpriv``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.mitmdump import die_with_parent
from tests.support.ports import free_port

INSTALL = "apt-get install -y e2guardian squid"
E2GUARDIAN_CONFIG = Path("/etc/e2guardian")


class ReferenceError(RuntimeError):
    """A reference proxy is missing or did not start; the message says why."""


@dataclass
class ReferenceProxy:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    folder: Path
    ca_cert_path: Path | None = None
    """The CA a client must trust (E2Guardian intercepting HTTPS); None when HTTPS is only tunnelled."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def missing_programs() -> list[str]:
    return [name for name in ("e2guardian", "squid") if shutil.which(name) is None]


def _as_user(user: str) -> list[str]:
    """The prefix that runs a command as `user` when we are root (nothing otherwise: we are unprivileged already)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]


def _hand_to(folder: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(user).gr_gid
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


def _running_user(debian_user: str) -> tuple[str, str]:
    if os.geteuid() == 0:
        return debian_user, debian_user
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def _wait_listening(process: subprocess.Popen[bytes], port: int, name: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ReferenceError(f"{name} exited ({process.returncode}) before listening:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise ReferenceError(f"{name} did not listen on port {port} within {timeout:g}s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _set(text: str, key: str, value: str) -> str:
    """`key = value` in an E2Guardian configuration: the active line replaced, or a commented one, or appended."""
    line = f"{key} = {value}"
    active = re.compile(rf"^{re.escape(key)}\s*=.*$", re.MULTILINE)
    if active.search(text):
        return active.sub(lambda _m: line, text, count=1)
    commented = re.compile(rf"^#\s*{re.escape(key)}\s*=.*$", re.MULTILINE)
    if commented.search(text):
        return commented.sub(lambda _m: line, text, count=1)
    return text.rstrip("\n") + f"\n{line}\n"


def _hosts_file(folder: Path, names: list[str], address: str) -> Path:
    path = folder / "hosts"
    path.write_text("127.0.0.1 localhost\n" + "".join(f"{address} {name}\n" for name in names))
    return path


def _make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA for E2Guardian's intercepted certificates, and the one key its generated certificates share."""
    ca_key, ca_cert, cert_key = folder / "ca.key", folder / "ca.pem", folder / "cert.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
         "-days", "2", "-subj", "/CN=bench e2guardian CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["openssl", "genrsa", "-out", str(cert_key), "2048"], check=True, capture_output=True)
    return ca_cert, ca_key, cert_key


def _trust_folder(folder: Path, origin_ca: Path) -> Path:
    """A folder OpenSSL looks certificates up in by subject hash, holding the benchmark origin's CA."""
    folder.mkdir()
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(origin_ca)], check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    shutil.copy(origin_ca, folder / f"{digest}.0")
    return folder


def start_e2guardian(folder: Path, names: list[str], address: str, origin_ca: Path, *, mitm: bool) -> ReferenceProxy:
    """E2Guardian with Debian's configuration moved into `folder` (see the module's docstring)."""
    if shutil.which("e2guardian") is None or not E2GUARDIAN_CONFIG.is_dir():
        raise ReferenceError(f"E2Guardian is not installed: {INSTALL}")
    folder.mkdir(parents=True)
    etc = folder / "etc"
    shutil.copytree(E2GUARDIAN_CONFIG, etc, symlinks=False, ignore=shutil.ignore_patterns("private"))
    for path in etc.rglob("*"):
        if path.is_file():
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            if str(E2GUARDIAN_CONFIG) in text:
                path.write_text(text.replace(str(E2GUARDIAN_CONFIG), str(etc)))
    (folder / "cache").mkdir()
    port, https_port = free_port(), free_port()
    user, group = _running_user("e2guardian")
    conf = etc / "e2guardian.conf"
    text = conf.read_text()
    for key, value in {
        "filterip": "127.0.0.1", "filterports": str(port), "transparenthttpsport": str(https_port),
        "nodaemon": "on", "loglocation": f"'{folder / 'access.log'}'", "pidfilename": f"'{folder / 'e2guardian.pid'}'",
        "filecachedir": f"'{folder / 'cache'}'", "daemonuser": f"'{user}'", "daemongroup": f"'{group}'",
    }.items():  # fmt: skip
        text = _set(text, key, value)
    ca_cert = None
    if mitm:
        ca_cert, ca_key, cert_key = _make_ca(folder)
        generated = folder / "generatedcerts"
        generated.mkdir()
        trust = _trust_folder(folder / "trusted", origin_ca)
        for key, value in {
            "enablessl": "on", "cacertificatepath": f"'{ca_cert}'", "caprivatekeypath": f"'{ca_key}'",
            "certprivatekeypath": f"'{cert_key}'", "generatedcertpath": f"'{generated}/'",
            "sslcertificatepath": f"'{trust}/'",
            # Debian's default validity (from December 2014, ten years) has run out: browsers refuse those.
            "generatedcertstart": str(int(time.time()) - 86400), "generatedcertend": str(int(time.time()) + 30 * 86400),
        }.items():  # fmt: skip
            text = _set(text, key, value)
        group_conf = etc / "e2guardianf1.conf"
        group_conf.write_text(_set(group_conf.read_text(), "sslmitm", "on"))
    conf.write_text(text)
    hosts = _hosts_file(folder, names, address)
    _hand_to(folder, user)
    if os.geteuid() == 0:
        namespace = ["unshare", "--mount", "--propagation", "private"]
    else:
        # An unprivileged user may mount in a user namespace of its own, as its root.
        namespace = ["unshare", "--map-root-user", "--mount", "--propagation", "private"]
    inner = f"mount --bind {hosts} /etc/hosts && exec {' '.join(_as_user(user))} e2guardian -N -c {conf}"
    log = folder / "e2guardian.out"
    process = subprocess.Popen(
        [*namespace, "sh", "-c", inner], stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
    )  # fmt: skip
    name = "e2guardian-mitm" if mitm else "e2guardian"
    _wait_listening(process, port, name, log)
    return ReferenceProxy(name, process, port, folder, ca_cert)


SQUID_CONF = """\
# Written by bench/reference_proxies.py: an unprivileged squid on one port, no cache, its files in one folder.
http_port 127.0.0.1:{port}
acl bench src 127.0.0.1/32
http_access allow bench
http_access deny all
cache deny all
cache_mem 8 MB
hosts_file {folder}/hosts
pid_filename {folder}/squid.pid
access_log stdio:{folder}/access.log
cache_log {folder}/cache.log
cache_store_log none
coredump_dir {folder}
netdb_filename none
shutdown_lifetime 1 seconds
"""


def start_squid(folder: Path, names: list[str], address: str) -> ReferenceProxy:
    """squid, its configuration written into `folder`: tunnels CONNECT (Debian's squid cannot intercept TLS)."""
    if shutil.which("squid") is None:
        raise ReferenceError(f"squid is not installed: {INSTALL}")
    folder.mkdir(parents=True)
    port = free_port()
    user, _group = _running_user("proxy")
    _hosts_file(folder, names, address)
    conf = folder / "squid.conf"
    conf.write_text(SQUID_CONF.format(port=port, folder=folder))
    _hand_to(folder, user)
    log = folder / "squid.out"
    # -N: in the foreground, one process (squid's default of one worker, as Debian ships it).
    process = subprocess.Popen(
        [*_as_user(user), "squid", "-N", "-f", str(conf)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    _wait_listening(process, port, "squid", folder / "cache.log")
    return ReferenceProxy("squid", process, port, folder)
