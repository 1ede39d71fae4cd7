"""A real ``mitmdump`` subprocess for end-to-end tests.

:class:`Mitmdump` runs ``.venv/bin/mitmdump`` (the one next to ``sys.executable``) with the given
``-s`` scripts and ``--set`` options, on port 0 of each listen host, with a fresh temporary
``confdir`` so mitmproxy makes a new gateway CA there on start. It learns the ports from the
``... listening at host:port`` lines and waits for the line :mod:`~tests.support.ready_signal`
(loaded last) logs once every addon is running and mitmproxy's startup error check has passed;
a script that fails to load or start makes mitmdump exit instead, which :meth:`Mitmdump.start`
reports with the output. If asked, it also waits for a further readiness line of your own. (The
ready line is logged at warning level: keep ``termlog_verbosity`` at ``warn`` or chattier.) All output (stdout and stderr, unbuffered) goes to :attr:`Mitmdump.log_path`
for assertions. :meth:`Mitmdump.stop` sends SIGINT, then SIGKILL after a grace period.

Typical use in a test (the ``mitmdump_proxy`` fixture in ``tests/conftest.py`` does this and
cleans up)::

    proxy = Mitmdump(["addons/gateway.py"], {"gateway_policy": "policies/default.yaml"},
                     workdir=tmp_path, origin=origin_https).start()
    got = fetch("https://www.facebook.com/", proxy=proxy.proxy_url, ca=proxy.ca_cert_path,
                source_address="127.0.0.2")
    proxy.wait_for_output(r"blocked .* www\\.facebook\\.com")
    proxy.stop()

Routing: with ``origin=`` an :class:`~tests.support.origins.OriginServer`, the
:mod:`~tests.support.route_to_origin` script is put first among the scripts (it must see requests
before the gateway does) with
``route_to_origin=<origin address>``, and for a TLS origin ``ssl_verify_upstream_trusted_ca`` is
set to the origin's CA, so every upstream connection reaches the origin with verification on.

Several listeners: ``listen_hosts=("127.0.0.1", "127.0.0.2")`` starts one regular-proxy server on
each (``--mode regular@host:0``); :attr:`Mitmdump.addresses` maps host to port. Different devices
are different *source* addresses of the clients, not different listeners: see
:mod:`tests.support.clients` (``source_address=``).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.origins import OriginServer
from tests.support.ports import LOOPBACK

REPO_ROOT = Path(__file__).resolve().parents[2]
MITMDUMP = Path(sys.executable).with_name("mitmdump")
GATEWAY_PROXY = (sys.executable, "-m", "gateway", "proxy")
"""``gateway proxy``, the gateway's own mitmproxy Master: mitmdump's listen, ``-s`` and ``--set`` arguments, with
the gateway's parts built in (so no ``addons/gateway.py`` among the scripts)."""
ROUTE_SCRIPT = Path(__file__).with_name("route_to_origin.py")
READY_SCRIPT = Path(__file__).with_name("ready_signal.py")
READY_LINE = "test harness: mitmdump ready"  # as in ready_signal.py, which mitmproxy loads, not us

_LISTENING = re.compile(r"listening at (?P<addrs>.+?)\.?$", re.MULTILINE)
_ADDRESS = re.compile(r"\[?(?P<host>[^\s\[\]]+?)\]?:(?P<port>\d+)")

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for helper processes: a killed test run must not leave them behind on a shared machine."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class MitmdumpError(RuntimeError):
    """mitmdump did not start (or a wait timed out); the message carries its output."""


def format_option(name: str, value: Any) -> list[str]:
    """``--set`` arguments for one option: booleans as true/false, sequences as repeated ``--set``."""
    if isinstance(value, bool):
        return ["--set", f"{name}={'true' if value else 'false'}"]
    if isinstance(value, (list, tuple)):
        args: list[str] = []
        for item in value:
            args += ["--set", f"{name}={item}"]
        return args
    return ["--set", f"{name}={value}"]


class Mitmdump:
    """One mitmdump process. Construct, then :meth:`start`; or use as a context manager.

    :param scripts: ``-s`` scripts, relative to ``cwd`` (the repo root) or absolute.
    :param options: ``--set`` options; values are formatted by :func:`format_option`.
    :param workdir: where the output file and (unless ``confdir`` is given) the confdir go.
    :param origin: route every upstream connection to this origin (see module docstring), or to a
        ``"host:port"`` of some other plain-HTTP server.
    :param listen_hosts: addresses to listen on, each on a free port.
    :param confdir: reuse a confdir (and so its CA), e.g. across a restart; default a new one.
    :param ready_line: a regular expression that must appear in the output before ``start`` returns,
        for addons that finish loading after mitmproxy's listeners are up.
    :param extra_args: further command-line arguments, placed before the ``--set`` options.
    :param env: extra environment variables for the process.
    :param cwd: working directory (default the repo root, so ``addons/gateway.py`` resolves).
    :param startup_timeout: seconds to wait for readiness.
    :param wait_until_ready: ``False``: :meth:`start` returns as soon as the process is spawned, for tests of
        start-up itself (fix the port with ``extra_args=["--listen-port", str(port)]`` to connect before
        mitmdump reports it).
    :param program: the command to run instead of mitmdump, taking the same arguments (:data:`GATEWAY_PROXY`).
    :param set_confdir: ``False``: no ``--set confdir``, as in the README's bare ``mitmdump -s addons/gateway.py``:
        mitmproxy then uses its default ``~/.mitmproxy`` (``HOME`` is set to ``workdir``, so :attr:`confdir` is
        ``workdir/.mitmproxy``) and makes its certificate store only in its ``running`` hook.
    """

    def __init__(
        self,
        scripts: Sequence[str | os.PathLike[str]] = (),
        options: Mapping[str, Any] | None = None,
        *,
        workdir: Path | None = None,
        origin: OriginServer | str | None = None,
        listen_hosts: Sequence[str] = (LOOPBACK,),
        confdir: Path | None = None,
        ready_line: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        startup_timeout: float = 30.0,
        wait_until_ready: bool = True,
        set_confdir: bool = True,
        program: Sequence[str] = (str(MITMDUMP),),
    ) -> None:
        if not listen_hosts:
            raise ValueError("listen_hosts must name at least one address")
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mitmdump-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.set_confdir = set_confdir
        if set_confdir:
            self.confdir = Path(confdir) if confdir is not None else self.workdir / "confdir"
        else:
            self.confdir = self.workdir / ".mitmproxy"
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "mitmdump.log"
        self.scripts = [str(s) for s in scripts]
        self.options: dict[str, Any] = dict(options or {})
        self.origin = origin
        self.listen_hosts = list(listen_hosts)
        self.ready_line = ready_line
        self.extra_args = list(extra_args)
        self.env = dict(env or {}) if set_confdir else {"HOME": str(self.workdir), **(env or {})}
        self.cwd = Path(cwd)
        self.startup_timeout = startup_timeout
        self.wait_until_ready = wait_until_ready
        self.program = tuple(program)
        self.addresses: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.command = self._command()

    def _command(self) -> list[str]:
        scripts = list(self.scripts)
        options: dict[str, Any] = {"confdir": str(self.confdir)} if self.set_confdir else {}
        if self.origin is not None:
            scripts.insert(0, str(ROUTE_SCRIPT))
            if isinstance(self.origin, str):
                options["route_to_origin"] = self.origin
            else:
                options["route_to_origin"] = self.origin.address
                if self.origin.ca_cert_path is not None:
                    options["ssl_verify_upstream_trusted_ca"] = str(self.origin.ca_cert_path)
            if self.program == GATEWAY_PROXY or any(Path(s).name == "gateway.py" for s in self.scripts):
                # The gateway refuses loopback destinations; the test origin is the one it may reach.
                options["gateway_reachable_internal"] = [options["route_to_origin"]]
        if self.program == GATEWAY_PROXY or any(Path(s).name == "gateway.py" for s in self.scripts):
            # The spool holds machine-wide state (proxy sign-in failures, locks): never the checkout's, which tests
            # running side by side would share.
            options["gateway_spool"] = str(self.workdir / "spool")
        options.update(self.options)

        command = list(self.program)
        if len(self.listen_hosts) == 1:
            command += ["--listen-host", self.listen_hosts[0], "--listen-port", "0"]
        else:
            for host in self.listen_hosts:
                command += ["--mode", f"regular@{host}:0"]
        for script in [*scripts, str(READY_SCRIPT)]:
            command += ["-s", script]
        command += self.extra_args
        for name, value in options.items():
            command += format_option(name, value)
        return command

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "Mitmdump":
        if not Path(self.program[0]).exists():
            raise MitmdumpError(f"{self.program[0]} not found: run scripts/bootstrap")
        # mitmproxy's log handlers filter on PYTEST_CURRENT_TEST when it is set; the child is not a test.
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env.update({"PYTHONUNBUFFERED": "1", **self.env})
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(self.command) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        if not self.wait_until_ready:
            return self
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        wanted = set(self.listen_hosts)
        while True:
            output = self.output()
            for match in _LISTENING.finditer(output):
                for addr in _ADDRESS.finditer(match["addrs"]):
                    self.addresses[addr["host"]] = int(addr["port"])
            listening = wanted <= self.addresses.keys() and READY_LINE in output
            if listening and (self.ready_line is None or re.search(self.ready_line, output, re.MULTILINE)):
                return
            assert self.process is not None
            if self.process.poll() is not None:
                raise MitmdumpError(f"mitmdump exited with {self.process.returncode} during startup:\n{output}")
            if time.monotonic() > deadline:
                missing = (
                    f"listeners on {', '.join(sorted(wanted))} and {READY_LINE!r}"
                    if not listening
                    else f"ready line {self.ready_line!r}"
                )
                raise MitmdumpError(f"mitmdump not ready after {self.startup_timeout}s (waiting for {missing}):\n{output}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (mitmproxy shuts down its addons cleanly), then SIGKILL after ``timeout``. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> "Mitmdump":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- where to connect ----------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The first listen host."""
        return self.listen_hosts[0]

    @property
    def port(self) -> int:
        """The port of the first listen host."""
        return self.addresses[self.host]

    def proxy_url_for(self, host: str) -> str:
        return f"http://{host}:{self.addresses[host]}"

    @property
    def proxy_url(self) -> str:
        """``http://127.0.0.1:<port>``: give this to clients as their proxy."""
        return self.proxy_url_for(self.host)

    @property
    def ca_cert_path(self) -> Path:
        """The gateway CA certificate (PEM) mitmproxy made in the confdir: clients trust this."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    # -- output --------------------------------------------------------------------------------

    def output(self) -> str:
        """Everything mitmdump has printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """The current length of the output; pass as ``after=`` to wait only for newer lines."""
        return len(self.output())

    def wait_for_output(self, pattern: str, *, timeout: float = 10.0, after: int = 0) -> re.Match[str]:
        """Wait until the regular expression ``pattern`` matches the output (from offset ``after``).

        Log lines written from hooks (e.g. the access log after a response) can trail the
        client's response by a moment; assert them with this rather than :meth:`output`.
        """
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            output = self.output()
            match = regex.search(output, after)
            if match:
                return match
            if time.monotonic() > deadline:
                raise MitmdumpError(f"{pattern!r} not in mitmdump output after {timeout}s:\n{output[after:]}")
            time.sleep(0.05)
