"""Signing in and out. argon2 hashes, per-account lock-out, per-address rate limit, every attempt audited."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gateway.store.accounts import authenticate
from gateway.web.audit_trail import audit

blueprint = Blueprint("auth", __name__)

# Per client address: at most this many sign-in attempts in the window, whatever the usernames.
RATE_LIMIT_ATTEMPTS = 10
RATE_LIMIT_WINDOW = 300.0


class AttemptLimiter:
    def __init__(self, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """False once `key` has failed `attempts` times within the window."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen[key]
            while seen and seen[0] < now - self.window:
                seen.popleft()
            if not seen:
                del self._seen[key]
            return len(seen) < self.attempts

    def failed(self, key: str) -> None:
        with self._lock:
            self._seen[key].append(time.monotonic())


def limiter() -> AttemptLimiter:
    from flask import current_app

    return current_app.extensions.setdefault(
        "gateway.sign_in_limiter", AttemptLimiter(RATE_LIMIT_ATTEMPTS, RATE_LIMIT_WINDOW)
    )


class SignInForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=128)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class SignOutForm(FlaskForm):
    pass


@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        username = form.username.data.strip().lower()
        address = request.remote_addr or "?"
        if not limiter().allow(address):
            audit("sign_in_refused", target=f"user:{username}", detail={"why": "rate limit"}, actor=username)
            abort(429)
        store = db()
        user, why = authenticate(store, username, form.password.data, now=datetime.now(UTC))
        store.commit()
        if user is None or why:
            limiter().failed(address)
            audit("sign_in_failed", target=f"user:{username}", detail={"why": why}, actor=username,
                  role=user.role if user else None)  # fmt: skip
            error = "Wrong username or password, or the account is locked. Ask the headteacher if you are stuck."
        else:
            session.clear()
            session.permanent = True
            session["signed_in_at"] = time.time()
            login_user(user)
            audit("sign_in", target=f"user:{user.username}")
            return redirect(url_for("dashboard.home"))
    return render_template("sign_in.html", form=form, error=error), 401 if error else 200


@blueprint.route("/sign-out", methods=["POST"])
def sign_out():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        audit("sign_out", target=f"user:{current_user.username}")
    logout_user()
    session.clear()
    return redirect(url_for("auth.sign_in"))


@blueprint.app_errorhandler(429)
def too_many(_error):  # type: ignore[no-untyped-def]
    message = "Too many sign-in attempts from this computer. Wait a few minutes and try again."
    return render_template("error.html", title="Too many attempts", message=message), 429


def enforce_session_limit(longest: timedelta) -> None:
    """However active, a session ends after `longest`; the idle limit is the signed cookie's own lifetime."""
    if current_user.is_authenticated and time.time() - session.get("signed_in_at", 0) > longest.total_seconds():
        audit("sign_out", target=f"user:{current_user.username}", detail={"why": "session time limit"})
        logout_user()
        session.clear()


def sign_out_form() -> SignOutForm:
    return SignOutForm()
