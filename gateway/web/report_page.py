"""`/report`: where anyone on the school network tells the e-safety officer about a page, and where staff record a
contact attempt through personal social media for the headteacher.

The policy: inappropriate content accessed online "will be reported to the e-safety officer", and a member of staff
whom a pupil or parent tries to "friend" or contact through personal social media "reports it to the headteacher".
"Report this page" is open to every device, like the unblock request form (pupils and guests have no console
account), and knows the reporter the way that form does: from the address the proxy passes. The contact form is
for staff signed in to the console; a pupil cannot file one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from sqlalchemy.orm import Session

from gateway.identity.portal_link import MAX_URL_LENGTH, plain_web_url
from gateway.identity.types import Identity
from gateway.policy.alerts_model import PERSON_CATEGORIES, Alerts
from gateway.store.reports import create_report
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.client_address import client_ip
from gateway.web.roles import Permission, can, require
from gateway.web.throttle import AttemptLimiter
from gateway.web.unblock_form import requester
from gateway.web.unblock_scope import NoPolicy, running_policy

blueprint = Blueprint("report", __name__, url_prefix="/report")

MAX_DETAILS = 2000
MAX_CONTACT_DETAILS = 4000
MAX_NAME = 200
MAX_SERVICE = 100
# Reports one device may send in an hour: a class's worth of honest reports, not enough to bury the queue.
MAX_PER_HOUR = 10
RELATIONS = {"pupil": "A pupil", "parent": "A parent or carer", "former_pupil": "A former pupil",
             "other": "Someone else"}  # fmt: skip
SERVICES = ("Facebook", "Instagram", "Snapchat", "TikTok", "WhatsApp", "X (Twitter)", "YouTube", "Discord",
            "LinkedIn", "E-mail to a personal address", "Text or phone call")  # fmt: skip


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _limiter() -> AttemptLimiter:
    return current_app.extensions.setdefault("gateway.report_limiter", AttemptLimiter(MAX_PER_HOUR, 3600.0))


def _page(template: str, status: int = 200, **values: object):  # type: ignore[no-untyped-def]
    return render_template(f"report/{template}", categories=PERSON_CATEGORIES, relations=RELATIONS,
                           services=SERVICES, may_report_contact=can(Permission.REPORT_CONTACT),
                           **values), status  # fmt: skip


def _refused(message: str, status: int = 400):  # type: ignore[no-untyped-def]
    return _page("message.html", status, title="Report not sent", message=message)


def _person(identity: Identity) -> dict[str, Any]:
    return {"username": identity.username, "display_name": identity.display_name, "group_name": identity.group,
            "school_class": identity.school_class, "year_group": identity.year_group, "device": identity.device,
            "client_ip": identity.client_ip}  # fmt: skip


def _url_problem(url: str) -> str | None:
    if not url:
        return "Type or paste the address of the page."
    if len(url) > MAX_URL_LENGTH:
        return f"That address is too long ({len(url)} characters; at most {MAX_URL_LENGTH}). Copy it again."
    if not plain_web_url(url, request.host):
        return "That is not the address of a web page (it should start with http:// or https://)."
    return None


def _reporter(ip: str, now: datetime) -> tuple[Identity, Alerts]:
    """Who is on `ip`, and the policy's alert settings. A report is never refused because the policy does not load
    (someone may be reporting self-harm): it is filed as from the address, alerting on the usual categories."""
    try:
        compiled = running_policy()
    except NoPolicy:
        return Identity(group="unknown", client_ip=ip), Alerts()
    return requester(ip, compiled, now), compiled.policy.reports.alerts


@blueprint.get("")
def form():  # type: ignore[no-untyped-def]
    ip, now = client_ip(), datetime.now(UTC)
    identity, _ = _reporter(ip, now)
    url = request.args.get("url", "")
    problems = []
    if len(url) > MAX_URL_LENGTH:
        problems.append(f"The address given is too long ({len(url)} characters; at most {MAX_URL_LENGTH}). Paste "
                        "the page's address below.")  # fmt: skip
        url = ""
    typed = {"url": url, "category": request.args.get("category", "")}
    return _page("form.html", identity=identity, typed=typed, problems=problems, contact_problems=[], contact={})


@blueprint.post("")
def submit():  # type: ignore[no-untyped-def]
    ip, now = client_ip(), datetime.now(UTC)
    identity, alerts = _reporter(ip, now)
    url = request.form.get("url", "").strip()
    category = request.form.get("category", "")
    details = request.form.get("details", "").strip()
    url_problem = _url_problem(url)
    problems = [url_problem] if url_problem else []
    if category not in PERSON_CATEGORIES:
        problems.append("Choose what was wrong with the page.")
    if len(details) > MAX_DETAILS:
        problems.append(f"Keep what you write under {MAX_DETAILS} characters.")
    if problems:
        # Nothing typed is lost: the form comes back with it.
        return _page("form.html", 400, identity=identity, problems=problems, contact_problems=[], contact={},
                     typed={"url": url[:MAX_URL_LENGTH], "category": category, "details": details[:MAX_DETAILS]})
    if not _limiter().allow(ip):
        return _refused(f"This device has sent {MAX_PER_HOUR} reports in the last hour. Tell a teacher instead.", 429)
    _limiter().failed(ip)  # counts a report sent, not a failure: the limiter only counts
    signed_in = bool(current_user.is_authenticated)
    reporter = current_user.username if signed_in else identity.username
    role = current_user.role if signed_in else identity.group
    store = _db()
    report = create_report(store, kind="person", queue="officer", url=url, host=urlsplit(url).hostname,
                           category=category, reporter=reporter, reporter_role=role, details=details or None,
                           person=_person(identity), alert=alerts.is_high_risk(category),
                           now=now, site=sites.audit_site())  # fmt: skip
    store.commit()
    audit("report_filed", target=f"report:{report.id}", actor=reporter or f"anonymous at {ip}", role=role,
          detail={"url": url, "category": category, "details": details})  # fmt: skip
    return _page("sent.html", report=report, category_words=PERSON_CATEGORIES[category])


@blueprint.post("/contact")
@require(Permission.REPORT_CONTACT)
def contact():  # type: ignore[no-untyped-def]
    ip, now = client_ip(), datetime.now(UTC)
    typed = {key: request.form.get(key, "").strip() for key in ("name", "relation", "service", "when", "details")}
    problems = []
    if not typed["name"] or len(typed["name"]) > MAX_NAME:
        problems.append(f"Say who tried to contact you (a name, under {MAX_NAME} characters).")
    if typed["relation"] not in RELATIONS:
        problems.append("Say whether they are a pupil, a parent or someone else.")
    if not typed["service"] or len(typed["service"]) > MAX_SERVICE:
        problems.append("Say which service or app they used.")
    happened = _local_moment(typed["when"])
    if happened is None:
        problems.append("Give the date and time it happened.")
    elif happened > now + timedelta(minutes=5):
        problems.append("That time is in the future.")
    if not typed["details"] or len(typed["details"]) > MAX_CONTACT_DETAILS:
        problems.append(f"Say what happened (under {MAX_CONTACT_DETAILS} characters).")
    if problems:
        identity, _ = _reporter(ip, now)
        return _page("form.html", 400, identity=identity, typed={}, problems=[], contact_problems=problems,
                     contact=typed)  # fmt: skip
    store = _db()
    report = create_report(store, kind="contact", queue="headteacher", reporter=current_user.username,
                           reporter_role=current_user.role, service=typed["service"], happened_at=happened,
                           other_party=f"{typed['name']} ({RELATIONS[typed['relation']].lower()})",
                           details=typed["details"],
                           person={"username": current_user.username, "display_name": current_user.display_name,
                                   "client_ip": ip},
                           now=now, site=sites.audit_site())  # fmt: skip
    store.commit()
    audit("report_contact_filed", target=f"report:{report.id}",
          detail={"other_party": report.other_party, "service": typed["service"], "happened_at": happened,
                  "details": typed["details"]})  # fmt: skip
    return _page("contact_sent.html", report=report)


def _local_moment(value: str) -> datetime | None:
    """A `datetime-local` field (the school's time) as an aware UTC instant."""
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=current_app.extensions["gateway.zone"])
    return local.astimezone(UTC)
