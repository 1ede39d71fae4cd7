"""Captive-portal sign-in for the school WiFi: binds the client's address to a person until sign-out, an idle
timeout, or the DHCP lease moving (the proxy ends those; see gateway.identity.live).

Young year groups (the policy's `sign_in.picture_code_year_groups`) may use a class picture code or their QR
card instead of a password. Failed sign-ins are counted in the store, so the limits hold across web-app workers and
restarts: per device (its real address, `client_address`), and per device and name together. A name's failures
from every device only slow each attempt on it a little (`throttle.account_delay`): a pupil guessing a
classmate's picture code on one tablet never stops the classmate signing in on another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from gateway.identity.credentials import PICTURES, PICTURE_CODE_LENGTH, card_token_sha256, picture_code_text, verify_secret
from gateway.identity.sessions import end_sessions, live_session, record_failure, recent_failures, start_session
from gateway.identity.types import IdentitySource
from gateway.store.models.people import PersonRecord
from gateway.web.client_address import client_ip
from gateway.identity.portal_link import plain_web_url, verify
from gateway.web.throttle import slow_down

blueprint = Blueprint("portal", __name__, url_prefix="/portal")

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ADDRESS = 10
MAX_FAILURES_PER_ADDRESS_AND_USER = 5
# How long after a sign-in the proxy may still send the device here; a device sent here later than that signs in.
PROXY_CATCH_UP = timedelta(seconds=30)

_policy_cache: dict[str, tuple[float, frozenset[int]]] = {}


def db():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    return db()


def picture_year_groups() -> frozenset[int]:
    """The year groups the policy lets sign in with pictures or cards (re-read when the policy file changes)."""
    path = current_app.config["GATEWAY"].policy_path
    if not path:
        return frozenset()
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        return frozenset()
    cached = _policy_cache.get(path)
    if cached is None or cached[0] != mtime:
        from gateway.policy.loader import PolicyError, load_policy

        try:
            years = frozenset(load_policy(path).policy.sign_in.picture_code_year_groups)
        except PolicyError:
            current_app.logger.exception("portal: the policy does not load; picture sign-in is off")
            years = frozenset()
        cached = _policy_cache[path] = (mtime, years)
    return cached[1]


@dataclass(frozen=True)
class NextLink:
    """Where to send a device after it signs in, with the proxy's signature carried through the portal's pages."""

    url: str
    sig: str


def next_link() -> NextLink | None:
    """The page the proxy sent this device here from, if the signature proves it (see `portal_link`)."""
    url, sig = request.values.get("next", ""), request.values.get("next_sig", "")
    key = current_app.config.get("GATEWAY_PORTAL_LINK_KEY")
    if not (key and url and sig) or not plain_web_url(url, request.host):
        return None
    return NextLink(url, sig) if verify(key, client_ip(), url, sig, time.time()) else None


def _limited(ip: str, username: str | None) -> str | None:
    now = datetime.now(UTC)
    s = db()
    if recent_failures(s, now=now, window=FAILURE_WINDOW, client_ip=ip) >= MAX_FAILURES_PER_ADDRESS:
        return "Too many failed sign-ins from this device. Please wait 15 minutes or ask a teacher."
    if username and recent_failures(s, now=now, window=FAILURE_WINDOW, client_ip=ip,
                                    username=username) >= MAX_FAILURES_PER_ADDRESS_AND_USER:  # fmt: skip
        return "Too many failed sign-ins for this name on this device. Please wait 15 minutes or ask a teacher."
    if username:
        slow_down(recent_failures(s, now=now, window=FAILURE_WINDOW, username=username))
    return None


def _fail(ip: str, username: str | None) -> None:
    s = db()
    record_failure(s, client_ip=ip, username=username, now=datetime.now(UTC))
    s.commit()


def _person(username: str) -> PersonRecord | None:
    return db().scalar(select(PersonRecord).where(PersonRecord.username == username.strip().lower(),
                                                  PersonRecord.active))


def _sign_in(person: PersonRecord, ip: str, next_url: NextLink | None):  # type: ignore[no-untyped-def]
    s = db()
    start_session(s, client_ip=ip, source=IdentitySource.PORTAL, username=person.username, now=datetime.now(UTC))
    s.commit()
    current_app.logger.info("portal: %s signed in on %s", person.username, ip)
    return render_template("portal/signed_in.html", person=person, next_url=next_url, ip=ip)


def _picture_allowed(person: PersonRecord) -> bool:
    return person.year_group is not None and person.year_group in picture_year_groups()


@blueprint.app_context_processor
def next_link_helpers() -> dict[str, object]:
    return {"next_args": lambda link: {"next": link.url, "next_sig": link.sig} if link else {}}


@blueprint.get("/sign-in")
def sign_in_page():  # type: ignore[no-untyped-def]
    ip = client_ip()
    current = live_session(db(), ip, IdentitySource.PORTAL)
    next_url = next_link()
    if current is not None and next_url and datetime.now(UTC) - current.started_at < PROXY_CATCH_UP:
        # Signed in a moment ago, but the proxy (which reloads sessions every second or so) had not heard yet
        # and sent the pupil back here: try their page again shortly rather than ask them to sign in again.
        return render_template("portal/on_the_way.html", next_url=next_url, current=current)
    return render_template("portal/sign_in.html", next_url=next_url, error=None,
                           current=current, pictures=bool(picture_year_groups()), ip=ip)


@blueprint.post("/sign-in")
def sign_in():  # type: ignore[no-untyped-def]
    ip = client_ip()
    username = request.form.get("username", "").strip().lower()[:128]
    password = request.form.get("password", "")[:1024]
    next_url = next_link()

    def again(message: str, status: int):  # type: ignore[no-untyped-def]
        return render_template("portal/sign_in.html", next_url=next_url, error=message, current=None,
                               pictures=bool(picture_year_groups()), ip=ip, username=username), status

    limited = _limited(ip, username)
    if limited:
        return again(limited, 429)
    person = _person(username) if username else None
    # Verify even for an unknown name so the time taken does not say which names exist.
    if not verify_secret(person.password_hash if person else None, password) or person is None:
        _fail(ip, username or None)
        return again("That username and password do not match. Please try again.", 401)
    return _sign_in(person, ip, next_url)


@blueprint.get("/pictures")
def picture_classes():  # type: ignore[no-untyped-def]
    years = picture_year_groups()
    if not years:
        abort(404)
    classes = db().scalars(
        select(PersonRecord.school_class).where(PersonRecord.active, PersonRecord.year_group.in_(years),
                                                PersonRecord.school_class.is_not(None))
        .distinct().order_by(PersonRecord.school_class)
    ).all()
    return render_template("portal/picture_classes.html", classes=classes,
                           next_url=next_link())


@blueprint.get("/pictures/<school_class>")
def picture_names(school_class: str):  # type: ignore[no-untyped-def]
    years = picture_year_groups()
    pupils = db().scalars(
        select(PersonRecord).where(PersonRecord.active, PersonRecord.school_class == school_class,
                                   PersonRecord.year_group.in_(years), PersonRecord.picture_code_hash.is_not(None))
        .order_by(PersonRecord.display_name)
    ).all() if years else []
    if not pupils:
        abort(404)
    # First name and initial only: the list is shown to anyone on the network.
    names = [(p.username, short_name(p.display_name)) for p in pupils]
    return render_template("portal/picture_names.html", school_class=school_class, names=names,
                           next_url=next_link())


def short_name(display_name: str) -> str:
    parts = display_name.split()
    return f"{parts[0]} {parts[-1][0]}." if len(parts) > 1 else display_name


@blueprint.route("/pictures/pupil/<username>", methods=["GET", "POST"])
def picture_code(username: str):  # type: ignore[no-untyped-def]
    ip = client_ip()
    person = _person(username)
    if person is None or not _picture_allowed(person) or not person.picture_code_hash:
        abort(404)
    next_url = next_link()
    error, status = None, 200
    if request.method == "POST":
        limited = _limited(ip, person.username)
        if limited:
            error, status = limited, 429
        else:
            try:
                # One radio group per position (picture-0 ...): radios sharing a name are one choice in a browser.
                code = picture_code_text([request.form.get(f"picture-{i}", "") for i in range(PICTURE_CODE_LENGTH)])
            except ValueError:
                code = ""
            if code and verify_secret(person.picture_code_hash, code):
                return _sign_in(person, ip, next_url)
            _fail(ip, person.username)
            error, status = "Those pictures are not right. Try again!", 401
    return render_template("portal/picture_code.html", person=person, name=short_name(person.display_name),
                           pictures=PICTURES, length=PICTURE_CODE_LENGTH, next_url=next_url, error=error), status


@blueprint.get("/card/<token>")
def card(token: str):  # type: ignore[no-untyped-def]
    person = db().scalar(select(PersonRecord).where(PersonRecord.card_token_sha256 == card_token_sha256(token),
                                                    PersonRecord.active))
    if person is None or not _picture_allowed(person):
        _fail(client_ip(), None)
        abort(404)
    # Signing in changes state, so it takes a click (a POST with a CSRF token), not just opening the link.
    return render_template("portal/card.html", token=token, name=short_name(person.display_name))


@blueprint.post("/card")
def card_sign_in():  # type: ignore[no-untyped-def]
    ip = client_ip()
    limited = _limited(ip, None)
    if limited:
        return render_template("portal/message.html", title="Please wait", message=limited), 429
    token = request.form.get("token", "")[:200]
    person = db().scalar(select(PersonRecord).where(PersonRecord.card_token_sha256 == card_token_sha256(token),
                                                    PersonRecord.active))
    if person is None or not _picture_allowed(person):
        _fail(ip, None)
        abort(404)
    return _sign_in(person, ip, None)


@blueprint.post("/sign-out")
def sign_out():  # type: ignore[no-untyped-def]
    ip = client_ip()
    s = db()
    end_sessions(s, client_ip=ip, source=IdentitySource.PORTAL, reason="signed_out", now=datetime.now(UTC))
    s.commit()
    return render_template("portal/message.html", title="Signed out",
                           message="You are signed out. Anyone using this device now has to sign in again.")


@blueprint.get("/")
def status():  # type: ignore[no-untyped-def]
    return redirect(url_for("portal.sign_in_page"))
