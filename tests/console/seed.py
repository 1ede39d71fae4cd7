"""A migrated console database with staff accounts and a morning of access-log rows, hostile ones included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.writer import AccessLogWriter

PASSWORD = "correct horse battery"
ROLES = ["officer", "headteacher", "dpo", "teacher", "it"]
HOSTILE_PATH = "/<script>alert('xss')</script>"

AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy", display_name="Amy Pupil", school_class="5B",
               year_group=5, device="ipad-07")  # fmt: skip
BEN = Identity(group="pupils", client_ip="10.1.2.4", username="ben", display_name="Ben Pupil", school_class="6A",
               year_group=6, device="ipad-08")  # fmt: skip


def seed(tmp_path: Path, *, now: datetime | None = None) -> str:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        for role in ROLES:
            create_user(session, role, f"{role.title()} Staff", role, PASSWORD)
    engine.dispose()
    now = now or datetime.now(UTC)
    writer = AccessLogWriter(url, tmp_path / "spool").start()
    entries = [
        (AMY, Action.BLOCK, "www.tiktok.com", "/@someone", "", "social"),
        (AMY, Action.ALLOW, "www.bbc.co.uk", "/bitesize", "", None),
        (AMY, Action.FLAG, "www.google.co.uk", "/search", "q=how+to+bypass+school+filter", "search-watch"),
        (AMY, Action.BLOCK, "evil.example", HOSTILE_PATH, "", "malware"),
        (BEN, Action.BLOCK, "www.roblox.com", "/games", "", "games"),
        (BEN, Action.ALLOW, "www.bbc.co.uk", "/news", "", None),
    ]
    for n, (who, action, host, path, query, list_name) in enumerate(entries):
        decision = Decision(action, Source.RULE, "test", PeriodKind.LESSON, host, rule=f"rule-{list_name or 'ok'}",
                            list=list_name)  # fmt: skip
        writer.submit(access_row(identity=who, decision=decision, instant=now - timedelta(minutes=30 - n),
                                 method="GET", scheme="https", host=host, path=path, query=query,
                                 status=403 if action is Action.BLOCK else 200, size=1000, keep_query=False,
                                 site="St Mary's"))  # fmt: skip
    writer.close()
    return url
