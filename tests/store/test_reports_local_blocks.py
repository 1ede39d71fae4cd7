"""One-click local blocks: the store's rows and counter, and the overlay every proxy lays over its policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from gateway.decisions.engine import decide, decide_target
from gateway.decisions.types import Action, Source
from gateway.identity.types import Identity
from gateway.policy.loader import PolicyError
from gateway.policy.compiled import load_compiled
from gateway.policy.local_blocks import LocalEntry, with_local_blocks
from gateway.store.engine import make_engine
from gateway.store.local_blocks import (LOCAL_BLOCKS, BlockRefused, block_site, blocks_in_force, entries_in_force,
                                        remove_block)  # fmt: skip
from gateway.store.models.reports import Report
from gateway.store.reports import create_report
from gateway.store.versions import versions
from tests.store.databases import db_url, pg_schema_url  # noqa: F401
from tests.support.policies import compile_demo, write_policy

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
PUPIL = Identity(group="pupil", client_ip="10.10.0.5", username="amy")
STAFF = Identity(group="staff", client_ip="10.20.0.5", username="mr.jones")


@pytest.fixture(scope="module")
def demo():
    return compile_demo()


def test_a_whole_site_block_covers_every_spelling_and_subdomain_for_everyone(demo):
    blocked = with_local_blocks(demo, [LocalEntry("www.Forum.Example.")])
    for target in ("http://forum.example/", "https://WWW.FORUM.EXAMPLE./x", "https://chat.forum.example/",
                   "forum.example:443"):  # fmt: skip
        for who in (PUPIL, STAFF):
            decision = decide_target(blocked, who, target, NOW)
            assert (decision.action, decision.source, decision.rule, decision.list) == (
                Action.BLOCK, Source.RULE, "local-blocks", "local_blocks"), target
            assert decision.reason == "The e-safety officer blocked this site after a report."
    # Not a look-alike, and nothing else moved.
    assert decide_target(blocked, PUPIL, "https://notforum.example/", NOW).action is Action.ALLOW
    assert decide_target(blocked, PUPIL, "https://www.bbc.co.uk/bitesize", NOW).action is Action.ALLOW
    assert decide_target(blocked, STAFF, "https://www.facebook.com/", NOW).list == "social_media_named"
    assert decide_target(demo, PUPIL, "https://forum.example/", NOW).action is Action.ALLOW


def test_a_url_block_covers_that_page_and_below_only(demo):
    blocked = with_local_blocks(demo, [LocalEntry("www.video.example", "/watch?v=abc")])
    assert decide(blocked, PUPIL, "video.example", "/WATCH?v=abc&t=3", NOW).action is Action.BLOCK
    assert decide(blocked, PUPIL, "m.video.example", "/watch?v=abc", NOW).action is Action.BLOCK
    assert decide(blocked, PUPIL, "video.example", "/watch?v=other", NOW).action is Action.ALLOW
    assert decide(blocked, PUPIL, "video.example", "/", NOW).action is Action.ALLOW


def test_blocks_are_not_applied_without_a_block_list(tmp_path):
    bare = load_compiled(write_policy(tmp_path, "lists: {}\n"))
    assert with_local_blocks(bare, [LocalEntry("forum.example")]) is bare


@pytest.mark.parametrize(("extra", "message"), [
    ("reports: {block_list: nowhere}\n", "reports.block_list.*unknown list 'nowhere'"),
    ("lists: {mine: {domains: [a.example]}}\nreports: {block_list: mine}\n", "no rule blocks the list 'mine'"),
])  # fmt: skip
def test_the_block_list_must_be_a_list_a_rule_blocks(tmp_path, extra, message):
    with pytest.raises(PolicyError, match=message):
        load_compiled(write_policy(tmp_path, extra))


def test_block_from_a_report_then_lift_it_moves_the_counter(db_url):
    engine = make_engine(db_url)
    with Session(engine) as session:
        report = create_report(session, kind="person", queue="officer", url="https://WWW.Forum.example/t/1?x=1",
                               host="www.forum.example", now=NOW)  # fmt: skip
        session.commit()
        with pytest.raises(BlockRefused, match="reason"):
            block_site(session, report.id, by="officer", scope="site", reason=" ", now=NOW)
        session.rollback()
        block = block_site(session, report.id, by="officer", scope="site", reason="self-harm forum", now=NOW)
        with pytest.raises(BlockRefused, match="already decided"):
            block_site(session, report.id, by="officer", scope="site", reason="twice", now=NOW)
        second = create_report(session, kind="person", queue="officer", url="https://WWW.Forum.example/t/1?x=1",
                               now=NOW)  # fmt: skip
        page = block_site(session, second.id, by="officer", scope="url", reason="that thread", now=NOW)
        third = create_report(session, kind="person", queue="officer", url="https://forum.example/", now=NOW)
        assert block_site(session, third.id, by="officer", scope="site", reason="again", now=NOW).id == block.id
        session.commit()
        assert entries_in_force(session) == (LocalEntry("forum.example"), LocalEntry("forum.example", "/t/1?x=1"))
        stored = session.get(Report, report.id)
        assert stored is not None and (stored.status, stored.decided_by) == ("blocked", "officer")
        assert versions(session, [LOCAL_BLOCKS]) == {LOCAL_BLOCKS: 2}
        remove_block(session, page.id, by="officer", reason="thread deleted", now=NOW)
        session.commit()
        assert [b.id for b in blocks_in_force(session)] == [block.id]
        assert versions(session, [LOCAL_BLOCKS]) == {LOCAL_BLOCKS: 3}
        with pytest.raises(BlockRefused, match="no block"):
            remove_block(session, page.id, by="officer", reason="again", now=NOW)
        ip = create_report(session, kind="person", queue="officer", url="http://10.0.0.1/", now=NOW)
        with pytest.raises(BlockRefused, match="address"):
            block_site(session, ip.id, by="officer", scope="site", reason="x", now=NOW)
    engine.dispose()
