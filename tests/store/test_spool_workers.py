"""Proxy workers sharing one spool folder (`gateway run --workers N`), as real processes: the database away and
back, a worker killed while its rows wait on disk; every row delivered exactly once, by whoever is left; and the
daily purge run by one worker on the machine, taken over when that worker stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from gateway.store.audit import audit_values
from gateway.store.audit_outbox import AuditOutbox
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.audit import AuditEvent
from gateway.store.spool import Spool
from gateway.store.writer import AccessLogWriter
from tests.store.databases import TcpRelay, pg_schema_url  # noqa: F401
from tests.store.test_store_log import row, row_ids

ROOT = Path(__file__).resolve().parents[2]

# A proxy worker's access-log writer: submits `count` rows, says so once every one is spooled or written, and
# closes when told (a line on stdin), or dies when killed.
WRITER = """
import sys, time
from gateway.store.writer import AccessLogWriter
from tests.store.test_store_log import row
url, spool, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
writer = AccessLogWriter(url, spool, batch_size=20, interval=0.05, retry_interval=0.2).start()
for n in range(count):
    r = row(n)
    r["row_id"] = f"{name}-{n:05d}"
    writer.submit(r)
while writer.spooled + writer.written < count:
    time.sleep(0.02)
print("owner", writer.spool.owner, writer.spooled, writer.written, flush=True)
sys.stdin.readline()
writer.close()
print("closed", writer.written, flush=True)
"""

# A proxy worker's audit outbox: keeps `count` rows on disk (the database is not tried) and exits.
AUDIT_KEEPER = """
import sys
from gateway.store.audit import audit_values
from gateway.store.audit_outbox import AuditOutbox
url, spool, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
outbox = AuditOutbox(url, spool)
for n in range(count):
    outbox.keep(audit_values("gateway:worker-9", "policy-loaded", target="policy", detail={"n": n}))
"""

# A proxy worker's outbox delivering what is on disk, started with others at the same moment (the file `go`).
AUDIT_FLUSHER = """
import os, sys, time
from gateway.store.audit_outbox import AuditOutbox
url, spool, go = sys.argv[1], sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.005)
print(AuditOutbox(url, spool).flush(), flush=True)
"""


def python(code: str, *args: object, **kwargs) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)  # fmt: skip


def read_line(child: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert child.stdout is not None
    lines: list[str] = []
    stream = child.stdout
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines and lines[0], f"no line from the worker in {timeout} s (exit status {child.poll()})"
    return lines[0].strip()


def test_workers_sharing_a_spool_deliver_every_row_once_though_one_was_killed(pg_schema_url, tmp_path):  # noqa: F811
    _, url = pg_schema_url
    upgrade(url)
    relay = TcpRelay(("127.0.0.1", 5432))
    relayed = url.replace(":5432/", f":{relay.port}/")
    spool = tmp_path / "spool"
    # The database is away: both workers spool every row, into one folder.
    a = python(WRITER, relayed, spool, "a", 300, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    b = python(WRITER, relayed, spool, "b", 300, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        owner_a, spooled_a = read_line(a).split()[1:3]
        assert read_line(b).split()[2] == "300"
        assert spooled_a == "300"
        # Worker a dies with its rows on disk and a batch half-written.
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        (spool / f"{9999:016d}.{owner_a}.tmp").write_text('{"row_id": "torn')
        relay.up()
        # The worker left delivers its own rows and, within seconds, the dead one's.
        deadline = time.monotonic() + 60
        while len(row_ids(url)) < 600 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b.stdin is not None
        b.stdin.write("close\n")
        b.stdin.flush()
        assert read_line(b).startswith("closed")
    finally:
        for child in (a, b):
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
        relay.down()
    ids = row_ids(url)
    assert len(ids) == len(set(ids)) == 600, "every row of both workers, each once"
    assert {i.split("-")[0] for i in ids} == {"a", "b"}
    # b's own rows in the order it queued them; the dead worker's in its order too.
    for name in ("a", "b"):
        mine = [i for i in ids if i.startswith(name)]
        assert mine == sorted(mine)
    assert sorted(p.name for p in spool.iterdir() if p.suffix in (".jsonl", ".tmp")) == []
    assert not (spool / f"{owner_a}.owner").exists(), "the dead worker's lock file is cleared with its batches"


def test_two_workers_adopting_a_dead_workers_audit_rows_deliver_each_once(store_url, tmp_path):
    spool = tmp_path / "audit"
    keeper = python(AUDIT_KEEPER, store_url, spool, 40)
    assert keeper.wait(timeout=60) == 0
    assert len(list(spool.glob("*.jsonl"))) == 40
    go = tmp_path / "go"
    flushers = [python(AUDIT_FLUSHER, store_url, spool, go, stdout=subprocess.PIPE) for _ in range(3)]
    time.sleep(1.0)  # every flusher has imported and is waiting for the start
    go.touch()
    delivered = [int(f.communicate(timeout=60)[0].strip()) for f in flushers]
    assert sum(delivered) == 40, delivered
    engine = make_engine(store_url)
    with engine.connect() as c:
        details = [json.loads(d)["n"] for d in c.scalars(sa.select(AuditEvent.detail))]
    engine.dispose()
    assert sorted(details) == list(range(40)), "each row once"
    assert list(spool.glob("*.jsonl")) == []


def test_a_live_workers_batches_are_left_to_it(store_url, tmp_path):
    """Another worker does not take rows a live worker spooled (it would race that worker's own replay)."""
    spool = tmp_path / "spool"
    live = python(WRITER, "sqlite:////nonexistent/folder/gateway.db", spool, "live", 50,
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        owner = read_line(live).split()[1]
        other = Spool(spool)
        assert other.adopt() == 0 and other.pending() == []
        assert len([p for p in spool.glob(f"*.{owner}.jsonl")]) > 0
    finally:
        live.kill()
        live.wait(timeout=10)
    # Once it is dead they are anyone's.
    writer = AccessLogWriter(store_url, spool, interval=0.05).start()
    writer.close()
    assert len(set(row_ids(store_url))) == 50


def test_the_daily_purge_runs_in_one_writer_per_spool_folder_and_moves_when_it_stops(store_url, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    import gateway.store.writer as writer_module

    monkeypatch.setattr(writer_module, "PURGE_TURN_INTERVAL", 0.1)
    first = AccessLogWriter(store_url, tmp_path / "spool", interval=0.05, retention_days=90).start()
    second = AccessLogWriter(store_url, tmp_path / "spool", interval=0.05, retention_days=90).start()
    try:
        assert first.purge is not None and second.purge is None
        time.sleep(0.5)
        assert second.purge is None, "the other writer keeps trying but does not purge while the first runs"
        first.close()
        deadline = time.monotonic() + 10
        while second.purge is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.purge is not None, "the purge moves to the writer left"
        while second.purge.purges == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.purge.purges == 1
    finally:
        first.close()
        second.close()


def test_a_spool_of_batches_from_before_owners_is_delivered(store_url, tmp_path):
    """Batches an older gateway left (`<number>.jsonl`) are adopted like a dead worker's."""
    spool = tmp_path / "spool"
    spool.mkdir()
    old = [row(n) for n in range(5)]
    with open(spool / f"{1:016d}.jsonl", "w") as f:
        for r in old:
            f.write(json.dumps({**r, "at": {"$dt": r["at"].isoformat()}}) + "\n")
    (spool / f"{2:016d}.tmp").write_text("torn")
    AccessLogWriter(store_url, spool, interval=0.05).start().close()
    assert row_ids(store_url) == [r["row_id"] for r in old]
    assert [p.name for p in spool.iterdir() if p.suffix in (".jsonl", ".tmp")] == []


def test_an_audit_row_kept_by_a_worker_is_not_delivered_by_another_while_it_lives(store_url, tmp_path):
    outbox = AuditOutbox(store_url, tmp_path / "audit")
    outbox.keep(audit_values("gateway:worker-0", "policy-loaded", target="policy", detail={}))
    flushed = python(AUDIT_FLUSHER, store_url, tmp_path / "audit", tmp_path, stdout=subprocess.PIPE)
    assert flushed.communicate(timeout=60)[0].strip() == "0"
    assert outbox.flush() == 1
