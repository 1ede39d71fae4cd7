"""Plain-text e-mail through a configured SMTP server (smtplib), sent after the change it reports is committed.

A message that cannot be sent is reported to the caller, never allowed to undo the decision it describes.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int = 25
    sender: str = "gateway@localhost"

    def send(self, to: str, subject: str, body: str) -> None:
        """Raises OSError or smtplib.SMTPException when the server is unreachable or refuses the message."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS) as smtp:
            smtp.send_message(message)
