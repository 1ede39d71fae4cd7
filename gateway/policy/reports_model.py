"""The `reports:` section: where the e-safety officer's one-click blocks go, and who is alerted about reports."""

from __future__ import annotations

from gateway.policy.alerts_model import Alerts
from gateway.policy.model_base import Name, Strict


class Reports(Strict):
    # The list a one-click block from a report adds its site or URL to, in every running proxy, on top of the
    # list's files. A rule must block that list; unset, the console offers no one-click block and says why.
    block_list: Name | None = None
    # Who is mailed about reports, which categories at once, and when the weekly digest goes.
    alerts: Alerts = Alerts()
