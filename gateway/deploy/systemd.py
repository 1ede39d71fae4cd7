"""systemd units for a gateway machine (pure: the commands in, unit files out).

Four units and a timer: `prepare` (once per boot, before the others: folders, database migration, the keys proxy and
console share), the proxy, the console, and a daily maintenance run (the retention purge, once per machine rather
than once per proxy process). The services run as an unprivileged user, with the file system read-only but for the
gateway's own folder, no new privileges and no capabilities: transparent mode reads a redirected connection's
destination with a plain getsockopt, and the ports are above 1024, so nothing needs CAP_NET_ADMIN. Only loading and
flushing the nftables rules needs it, and those two lines run as root (systemd's `+` prefix).

With proxy workers (`gateway deploy systemd --workers N`) there is a proxy unit per worker,
`school-gateway-proxy-0.service` ... `-N-1`, each on its own ports and restarted on its own. Every one loads the
(same) ruleset as it starts and empties the fail-open sets as it stops: while any worker is down, fail-open networks
go around the proxies (they fail open) and pupils' devices hashed to it are refused (they fail closed), until it is
back and has loaded the ruleset again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "school-gateway"
PREPARE = f"{PREFIX}-prepare.service"
PROXY = f"{PREFIX}-proxy.service"


def worker_unit(n: int) -> str:
    return f"{PREFIX}-proxy-{n}.service"


CONSOLE = f"{PREFIX}-console.service"
MAINTENANCE = f"{PREFIX}-maintenance.service"
MAINTENANCE_TIMER = f"{PREFIX}-maintenance.timer"


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the units run and as whom; every path absolute."""

    user: str
    var: Path
    checkout: Path
    prepare: list[str]
    proxy: list[str]
    console: list[str]
    maintenance: list[str]
    # The ruleset the proxy loads as it starts, and the commands (nft arguments) that undo its fail-open part.
    nftables: Path | None = None
    nft_stop: Sequence[Sequence[str]] = ()
    nft_binary: str = "/usr/sbin/nft"
    # SMTP and other settings the console and maintenance read (GATEWAY_SMTP_HOST...); optional.
    environment_file: str = "/etc/school-gateway/environment"
    # With proxy workers, each one's command (a unit each, instead of the one `proxy` unit).
    workers: Sequence[list[str]] = ()


def unit_files(deployment: Deployment) -> dict[str, str]:
    """File name to text, in the order they are written."""
    d = deployment
    hardened = _hardening(d)
    proxy_nft = []
    if d.nftables is not None:
        proxy_nft = [
            "# Transparent redirect on (as root: the one step that needs CAP_NET_ADMIN), and, when the proxy stops,",
            "# off for the fail-open networks only: pupils stay redirected to the stopped proxy, so they fail closed",
            "# (`-`: a table already gone is no failure).",
            f"ExecStartPost=+{command_line([d.nft_binary, '-f', str(d.nftables)])}",
            *(f"ExecStopPost=-+{command_line([d.nft_binary, *args])}" for args in d.nft_stop),
        ]
    return {
        PREPARE: _unit(
            "School web gateway: folders, database migration and shared keys",
            ["Wants=network-online.target", "After=network-online.target"],
            [
                "Type=oneshot",
                "RemainAfterExit=yes",
                # The one folder the services may write, made (as root) for the user they run as.
                f"ExecStartPre=+{command_line(['/usr/bin/install', '-d', '-o', d.user, '-g', d.user, '-m', '0750', str(d.var)])}",
                f"ExecStart={command_line(d.prepare)}",
                *hardened,
            ],
        ),
        **{
            name: _unit(
                f"School web gateway: the filtering proxy (transparent mode){title}",
                [f"Requires={PREPARE}", f"After={PREPARE} network-online.target", "Wants=network-online.target"],
                [
                    "Type=exec",
                    f"ExecStart={command_line(command)}",
                    *proxy_nft,
                    # SIGINT is mitmproxy's clean stop: the access-log queue is flushed before it exits.
                    "KillSignal=SIGINT",
                    "TimeoutStopSec=30",
                    "Restart=on-failure",
                    "RestartSec=2",
                    *hardened,
                ],
                install=True,
            )
            for name, title, command in _proxies(d)
        },
        CONSOLE: _unit(
            "School web gateway: console and sign-in portal",
            [f"Requires={PREPARE}", f"After={PREPARE} network-online.target", "Wants=network-online.target"],
            [
                "Type=exec",
                f"EnvironmentFile=-{d.environment_file}",
                f"ExecStart={command_line(d.console)}",
                "Restart=on-failure",
                "RestartSec=2",
                *hardened,
            ],
            install=True,
        ),
        MAINTENANCE: _unit(
            "School web gateway: daily maintenance (access-log retention purge)",
            [f"Requires={PREPARE}", f"After={PREPARE}"],
            ["Type=oneshot", f"EnvironmentFile=-{d.environment_file}", f"ExecStart={command_line(d.maintenance)}",
             *hardened],  # fmt: skip
        ),
        MAINTENANCE_TIMER: "\n".join([
            "[Unit]",
            "Description=School web gateway: daily maintenance",
            "",
            "[Timer]",
            "OnCalendar=*-*-* 03:15:00",
            # A machine that was off at 03:15 runs it at the next boot.
            "Persistent=true",
            "RandomizedDelaySec=10min",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]),  # fmt: skip
    }


def _proxies(d: Deployment) -> list[tuple[str, str, Sequence[str]]]:
    """(unit file, title suffix, command) of each proxy process."""
    if not d.workers:
        return [(PROXY, "", d.proxy)]
    return [(worker_unit(n), f", worker {n}", command) for n, command in enumerate(d.workers)]


def command_line(args: Sequence[str]) -> str:
    """An ExecStart= value: each argument quoted where systemd would split or expand it."""
    return " ".join(_quote(arg) for arg in args)


def _quote(arg: str) -> str:
    # systemd expands % specifiers and $VARIABLES in command lines; doubled, they are literal.
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t\n\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _hardening(d: Deployment) -> list[str]:
    return [
        f"User={d.user}",
        f"Group={d.user}",
        f"WorkingDirectory={d.checkout}",
        f"Environment={_quote(f'PYTHONPATH={d.checkout}')}",
        "UMask=0077",
        "NoNewPrivileges=yes",
        # No capabilities at all (the ports are above 1024; see the module's note on CAP_NET_ADMIN).
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        # `-`: the folder may not exist yet when the prepare unit's namespace is set up; it makes it.
        f"ReadWritePaths=-{_quote(str(d.var))}",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
    ]


def _unit(description: str, unit: list[str], service: list[str], *, install: bool = False) -> str:
    lines = ["[Unit]", f"Description={description}", *unit, "", "[Service]", *service, ""]
    if install:
        lines += ["[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)
