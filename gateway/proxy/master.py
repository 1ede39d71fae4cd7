"""The gateway's own mitmproxy Master: the built-in addons a gateway needs, then the gateway's parts.

mitmdump runs about thirty built-in addons, and mitmproxy offers every event to every addon; most of them rewrite,
replay, record or print traffic, which a school gateway never does (`LeanProxy` takes some out of mitmdump at run
time, after they have been loaded and configured). This Master never loads them. What it keeps, and why:

- `Core`: the `set` command and the checks of mitmproxy's own options.
- `Block`: refuses clients from public addresses (`block_global`), so a gateway listening on 0.0.0.0 behind a
  mistaken firewall is not an open proxy.
- `StripDnsHttpsRecords`: in DNS mode, strips the records that offer Encrypted Client Hello, which would hide from
  the gateway the server name it decides a TLS connection on.
- `DisableH2C`: refuses cleartext HTTP/2 upgrades, which would otherwise turn a connection into one the gateway
  relays without seeing its requests.
- `Onboarding`: http://mitm.it, where devices fetch the gateway's CA certificate.
- `Proxyserver`, `NextLayer`, `TlsConfig`, `DnsResolver`: the proxy itself (listeners and modes, protocol
  detection, interception certificates, name resolution for DNS and transparent modes).
- `ScriptLoader`, only when scripts are given (`-s`): to add a mitmproxy script in front of the gateway's parts.
- `ErrorCheck`: an error logged while starting stops the process instead of serving with a part half-started
  (the gateway's `StartupGate` also waits for its check to end before letting clients on).
- `TermLog`: the log lines on standard output, at `termlog_verbosity`.

Events go through `IndexedAddonManager` (`proxy/hook_index.py`), which offers each only to the addons with a
hook for it.

Left out besides the rewriting and recording ones: `Dumper` (a line per flow; the access log is the gateway's
record), `KeepServing` and `ReadFileStdin` (reading saved flows), the commands of mitmproxy's interactive tools.
The gateway's parts come where mitmdump runs scripts, after `Proxyserver` and before `NextLayer` and `TlsConfig`:
the tunnel guard lets those two choose first and then judges their choice.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from mitmproxy import ctx, exceptions, hooks, master, options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    dns_resolver,
    errorcheck,
    next_layer,
    onboarding,
    proxyserver,
    script,
    strip_dns_https_records,
    termlog,
    tlsconfig,
)

from gateway.proxy.hook_index import IndexedAddonManager

log = logging.getLogger(__name__)


class GatewayParts:
    """Holds the gateway's parts where mitmdump runs its scripts (mitmproxy offers events to an addon's `addons`)."""

    def __init__(self) -> None:
        self.addons: list[object] = []

    def running(self) -> None:
        # Scripts given with -s have been loaded by now and have declared their options: an option still waiting
        # for its declaration does not exist (a misspelling, or one of the addons this Master leaves out). Logged
        # as an error, it stops the process before it serves (ErrorCheck), as an option refused would.
        if ctx.options.deferred:
            log.error("unknown option(s): %s", ", ".join(sorted(ctx.options.deferred)))


class GatewayMaster(master.Master):
    def __init__(self, opts: options.Options, *, scripts: bool = False) -> None:
        super().__init__(opts)
        # mitmproxy formats every log record a second time for the deprecated `add_log` event, and offers it to
        # every addon; none of this Master's has that hook.
        self._legacy_log_events.uninstall()
        self.options.changed.disconnect(self.addons._configure_all)
        self.addons = IndexedAddonManager(self)
        self._termlog_addon = termlog.TermLog()
        self.parts = GatewayParts()
        self.addons.add(
            self._termlog_addon,
            core.Core(),
            block.Block(),
            strip_dns_https_records.StripDnsHttpsRecords(),
            disable_h2c.DisableH2C(),
            onboarding.Onboarding(),
            proxyserver.Proxyserver(),
            *([script.ScriptLoader()] if scripts else []),
            self.parts,
            dns_resolver.DnsResolver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            errorcheck.ErrorCheck(),
        )

    def add_parts(self, parts: Sequence[object]) -> None:
        """Load and configure the gateway's parts as mitmdump does a script's: once every built-in addon has
        declared its options and the command line has set them, so that a part's first `configure` already sees
        the values it will run with (the access log opens its database there)."""
        for part in parts:
            self.addons.register(part)
        self.parts.addons.extend(parts)
        self.addons.forget()
        for part in parts:
            self.addons.invoke_addon_sync(part, hooks.ConfigureHook(set(self.options.keys())))


def settings(modes: Sequence[str], listen_host: str | None, listen_port: int | None, sets: Sequence[str],
             scripts: Sequence[str]) -> list[str]:  # fmt: skip
    """The command line's choices as mitmproxy `--set` specifications, in the order mitmdump applies them."""
    specs = list(sets)
    specs += [f"mode={mode}" for mode in modes]
    if listen_host is not None:
        specs.append(f"listen_host={listen_host}")
    if listen_port is not None:
        specs.append(f"listen_port={listen_port}")
    specs += [f"scripts={path}" for path in scripts]
    return specs


async def serve(specs: Sequence[str], parts: Callable[[], Sequence[object]], *, scripts: bool) -> None:
    """Run the Master with these `--set` specifications until SIGINT or SIGTERM; an option refused exits with 1."""
    opts = options.Options()
    gateway_master = GatewayMaster(opts, scripts=scripts)
    try:
        # Deferred: the gateway's options exist once its parts are loaded, a script's once mitmproxy has loaded it
        # (after the event loop starts).
        opts.set(*specs, defer=True)
        # Records below the log's verbosity are never made: mitmproxy logs each connection's steps at debug level.
        logging.getLogger().setLevel(opts.termlog_verbosity.upper())
        gateway_master.add_parts(parts())
    except exceptions.OptionsError as e:
        print(f"gateway proxy: {e}", file=sys.stderr)
        sys.exit(1)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # A clean stop: every part's `done` runs, so the access log's queue is written before the process ends.
        loop.add_signal_handler(signum, gateway_master.shutdown)
    # A client that goes away mid-write must not end the process (as in mitmdump).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await gateway_master.run()


def run(specs: Sequence[str], parts: Callable[[], Sequence[object]], *, scripts: bool = False) -> None:
    """`serve` in a new event loop; `parts` makes the addons that follow the built-in ones, inside that loop."""
    asyncio.run(serve(specs, parts, scripts=scripts))
