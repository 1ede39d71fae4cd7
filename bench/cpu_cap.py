"""CPU caps for benchmark processes: a process, with its children, in a CPU cgroup of its own limited to a fraction
of the cores, so that N capped workers have exactly N times one worker's CPU while the load generator and the origin
run on what is left.

cgroup v1 (the ``cpu`` controller's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``) or v2 (``cpu.max``), whichever
the machine mounts with the cpu controller. Making cgroups needs root. Every cgroup made here is named
``<prefix>-<pid of the bench>-<n>``; ``remove`` (also on the way out of a failed or interrupted run) moves anything
still in it back to the parent and removes it, and a later run removes those a killed bench left behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000
"""The kernel's default scheduling period: the quota is F times this."""


class CpuCapError(Exception):
    """No CPU cgroup can be made here."""


@dataclass(frozen=True)
class Hierarchy:
    root: Path
    version: int

    def limit(self, group: Path, cores: float) -> None:
        quota = max(1000, round(cores * PERIOD_US))
        if self.version == 1:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")


def hierarchy() -> Hierarchy:
    """Where the cpu controller is mounted, from /proc/mounts: a v1 ``cpu`` hierarchy first, else v2 with ``cpu``
    among its controllers. Raises CpuCapError when there is neither or it cannot be written."""
    found: Hierarchy | None = None
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, options, *_ = line.split()
        if kind == "cgroup" and "cpu" in options.split(","):
            found = Hierarchy(Path(mount), 1)
            break
        if kind == "cgroup2" and "cpu" in (Path(mount) / "cgroup.controllers").read_text().split():
            found = found or Hierarchy(Path(mount), 2)
    if found is None:
        raise CpuCapError("no cgroup hierarchy with the cpu controller is mounted (cgroup v1 `cpu` or v2 `cpu.max`)")
    if not os.access(found.root, os.W_OK):
        raise CpuCapError(f"cannot make CPU cgroups in {found.root}: run as root")
    if found.version == 2 and "cpu" not in (found.root / "cgroup.subtree_control").read_text().split():
        # v2 gives a child cgroup a controller only when its parent hands it down.
        (found.root / "cgroup.subtree_control").write_text("+cpu")
    return found


class CpuCap:
    """One cgroup capped at ``cores``; ``add`` a process to it."""

    def __init__(self, where: Hierarchy, name: str, cores: float) -> None:
        self.where = where
        self.path = where.root / name
        self.path.mkdir()
        where.limit(self.path, cores)

    def add(self, pid: int) -> None:
        """The process, and every process it has started so far (later ones are born in the cgroup)."""
        for each in [pid, *descendants(pid)]:
            (self.path / "cgroup.procs").write_text(str(each))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def throttled(self) -> tuple[int, int]:
        """(scheduling periods so far, periods in which the cap stopped the cgroup)."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def remove(self) -> None:
        for pid in self.pids():
            try:
                (self.where.root / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass  # it exited meanwhile
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def make_caps(prefix: str, count: int, cores: float) -> list[CpuCap]:
    """``count`` cgroups capped at ``cores`` each, after removing those of benches with this prefix that died
    without removing theirs. Raises CpuCapError."""
    where = hierarchy()
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)-\d+")
    for stale in where.root.glob(f"{prefix}-*"):
        match = pattern.fullmatch(stale.name)
        if match and not Path(f"/proc/{match[1]}").exists():
            try:
                stale.rmdir()
            except OSError:
                pass  # something still runs in it: left as it is
    caps: list[CpuCap] = []
    try:
        for n in range(count):
            caps.append(CpuCap(where, f"{prefix}-{os.getpid()}-{n}", cores))
    except OSError as e:
        for cap in caps:
            cap.remove()
        raise CpuCapError(f"cannot make a CPU cgroup in {where.root}: {e}") from e
    return caps
