#!/usr/bin/env python3
"""Fault runs under steady load, each with a checked count: the database away for a minute, a worker killed with
SIGKILL, a broken policy pushed.

    .venv/bin/python bench/faults.py [--faults db-sqlite,db-postgresql,kill,policy] [--rate 100]
        [--outage 60] [--workers 2] [--postgresql URL] [--no-ut1]

Every request has a path of its own (bench/endurance.py), so after each run the access log is counted by path.

- ``db-sqlite``: the gateway logging to SQLite; another connection holds the file's write lock
  (``BEGIN EXCLUSIVE``) for ``--outage`` seconds, so every write in that time fails with "database is locked".
  Goal: every request answered, every one logged exactly once (the writer spools and replays).
- ``db-postgresql``: the gateway logging to PostgreSQL through a stand-in (tests/support/pg_standin.py, the
  technique of tests/store/test_database_outage_e2e.py) that, for ``--outage`` seconds, takes connections and bytes
  and answers nothing. Same goal. Needs the PostgreSQL server of ``--postgresql``; a fresh database is made there
  and dropped at the end.
- ``kill``: ``--workers`` ``gateway proxy`` workers as ``gateway run --workers N`` runs them (one store, one spool
  folder, one CA, worker i on its own port; started directly so they load tests/support/route_to_origin.py), each
  port under its own load; the last worker is killed with SIGKILL and started again on its port, as ``gateway
  run`` does. Goal: the other workers' requests all answered; of the killed worker's answered requests, none
  lost but those answered in the last second before the kill; nothing logged twice. Requests to the killed
  worker's port between the kill and its restart fail (a browser retries them): they are counted, not judged.
- ``policy``: the gateway's policy file is replaced mid-load by one that does not parse. Goal: no request fails
  and none changes its answer (the old policy keeps running), and the refusal is in the audit trail
  (``audit_event``, action ``policy-rejected``).

Each run prints its counts and a verdict; the script exits 1 when any goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import start_origin  # noqa: E402
from endurance import Tally, check_log, prepare_database, rss_mib, start_gateway, steady_load  # noqa: E402
from store_for_bench import LOCAL_POSTGRESQL, bench_store  # noqa: E402
from throughput import DEFAULT_POLICY, policy_with_ut1  # noqa: E402

from gateway.store.engine import make_engine  # noqa: E402
from gateway.store.models.audit import AuditEvent  # noqa: E402
from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump  # noqa: E402
from tests.support.pg_standin import PgStandIn  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

FAULTS = ("db-sqlite", "db-postgresql", "kill", "policy")
LEAD_IN = 10.0
"""Seconds of load before each fault."""
AFTER = 20.0
"""Seconds of load after it is over (the database back, the worker started again, the policy pushed)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {','.join(FAULTS)}")
    parser.add_argument("--rate", type=float, default=100, help="requests/s of the load, per port (default 100)")
    parser.add_argument("--outage", type=float, default=60, help="seconds the database is away (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="workers in the kill run (default 2)")
    parser.add_argument("--postgresql", default=LOCAL_POSTGRESQL, help=f"PostgreSQL server (default {LOCAL_POSTGRESQL})")
    parser.add_argument(
        "--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
        help="UT1 folder or .tar.gz imported for the demo policy (default ../shared/data/ut1)",
    )  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    args = parser.parse_args(argv)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if unknown := set(args.faults) - set(FAULTS):
        parser.error(f"unknown fault {', '.join(sorted(unknown))}; faults are {', '.join(FAULTS)}")
    if args.workers < 2:
        parser.error("--workers must be at least 2: one is killed, the others carry on")
    return args


async def load_with_fault(loads: list[tuple[int, Tally]], rate: float, fault: Callable[[], None]) -> None:
    """Load on every (port, tally) for LEAD_IN s, then `fault` (blocking, in a thread) while the load goes on, then
    AFTER s more."""
    stop = asyncio.Event()

    async def script() -> None:
        await asyncio.sleep(LEAD_IN)
        await asyncio.to_thread(fault)
        await asyncio.sleep(AFTER)
        stop.set()

    await asyncio.gather(
        *(steady_load(port, tally.run, rate=rate, seconds=10**9, tally=tally, stop=stop) for port, tally in loads),
        script(),
    )  # fmt: skip


def verdict(name: str, checks: dict[str, bool]) -> bool:
    ok = all(checks.values())
    print(f"{name}: " + "; ".join(f"{what}: {'yes' if good else 'NO'}" for what, good in checks.items()))
    return ok


class Run:
    """One fault run's folder, origin and policy."""

    def __init__(self, args: argparse.Namespace, workdir: Path, policy: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.policy = policy
        self.origin, port, self.origin_ca = start_origin(workdir / "origin-ca", "www.bbc.co.uk", "www.gov.uk")
        self.target = f"127.0.0.1:{port}"

    def gateway(self, name: str, db_url: str, policy: Path | None = None) -> Mitmdump:
        prepare_database(db_url)
        return start_gateway(self.workdir / name, self.target, self.origin_ca, db_url, policy or self.policy,
                             extra={"gateway_reachable_internal": self.target})  # fmt: skip

    def close(self) -> None:
        self.origin.kill()
        self.origin.wait()


def database_outage(run: Run, name: str, db_url: str, gateway_db: str, away: Callable[[], None], back: Callable[[], None]) -> bool:
    proxy = run.gateway(name, gateway_db)
    assert proxy.process is not None
    pid = proxy.process.pid
    tally = Tally(f"{name}-{uuid.uuid4().hex[:6]}")
    peak = [rss_mib(pid) or 0.0]

    def outage() -> None:
        peak.append(rss_mib(pid) or 0.0)
        away()
        end = time.monotonic() + run.args.outage
        while time.monotonic() < end:
            time.sleep(1)
            peak.append(rss_mib(pid) or 0.0)
        back()

    try:
        print(f"\n{name}: {run.args.rate:g} requests/s; the database away for {run.args.outage:g} s after {LEAD_IN:g} s")
        asyncio.run(load_with_fault([(proxy.port, tally)], run.args.rate, outage))
        print(f"  load: {tally.summary()}")
        log = check_log(db_url, tally)
        print(f"  access log: {log.summary()} (of {len(tally.answered)} answered)")
        print(f"  proxy RSS: before the outage {peak[1]:.1f} MiB, peak {max(peak):.1f} MiB")
        output = proxy.output()
        print(f"  proxy said: {output.count('access-log database unreachable')}x unreachable, "
              f"{output.count('replayed')}x replayed a spooled batch")  # fmt: skip
    finally:
        proxy.stop()
    return verdict(name, {
        "every request answered": not tally.failed,
        "every one logged exactly once": not log.missing and not log.duplicates,
    })  # fmt: skip


def db_sqlite(run: Run) -> bool:
    db_url = f"sqlite:///{run.workdir / 'db-sqlite.db'}"
    holder: list[sqlite3.Connection] = []

    def away() -> None:
        # isolation_level None: the BEGIN below is ours, held until `back`.
        connection = sqlite3.connect(run.workdir / "db-sqlite.db", isolation_level=None, check_same_thread=False)
        connection.execute("BEGIN EXCLUSIVE")
        holder.append(connection)

    def back() -> None:
        holder.pop().rollback()

    return database_outage(run, "db-sqlite", db_url, db_url, away, back)


def db_postgresql(run: Run) -> bool:
    with bench_store(run.args.postgresql, run.workdir) as db_url:
        prepare_database(db_url)
        url = sa.engine.make_url(db_url)
        with PgStandIn((url.host or "127.0.0.1", url.port or 5432)) as standin:
            return database_outage(run, "db-postgresql", db_url, standin.url_for(db_url), standin.black_hole,
                                   standin.forward)  # fmt: skip


def kill_worker(run: Run) -> bool:
    """`--workers` gateway proxy workers; the last one killed with SIGKILL and started again (see the docstring)."""
    db_url = f"sqlite:///{run.workdir / 'kill.db'}"
    prepare_database(db_url)
    shared = {
        "gateway_db": db_url, "gateway_spool": str(run.workdir / "kill-spool"), "gateway_policy": str(run.policy),
        "ssl_verify_upstream_trusted_ca": str(run.origin_ca), "gateway_reachable_internal": run.target,
    }  # fmt: skip
    ports = [free_port() for _ in range(run.args.workers)]

    def worker(n: int) -> Mitmdump:
        return Mitmdump(
            [], shared | {"gateway_worker": str(n)}, workdir=run.workdir / f"worker-{n}", origin=run.target,
            startup_timeout=180, program=GATEWAY_PROXY, confdir=run.workdir / "ca",
            extra_args=["--listen-port", str(ports[n])],
        ).start()  # fmt: skip

    workers = [worker(n) for n in range(run.args.workers)]
    victim = len(workers) - 1
    tallies = [Tally(f"kill-w{n}-{uuid.uuid4().hex[:6]}") for n in range(len(workers))]
    moments: dict[str, float] = {}

    def kill_and_restart() -> None:
        process = workers[victim].process
        assert process is not None
        moments["kill"] = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait()
        workers[victim] = worker(victim)
        moments["back"] = time.monotonic()

    try:
        print(f"\nkill: {len(workers)} gateway proxy workers, {run.args.rate:g} requests/s on each port; worker "
              f"{victim} killed with SIGKILL after {LEAD_IN:g} s and started again")  # fmt: skip
        asyncio.run(load_with_fault(list(zip(ports, tallies)), run.args.rate, kill_and_restart))
    finally:
        for w in workers:
            w.stop()
    kill, back = moments["kill"], moments["back"]
    print(f"  worker {victim} back {back - kill:.1f} s after the kill")
    others_ok, logged_ok = True, True
    for n, tally in enumerate(tallies):
        print(f"  worker {n} load: {tally.summary()}")
        log = check_log(db_url, tally, wait=60 if n != victim else 30)
        if n != victim:
            others_ok &= not tally.failed
            logged_ok &= not log.missing and not log.duplicates
            print(f"  worker {n} access log: {log.summary()}")
            continue
        # Nothing answers on the killed worker's port between the kill and the restart: an answer that arrived in
        # that time left the old process just before the signal reached it.
        lost = [i for i in log.missing if tally.answered[i][1] < back]
        lost_early = [i for i in lost if tally.answered[i][1] < kill - 1.0]
        after_restart = [i for i in log.missing if tally.answered[i][1] >= back]
        during = [i for i, (_, at) in tally.failed.items() if kill - 1.0 <= at <= back + 1.0]
        logged_ok &= not lost_early and not after_restart and not log.duplicates
        print(f"  worker {n} access log: {log.summary()}: answered before the kill and lost {len(lost)} "
              f"({len(lost_early)} of them more than 1 s before it), answered after the restart and lost "
              f"{len(after_restart)}; failed between the kill and the restart {len(during)}, at other times "
              f"{len(tally.failed) - len(during)}")  # fmt: skip
        others_ok &= len(tally.failed) == len(during)
    return verdict("kill", {
        "the other workers answered every request": others_ok,
        "nothing lost but the killed worker's last second, nothing twice": logged_ok,
    })  # fmt: skip


def broken_policy(run: Run) -> bool:
    folder = run.workdir / "policy-run"
    shutil.copytree(run.policy.parent, folder, symlinks=True)
    policy = folder / run.policy.name
    db_url = f"sqlite:///{run.workdir / 'policy.db'}"
    proxy = run.gateway("policy", db_url, policy)
    tally = Tally(f"policy-{uuid.uuid4().hex[:6]}")
    pushed: list[float] = []

    def push() -> None:
        # What an editor saving half a change might leave: a list never closed.
        policy.write_text(policy.read_text() + "\nrules: [ {name: unfinished\n")
        pushed.append(time.monotonic())

    try:
        print(f"\npolicy: {run.args.rate:g} requests/s; a policy that does not parse pushed after {LEAD_IN:g} s")
        asyncio.run(load_with_fault([(proxy.port, tally)], run.args.rate, push))
        print(f"  load: {tally.summary()}")
        before = {s for s, at in tally.answered.values() if at < pushed[0]}
        after = {s for s, at in tally.answered.values() if at >= pushed[0] + 5}
        print(f"  statuses before the push {sorted(before)}, from 5 s after it {sorted(after)}")
        deadline = time.monotonic() + 30
        while not (refusals := audit_refusals(db_url)) and time.monotonic() < deadline:
            time.sleep(1)
        print(f"  audit trail: {len(refusals)} policy-rejected row(s)" + (f": {refusals[0][:200]}" if refusals else ""))
        log = check_log(db_url, tally)
        print(f"  access log: {log.summary()}")
    finally:
        proxy.stop()
    return verdict("policy", {
        "no request failed": not tally.failed,
        "the old policy kept answering": bool(after) and after == before,
        "the refusal audited": bool(refusals),
        "every request logged exactly once": not log.missing and not log.duplicates,
    })  # fmt: skip


def audit_refusals(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.select(AuditEvent.actor, AuditEvent.detail).where(AuditEvent.action == "policy-rejected"))
            return [f"{actor}: {detail}" for actor, detail in rows]
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    runs = {"db-sqlite": db_sqlite, "db-postgresql": db_postgresql, "kill": kill_worker, "policy": broken_policy}
    results = {}
    run = None
    try:
        policy = DEFAULT_POLICY if args.no_ut1 else policy_with_ut1(args.ut1, workdir)
        run = Run(args, workdir, policy)
        for fault in args.faults:
            results[fault] = runs[fault](run)
    finally:
        if run is not None:
            run.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n" + "; ".join(f"{fault}: {'goal met' if ok else 'GOAL NOT MET'}" for fault, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
