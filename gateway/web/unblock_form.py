"""The "ask for access" form the block page links to: open to every device (pupils and guests have no console
account), it finds who is asking and why the page is blocked itself, and stores the request for the officer.

Sites no exception may lift (illegal content, lists the policy marks unliftable) cannot be asked for: the form
says so and a post is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, render_template, request
from sqlalchemy.orm import Session

from gateway.decisions.engine import InvalidTarget, decide_target
from gateway.decisions.types import Source
from gateway.identity.directory import load_directory
from gateway.identity.portal_link import plain_web_url
from gateway.identity.resolver import Resolver
from gateway.identity.sessions import live_bindings
from gateway.identity.types import Identity
from gateway.policy.compiled import CompiledPolicy
from gateway.store.request_outcomes import shown_to_requester
from gateway.store.unblock_requests import (AUDIENCES, DURATIONS, EXTENTS, Asked, StaleRequest, add_information,
                                            add_request, asked_since, requests_by)  # fmt: skip
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.client_address import client_ip
from gateway.web.unblock_scope import NoPolicy, hosts_for, running_policy, unliftable
from gateway.web.unblock_token import BadToken, mint, read

blueprint = Blueprint("unblock_form", __name__, url_prefix="/request")

MAX_WHY = 2000
MAX_NAME = 200
# Requests one device may send in an hour: enough for a lesson's needs, not enough to bury the officer's queue.
MAX_PER_HOUR = 10
AUDIENCE_WORDS = {"me": "Just me", "class": "My class", "year": "My year group", "group": "My group",
                  "school": "The whole school"}  # fmt: skip
DURATION_WORDS = {"lesson": "This lesson", "today": "Today", "week": "This week", "term": "This term",
                  "permanent": "Permanently"}  # fmt: skip
EXTENT_WORDS = {"page": "This page", "site": "The whole site"}
NEVER = ("This site can never be unblocked on the school network: it is on a list the school's policy does not "
         "allow anyone to lift. If you think it is wrongly listed, tell a teacher.")  # fmt: skip


def _db() -> Session:
    from gateway.web.app import db

    return db()


def requester(ip: str, compiled: CompiledPolicy, now: datetime) -> Identity:
    """Who the gateway believes is on `ip`, as the proxy resolves it (without DHCP leases, which only it reads)."""
    resolver = Resolver.for_policy(compiled.policy)
    store = _db()
    resolver.directory = load_directory(store)
    resolver.bindings = live_bindings(store)
    return resolver.resolve(ip, now)


def audiences_for(identity: Identity) -> list[str]:
    allowed = ["me"] if identity.username else []
    allowed += ["class"] if identity.school_class else []
    allowed += ["year"] if identity.year_group is not None else []
    return [a for a in AUDIENCES if a in allowed or a in ("group", "school")]


def _page(template: str, status: int = 200, **values: object):  # type: ignore[no-untyped-def]
    return render_template(f"unblock/{template}", audience_words=AUDIENCE_WORDS, duration_words=DURATION_WORDS,
                           extent_words=EXTENT_WORDS, said=shown_to_requester, **values), status  # fmt: skip


def _refused(message: str, status: int = 400):  # type: ignore[no-untyped-def]
    return _page("message.html", status, title="Cannot ask for this page", message=message)


@blueprint.app_errorhandler(NoPolicy)
def no_policy(error: NoPolicy):  # type: ignore[no-untyped-def]
    return _page("message.html", 503, title="Requests are not being taken just now",
                 message=f"The gateway cannot check requests at the moment: {error}. Please try again later.")


@blueprint.get("")
def form():  # type: ignore[no-untyped-def]
    ip, now = client_ip(), datetime.now(UTC)
    compiled = running_policy()
    identity = requester(ip, compiled, now)
    earlier = requests_by(_db(), username=identity.username, client_ip=ip)
    url = request.args.get("url", "")
    if not url:
        return _page("mine.html", identity=identity, earlier=earlier)
    if not plain_web_url(url, request.host):
        return _refused("That is not the address of a web page. Use the link on the blocked page.")
    try:
        decision = decide_target(compiled, identity, url, now)
    except InvalidTarget:
        return _refused("That is not the address of a web page. Use the link on the blocked page.")
    if decision.source is Source.ILLEGAL or unliftable(compiled, hosts_for("page", decision.host)):
        return _refused(NEVER, 403)
    if not decision.blocked:
        return _page("message.html", title="Not blocked for you",
                     message=f"{url} is not blocked for you at the moment. Try the page again.")  # fmt: skip
    claims = {"ip": ip, "username": identity.username, "name": identity.display_name, "group": identity.group,
              "class": identity.school_class, "year": identity.year_group, "url": url, "host": decision.host,
              "rule": decision.rule, "list": decision.list,
              "ref": request.args.get("ref", "")[:64] or None}  # fmt: skip
    return _page("form.html", identity=identity, claims=claims, token=mint(claims), reason=decision.reason,
                 audiences=audiences_for(identity), earlier=earlier, extents=EXTENTS, durations=DURATIONS)  # fmt: skip


@blueprint.post("")
def submit():  # type: ignore[no-untyped-def]
    ip, now = client_ip(), datetime.now(UTC)
    try:
        claims = read(request.form.get("token", ""), ip)
    except BadToken as exc:
        return _refused(str(exc))
    compiled = running_policy()
    if unliftable(compiled, hosts_for("page", claims["host"])):
        return _refused(NEVER, 403)
    if asked_since(_db(), ip, now - timedelta(hours=1)) >= MAX_PER_HOUR:
        return _refused(f"This device has sent {MAX_PER_HOUR} requests in the last hour. Wait a while, or ask a "
                        "teacher.", 429)  # fmt: skip
    why = request.form.get("why", "").strip()
    name = claims["name"] or request.form.get("name", "").strip()
    extent, audience, duration = (request.form.get(k, "") for k in ("extent", "audience", "duration"))
    allowed = audiences_for(Identity(group=claims["group"], username=claims["username"],
                                     school_class=claims["class"], year_group=claims["year"]))  # fmt: skip
    problems = []
    if not why:
        problems.append("Say why you need this page.")
    if len(why) > MAX_WHY:
        problems.append(f"Keep the reason under {MAX_WHY} characters.")
    if not name or len(name) > MAX_NAME:
        problems.append("Type your name, so the e-safety officer knows who is asking.")
    if extent not in EXTENTS or audience not in allowed or duration not in DURATIONS:
        problems.append("Choose what to unblock, for whom and for how long.")
    if problems:
        # Nothing typed is lost: the form comes back with it, and a fresh token.
        return _page("form.html", 400, identity=None, claims=claims, token=mint(claims), reason=None,
                     audiences=allowed, earlier=[], extents=EXTENTS, durations=DURATIONS, problems=problems,
                     typed={"why": why, "name": name, "extent": extent, "audience": audience,
                            "duration": duration})  # fmt: skip
    store = _db()
    row = add_request(store, Asked(
        username=claims["username"], display_name=name, client_ip=ip, group_name=claims["group"],
        school_class=claims["class"], year_group=claims["year"], url=claims["url"], host=claims["host"],
        rule=claims["rule"], list_name=claims["list"], reference=claims["ref"], why=why, extent=extent,
        audience=audience, duration=duration), now, site=sites.console_site())  # fmt: skip
    store.commit()
    audit("unblock_requested", target=f"unblock-request:{row.id}", actor=claims["username"] or f"{name} at {ip}",
          role="requester", detail={"url": row.url, "rule": row.rule, "extent": extent, "audience": audience,
                                    "duration": duration, "why": why})  # fmt: skip
    return _page("sent.html", row=row)


@blueprint.post("/<int:number>/more")
def more_information(number: int):  # type: ignore[no-untyped-def]
    """The requester's answer to the officer's question, from the list of their requests."""
    ip, now = client_ip(), datetime.now(UTC)
    identity = requester(ip, running_policy(), now)
    text = request.form.get("information", "").strip()
    if not text or len(text) > MAX_WHY:
        return _refused(f"Type your answer (under {MAX_WHY} characters).")
    store = _db()
    try:
        row = add_information(store, number, username=identity.username, client_ip=ip, text=text, now=now)
    except StaleRequest:
        store.rollback()
        return _refused("That request is not yours, or is no longer waiting for an answer.", 404)
    store.commit()
    audit("unblock_information_added", target=f"unblock-request:{number}",
          actor=identity.username or f"{row.display_name} at {ip}", role="requester", detail={"text": text})
    return _page("message.html", title="Answer sent",
                 message=f"Your answer is with the e-safety officer (request {number}).")
