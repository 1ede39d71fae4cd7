"""Signing in and out: argon2 hashes, sessions held on the server, throttling by device, every attempt audited."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, redirect, render_template, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gateway.store.accounts import authenticate, failures_in_a_row
from gateway.web import server_sessions
from gateway.web.audit_trail import audit
from gateway.web.client_address import client_ip
from gateway.web.throttle import slow_down, throttle

blueprint = Blueprint("auth", __name__)

WRONG = "Wrong username or password. Ask the headteacher if you are stuck."
ACCOUNT_THROTTLED = ("Too many wrong passwords for this account from this computer. Wait 15 minutes, or sign in "
                     "from another computer.")  # fmt: skip


class SignInForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=128)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class SignOutForm(FlaskForm):
    pass


def check_password(username: str, password: str, via: str | None = None):  # type: ignore[no-untyped-def]
    """The account if the password is right and this device may try; aborts 429 when it may not.

    Shared by the sign-in page and the API's HTTP Basic, so both count against the same limits."""
    from gateway.web.app import db

    address = client_ip()
    refused = throttle().refusal(address, username)
    if refused:
        audit("sign_in_refused", target=f"user:{username}", actor=username,
              detail={"why": f"too many failures from this {refused}"} | ({"via": via} if via else {}))  # fmt: skip
        abort(429, description=ACCOUNT_THROTTLED if refused == "account" else None)
    store = db()
    slow_down(failures_in_a_row(store, username))
    user, why = authenticate(store, username, password, now=datetime.now(UTC))
    store.commit()
    if user is None or why:
        throttle().failed(address, username)
        audit("sign_in_failed", target=f"user:{username}", actor=username, role=user.role if user else None,
              detail={"why": why} | ({"via": via} if via else {}))  # fmt: skip
        return None
    return user


@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        user = check_password(form.username.data.strip().lower(), form.password.data)
        if user is None:
            error = WRONG
        else:
            session.clear()
            session.permanent = True
            server_sessions.start(db(), user)
            login_user(user)
            audit("sign_in", target=f"user:{user.username}")
            return redirect(url_for("dashboard.home"))
    return render_template("sign_in.html", form=form, error=error), 401 if error else 200


@blueprint.route("/sign-out", methods=["POST"])
def sign_out():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    if current_user.is_authenticated:
        audit("sign_out", target=f"user:{current_user.username}")
    server_sessions.end_current(db())
    logout_user()
    session.clear()
    return redirect(url_for("auth.sign_in"))


@blueprint.app_errorhandler(429)
def too_many(error):  # type: ignore[no-untyped-def]
    message = (error.description if error.description and error.description != type(error).description
               else "Too many sign-in attempts from this computer. Wait a few minutes and try again.")  # fmt: skip
    return render_template("error.html", title="Too many attempts", message=message), 429


def end_expired_session() -> None:
    """Before every request: a session idle or older than the limits ends, on the server and in the cookie."""
    from gateway.web.app import db

    ended = server_sessions.end_if_expired(db())
    if ended is not None:
        user, why = ended
        session.clear()
        audit("sign_out", target=f"user:{user.username}", detail={"why": why}, actor=user.username, role=user.role)
