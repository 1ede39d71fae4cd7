"""The console: one Flask app. Every area is a blueprint; adding one is a line in BLUEPRINTS."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, g, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import Session

from gateway.store.engine import DEFAULT_DB_URL, make_engine, require_migrated, session_factory
from gateway.store.models.users import ConsoleUser
from gateway.notify.mail import Mailer
from gateway.web import (api, audit, auth, dashboard, help_page, logs, people, portal, server_sessions, unblock_form,
                         unblock_grants, unblock_review)  # fmt: skip
from gateway.web import impact
from gateway.web import permissions
from gateway.web import my_classes
from gateway.web import windows
from gateway.web import selftest
from gateway.web import report_page
from gateway.web import reports
from gateway.web import bans, incidents
from gateway.web import consent, devices, uploads
from gateway.web import proxy_pac
from gateway.web.params import BadParameter
from gateway.identity.portal_link import load_key
from gateway.web.roles import Permission, can

BLUEPRINTS = [
    auth.blueprint,
    dashboard.blueprint,
    logs.blueprint,
    people.blueprint,
    audit.blueprint,
    help_page.blueprint,
    api.blueprint,
    portal.blueprint,
    impact.blueprint,
    unblock_form.blueprint,
    unblock_review.blueprint,
    unblock_grants.blueprint,
    permissions.blueprint,
    my_classes.blueprint,
    windows.blueprint,
    selftest.blueprint,
    report_page.blueprint,
    reports.blueprint,
    incidents.blueprint,
    bans.blueprint,
    consent.blueprint,
    devices.blueprint,
    uploads.blueprint,
    proxy_pac.blueprint,
]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ConsoleConfig:
    db_url: str = DEFAULT_DB_URL
    # Kept in secret_key_file (created 0600 on first start) when not given, so sessions survive a restart.
    secret_key: str | None = None
    secret_key_file: str = "var/console-secret"
    # Idle time after which a session ends, and the longest a session lasts however busy.
    session_idle: timedelta = timedelta(minutes=30)
    session_max: timedelta = timedelta(hours=10)
    policy_path: str | None = None
    # The key the proxy signs the portal's next= links with (see gateway.identity.portal_link); without it the portal
    # never sends a device on after sign-in.
    portal_link_key_file: str | None = None
    # Cookies are marked Secure on every request that arrived over HTTPS; this marks them Secure always (for a
    # console behind a TLS-terminating server, whose requests reach it as plain HTTP).
    secure_cookies: bool = False
    timezone: str = "Europe/London"
    # The SMTP server unblock requesters are told the outcome through; without a host no e-mail is sent.
    smtp_host: str | None = None
    smtp_port: int = 25
    mail_from: str = "gateway@localhost"
    # The running proxy (`gateway run` gives it), which the filter self-test sends its requests through.
    proxy_url: str | None = None
    testing: bool = False


def _secret_key(config: ConsoleConfig) -> str:
    if config.secret_key:
        return config.secret_key
    path = Path(config.secret_key_file)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, Secure whenever the request came over HTTPS, not only when configured."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def create_app(config: ConsoleConfig | None = None) -> Flask:
    config = config or ConsoleConfig()
    engine = make_engine(config.db_url)
    require_migrated(engine)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(config),
        TESTING=config.testing,
        PERMANENT_SESSION_LIFETIME=config.session_idle,
        SESSION_REFRESH_EACH_REQUEST=True,
        SESSION_COOKIE_NAME="gateway_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=1_000_000,
        GATEWAY=config,
        GATEWAY_PORTAL_LINK_KEY=load_key(Path(config.portal_link_key_file)) if config.portal_link_key_file else None,
        GATEWAY_MAILER=Mailer(config.smtp_host, config.smtp_port, config.mail_from) if config.smtp_host else None,
    )
    app.session_interface = SessionCookies()
    app.extensions["gateway.engine"] = engine
    app.extensions["gateway.sessions"] = session_factory(engine)
    app.extensions["gateway.zone"] = ZoneInfo(config.timezone)

    CSRFProtect(app)
    login = LoginManager(app)
    login.login_view = "auth.sign_in"
    login.login_message = "Please sign in."
    login.session_protection = "strong"

    @login.user_loader
    def load_user(user_id: str) -> ConsoleUser | None:
        # The cookie's user id alone proves nothing after sign-out: the session must still be live on the server.
        user = server_sessions.live_user(db())
        return user if user is not None and user.get_id() == user_id else None

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    @app.before_request
    def session_limits() -> None:
        auth.end_expired_session()

    @app.after_request
    def secure_headers(response):  # type: ignore[no-untyped-def]
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Nothing leaves with a link to another site; the console's own forms carry the Referer that CSRF
        # protection checks on HTTPS (with no-referrer every form posted over HTTPS was refused).
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        if config.secure_cookies or request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        store = g.pop("db", None)
        if store is not None:
            store.close()

    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):  # type: ignore[no-untyped-def]
        return render_template("error.html", title="Form refused", message=error.description), 400

    @app.errorhandler(BadParameter)
    def bad_parameter(error: BadParameter):  # type: ignore[no-untyped-def]
        return refused(str(error))

    @app.errorhandler(400)
    def bad_request(error):  # type: ignore[no-untyped-def]
        return refused(error.description)

    def refused(message: str):  # type: ignore[no-untyped-def]
        if request.blueprint == "api":
            return {"error": message}, 400
        return render_template("error.html", title="Not understood", message=message), 400

    @app.errorhandler(403)
    def forbidden(_error):  # type: ignore[no-untyped-def]
        message = "Your role does not give access to this page. Access to monitoring data is limited by role."
        return render_template("error.html", title="Not allowed", message=message), 403

    @app.errorhandler(404)
    def not_found(_error):  # type: ignore[no-untyped-def]
        return render_template("error.html", title="Not found", message="There is no such page."), 404

    @app.context_processor
    def template_helpers() -> dict[str, object]:
        return {"can": can, "Permission": Permission, "user": current_user, "local": local_time}

    return app


def db() -> Session:
    if "db" not in g:
        from flask import current_app

        g.db = current_app.extensions["gateway.sessions"]()
    return g.db


def local_time(value):  # type: ignore[no-untyped-def]
    """A stored UTC time in the school's zone, as the console shows it."""
    from flask import current_app

    if value is None:
        return ""
    return value.astimezone(current_app.extensions["gateway.zone"]).strftime("%Y-%m-%d %H:%M:%S")
