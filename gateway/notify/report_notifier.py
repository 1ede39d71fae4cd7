"""The thread in the console process that mails high-risk report alerts and circumvention notices within seconds,
and the weekly digest on its day. `gateway reports alerts|digest` run the same passes once, for a school that
prefers cron.

The recipients, categories and times come from the policy file's `reports.alerts` and `circumvention.notices`,
read again when the file changes; a policy that stops loading leaves the last good settings in force.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from gateway.notify.alerts import AlertPass, send_due_alerts
from gateway.notify.digest import send_digest_if_due
from gateway.notify.incident_notices import NoticeSettings, notice_settings, send_incident_notices
from gateway.notify.mail import Mailer
from gateway.policy.alerts_model import Alerts
from gateway.policy.loader import PolicyError, load_policy

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class AlertSettings:
    alerts: Alerts
    zone: ZoneInfo
    notices: NoticeSettings


def alert_settings(policy_path: Path | str) -> AlertSettings:
    """OSError or PolicyError when the policy does not load."""
    policy = load_policy(policy_path).policy
    return AlertSettings(policy.reports.alerts, ZoneInfo(policy.school.timezone), notice_settings(policy))


class ReportNotifier:
    def __init__(self, sessions: Callable[[], Session], mailer: Mailer, policy_path: Path | str, console_url: str,
                 poll_seconds: float = POLL_SECONDS) -> None:  # fmt: skip
        self.sessions = sessions
        self.mailer = mailer
        self.policy_path = Path(policy_path)
        self.console_url = console_url
        self.poll_seconds = poll_seconds
        self._settings: AlertSettings | None = None
        self._stamp: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="report-notifier", daemon=True)

    def start(self) -> ReportNotifier:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def settings(self) -> AlertSettings | None:
        try:
            stamp = self.policy_path.stat().st_mtime
            if stamp != self._stamp:
                self._settings, self._stamp = alert_settings(self.policy_path), stamp
        except (OSError, PolicyError) as exc:
            log.warning("report alerts: the policy does not load, keeping the last good settings: %s",
                        str(exc).splitlines()[0])  # fmt: skip
        return self._settings

    def run_once(self, now: datetime) -> AlertPass:
        settings = self.settings()
        if settings is None:
            return AlertPass()
        self._notify_incidents(settings, now)
        done = send_due_alerts(self.sessions, self.mailer, settings.alerts, self.console_url, settings.zone, now)
        if done.error:
            log.warning("report alerts: %d sent, then the mail server refused: %s (retried shortly)", done.sent,
                        done.error)  # fmt: skip
        elif done.sent or done.skipped:
            log.info("report alerts: %d sent, %d within the dedup window", done.sent, done.skipped)
        try:
            week = send_digest_if_due(self.sessions, self.mailer, settings.alerts, settings.zone, self.console_url,
                                      now)  # fmt: skip
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("report digest: the mail server refused: %s (retried shortly)", exc)
            return done
        if week is not None:
            log.info("report digest for the week from %s sent", week)
        return done

    def _notify_incidents(self, settings: AlertSettings, now: datetime) -> None:
        try:
            done = send_incident_notices(self.sessions, self.mailer, settings.notices, self.console_url,
                                         settings.zone, now)  # fmt: skip
        except Exception:  # the report alerts go on whatever happens here
            log.exception("circumvention notices: pass failed")
            return
        if done.error:
            log.warning("circumvention notices: %d sent, then the mail server refused: %s (retried shortly)",
                        done.sent, done.error)  # fmt: skip
        elif done.sent or done.summarised:
            log.info("circumvention notices: %d sent, %d in a summary", done.sent, done.summarised)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(datetime.now(UTC))
            except Exception:  # a database or mail server away: the next pass tries again
                log.exception("report notifier: pass failed")
            self._stop.wait(self.poll_seconds)
