"""A small routed network in Linux network namespaces, made and removed by the test itself.

:class:`RoutedNetwork` makes three namespaces joined by veth pairs: a "client" (a pupil's device with no proxy
settings, its default route the gateway), a "gateway" (IP forwarding on, where the proxy and its nftables rules run)
and an "internet" (where the origin runs), with fixed addresses from the documentation ranges inside namespaces
that exist only for the test. Nothing is routed out of them. The gateway resolves names from its own hosts file
(:meth:`RoutedNetwork.resolve_in_gateway`), removed with the namespaces. The namespaces' names carry the test process's id, so
parallel runs do not meet, and :meth:`RoutedNetwork.remove` deletes them (their veths go with them) even when the
test failed.

:func:`unavailable` says why this machine cannot run such a test (not root, no `ip netns`, no `nft`), for a skip.

Run as a script inside a namespace (``ip netns exec NS python -m tests.support.netns HOST CA_DIR``), this module is
the internet's origin: :class:`~tests.support.origins.OriginServer` with TLS on ``HOST`` (reached on ports 80 and
443 through a redirect in that namespace), plus a UDP listener on 443, 4433 and 1194 (OpenVPN's) and a decoy TCP listener on
``DECOY_IP`` port 80; it prints ``port N`` when ready and one line per request, datagram or decoy connection's
bytes it receives (``seen SCHEME HOST PATH``, ``udp PORT DATA``, ``decoy BYTES``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.mitmdump import die_with_parent

CLIENT_IP = "10.10.0.2"  # inside MINIMAL's pupil network, 10.10.0.0/16
GATEWAY_LAN_IP = "10.10.0.1"
GATEWAY_WAN_IP = "203.0.113.1"
ORIGIN_IP = "203.0.113.10"
# Another host on the internet (a site the device is not allowed, say): it reports any bytes sent to its port 80.
DECOY_IP = "203.0.113.66"
UDP_PORTS = (443, 4433, 1194)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root, as CI does)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"no `{tool}` on this machine (scripts/bootstrap installs {package})"
    probe = f"gwprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine forbids network namespaces: `ip netns add` said {made.stderr.strip()!r}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class RoutedNetwork:
    """client (10.10.0.2) -> gateway (10.10.0.1 | 203.0.113.1) -> internet (203.0.113.10)."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.client, self.gateway, self.internet = (f"gw{role}{tag}" for role in ("cli", "gw", "net"))
        self._made: list[str] = []
        # `ip netns exec NS` mounts the files of /etc/netns/NS over /etc: the gateway's own /etc/hosts, its "DNS".
        self.gateway_etc = Path("/etc/netns") / self.gateway

    def make(self) -> "RoutedNetwork":
        try:
            self._make()
        except BaseException:
            self.remove()
            raise
        return self

    def _make(self) -> None:
        for ns in (self.client, self.gateway, self.internet):
            _ip("netns", "add", ns)
            self._made.append(ns)
            self.run(ns, "ip", "link", "set", "lo", "up")
        self._link(self.client, "c0", CLIENT_IP, self.gateway, "g0", GATEWAY_LAN_IP)
        self._link(self.gateway, "g1", GATEWAY_WAN_IP, self.internet, "n0", ORIGIN_IP)
        self.run(self.internet, "ip", "addr", "add", f"{DECOY_IP}/24", "dev", "n0")
        self.run(self.client, "ip", "route", "add", "default", "via", GATEWAY_LAN_IP)
        self.run(self.internet, "ip", "route", "add", "default", "via", GATEWAY_WAN_IP)
        self.run(self.gateway, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def _link(self, left: str, left_if: str, left_ip: str, right: str, right_if: str, right_ip: str) -> None:
        _ip("link", "add", left_if, "netns", left, "type", "veth", "peer", "name", right_if, "netns", right)
        for ns, name, address in ((left, left_if, left_ip), (right, right_if, right_ip)):
            self.run(ns, "ip", "addr", "add", f"{address}/24", "dev", name)
            self.run(ns, "ip", "link", "set", name, "up")

    def run(self, ns: str, *command: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        done = subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True, text=True,
                              timeout=timeout, input=input)  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"in {ns}: {' '.join(command)} exited {done.returncode}: {done.stderr or done.stdout}")
        return done

    def resolve_in_gateway(self, names: Sequence[str], address: str) -> None:
        """The gateway resolves `names` to `address` (for processes started in it from now on)."""
        self.gateway_etc.mkdir(parents=True, exist_ok=True)
        (self.gateway_etc / "hosts").write_text(f"127.0.0.1 localhost\n{address} {' '.join(names)}\n")

    def popen(self, ns: str, command: Sequence[str], **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def,type-arg]
        return subprocess.Popen(["ip", "netns", "exec", ns, *command], preexec_fn=die_with_parent, **kwargs)

    def remove(self) -> None:
        """Kill what still runs in the namespaces (the test's own processes) and delete them."""
        for ns in reversed(self._made):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()
        shutil.rmtree(self.gateway_etc, ignore_errors=True)

    def __enter__(self) -> "RoutedNetwork":
        return self.make()

    def __exit__(self, *exc: object) -> None:
        self.remove()


class NamespacedOrigin:
    """The origin script above, run in the internet namespace; its output lines collected as they come."""

    def __init__(self, network: RoutedNetwork, ca_dir: Path) -> None:
        ca_dir.mkdir(parents=True, exist_ok=True)
        self.ca_cert_path = ca_dir / "origin-ca-cert.pem"
        root = Path(__file__).resolve().parents[2]
        self.process = network.popen(
            network.internet, [sys.executable, "-u", "-m", "tests.support.netns", ORIGIN_IP, str(ca_dir)],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for("port ", timeout=30)
        self.port = int(line.split()[1])
        # Ports 80 and 443 of the origin's address both reach its one dual HTTP/TLS port.
        network.run(network.internet, "nft", "-f", "-", input=(
            "table ip origin {\n chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n"
            f"  ip daddr {ORIGIN_IP} tcp dport {{ 80, 443 }} redirect to :{self.port}\n }}\n}}\n"
        ))  # fmt: skip

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def seen(self, prefix: str) -> list[str]:
        with self._lock:
            return [line for line in self.lines if line.startswith(prefix)]

    def wait_for(self, prefix: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = self.seen(prefix)
            if found:
                return found[0]
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"origin: no {prefix!r} line; its output: {self.lines}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _serve(host: str, ca_dir: Path) -> None:
    from tests.support.origins import OriginCA, OriginServer, SeenRequest

    class Reporting(OriginServer):
        def record(self, seen: SeenRequest) -> None:
            super().record(seen)
            print(f"seen {seen.scheme} {seen.host} {seen.path}", flush=True)

    def udp(port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, port))
            while True:
                data, _ = sock.recvfrom(2048)
                print(f"udp {port} {data.decode(errors='replace')}", flush=True)

    def decoy() -> None:
        with socket.create_server((DECOY_IP, 80)) as server:
            while True:
                conn, _ = server.accept()
                threading.Thread(target=report_bytes, args=(conn,), daemon=True).start()

    def report_bytes(conn: socket.socket) -> None:
        with conn:
            data = conn.recv(2048)
            if data:
                print(f"decoy {data[:80]!r}", flush=True)

    for port in UDP_PORTS:
        threading.Thread(target=udp, args=(port,), daemon=True).start()
    threading.Thread(target=decoy, daemon=True).start()
    origin = Reporting(tls=True, host=host, ca=OriginCA(ca_dir)).start()
    print(f"port {origin.port}", flush=True)
    sys.stdin.read()  # until the test closes the pipe or kills the process


if __name__ == "__main__":
    _serve(sys.argv[1], Path(sys.argv[2]))
