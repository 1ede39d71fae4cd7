"""The benchmark origin (bench/bench_origin.py) listening where the reference proxies expect a web server.

    .venv/bin/python bench/reference_origin.py CA_DIR HOST H1_HOST [ADDRESS:PORT ...]

prints the port of its loopback listener (127.0.0.1, a free port), then serves until killed, on that listener and
on every ADDRESS:PORT given, with bench_origin's answers and certificates.

Why the extra listeners: E2Guardian intercepts TLS only in CONNECTs to port 443, so for the references to get the
same requests as the gateway (``http://www.bbc.co.uk/bench``, ``https://www.bbc.co.uk/bench``, no port), the
origin listens on ports 80 and 443 of an address of its own (``127.0.0.44``), which the references' hosts files
give for those names. Ports below 1024 need root; `start` says when it cannot have them.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import CA_CERT_NAME, _serve_connection, tls_context  # noqa: E402

from tests.support.mitmdump import die_with_parent  # noqa: E402

NAMED_ADDRESS = "127.0.0.44"
"""Where the reference proxies find the origin by name (ports 80 and 443)."""


async def serve(ca_dir: Path, host: str, h1_host: str, extra: list[tuple[str, int]]) -> None:
    tls = tls_context(ca_dir, host, h1_host)
    listeners = [socket.create_server(address, backlog=1024) for address in [("127.0.0.1", 0), *extra]]
    print(listeners[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    connections: set[asyncio.Task[None]] = set()

    async def accept(listener: socket.socket) -> None:
        listener.setblocking(False)
        while True:
            conn, _ = await loop.sock_accept(listener)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(_serve_connection(conn, tls))
            connections.add(task)  # a reference, so the task is not collected mid-handshake
            task.add_done_callback(connections.discard)

    await asyncio.gather(*(accept(listener) for listener in listeners))


def start(ca_dir: Path, host: str, h1_host: str, *, named: bool) -> tuple[subprocess.Popen[str], int, Path, str]:
    """Runs the origin in its own process: (process, loopback port, its CA certificate, what `named` gave: the
    address the references' names resolve to, or "" when the ports 80 and 443 could not be had)."""
    extra = [f"{NAMED_ADDRESS}:80", f"{NAMED_ADDRESS}:443"] if named else []
    process = subprocess.Popen(
        [sys.executable, __file__, str(ca_dir), host, h1_host, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=die_with_parent,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline()
    if line.strip().isdigit():
        return process, int(line), ca_dir / CA_CERT_NAME, NAMED_ADDRESS if named else ""
    process.wait()
    if named:
        print(f"NOTE: the origin could not listen on {NAMED_ADDRESS}:80 and :443 ({process.stderr.read().strip()[-200:]}); "
              "the references get the origin's port in their URLs instead, and E2Guardian cannot intercept TLS")  # fmt: skip
        return start(ca_dir, host, h1_host, named=False)
    raise SystemExit(f"the benchmark origin did not start: {process.stderr.read()}")


if __name__ == "__main__":
    addresses = [(a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in sys.argv[4:]]
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2], sys.argv[3], addresses))
