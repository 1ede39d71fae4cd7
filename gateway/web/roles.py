"""Who may do what in the console.

DfE: access to monitoring logs is limited by role and is itself logged. The officer (designated safeguarding lead)
reviews the log; the headteacher owns the policy and oversees; the DPO answers subject-access requests and checks
the log is used lawfully. Teachers and IT have no access to individuals' browsing: IT maintains the system and sees
only aggregate figures (to spot over-blocking). Pupils and guests have no console account at all.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort
from flask_login import current_user

from gateway.store.models.users import Role


class Permission(enum.StrEnum):
    VIEW_LOG = "view_log"
    EXPORT_LOG = "export_log"
    VIEW_DASHBOARD = "view_dashboard"
    VIEW_AUDIT = "view_audit"
    EXPORT_PERSON = "export_person"
    REVIEW_UNBLOCK = "review_unblock"
    TRIAGE_UNBLOCK = "triage_unblock"
    DECIDE_UNBLOCK = "decide_unblock"
    END_GRANT = "end_grant"
    PREVIEW_IMPACT = "preview_impact"
    VIEW_PERMISSIONS = "view_permissions"
    GRANT_PERMISSION = "grant_permission"
    CONFIRM_PERMISSION = "confirm_permission"
    REVOKE_PERMISSION = "revoke_permission"
    VIEW_MY_CLASSES = "view_my_classes"
    ASK_WINDOW = "ask_window"
    VIEW_WINDOWS = "view_windows"
    DECIDE_WINDOW = "decide_window"
    RUN_SELFTEST = "run_selftest"
    REPORT_CONTACT = "report_contact"
    VIEW_REPORTS = "view_reports"
    DECIDE_REPORT = "decide_report"
    VIEW_HEAD_REPORTS = "view_head_reports"
    CLOSE_REPORT = "close_report"
    BLOCK_FROM_REPORT = "block_from_report"
    MANAGE_LOCAL_BLOCKS = "manage_local_blocks"
    VIEW_INCIDENTS = "view_incidents"
    DECIDE_INCIDENT = "decide_incident"
    MANAGE_BANS = "manage_bans"
    SUPERVISE = "supervise"
    VIEW_CONSENT = "view_consent"
    MANAGE_CONSENT = "manage_consent"
    EXPORT_CONSENT = "export_consent"
    APPROVE_DEVICE = "approve_device"
    VIEW_UPLOADS = "view_uploads"


GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.VIEW_LOG: frozenset({Role.OFFICER, Role.HEADTEACHER, Role.DPO}),
    Permission.EXPORT_LOG: frozenset({Role.OFFICER, Role.HEADTEACHER, Role.DPO}),
    Permission.VIEW_DASHBOARD: frozenset({Role.OFFICER, Role.HEADTEACHER, Role.DPO, Role.IT}),
    Permission.VIEW_AUDIT: frozenset({Role.HEADTEACHER, Role.DPO}),
    Permission.EXPORT_PERSON: frozenset({Role.HEADTEACHER, Role.DPO}),
    Permission.REVIEW_UNBLOCK: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.TRIAGE_UNBLOCK: frozenset({Role.OFFICER}),
    Permission.DECIDE_UNBLOCK: frozenset({Role.HEADTEACHER}),
    Permission.END_GRANT: frozenset({Role.HEADTEACHER}),
    Permission.PREVIEW_IMPACT: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.VIEW_PERMISSIONS: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.GRANT_PERMISSION: frozenset({Role.HEADTEACHER}),
    Permission.CONFIRM_PERMISSION: frozenset({Role.OFFICER}),
    Permission.REVOKE_PERMISSION: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.VIEW_MY_CLASSES: frozenset({Role.TEACHER}),
    Permission.ASK_WINDOW: frozenset({Role.TEACHER}),
    Permission.VIEW_WINDOWS: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.DECIDE_WINDOW: frozenset({Role.HEADTEACHER}),
    Permission.RUN_SELFTEST: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.REPORT_CONTACT: frozenset({Role.OFFICER, Role.HEADTEACHER, Role.DPO, Role.TEACHER, Role.IT}),
    Permission.VIEW_REPORTS: frozenset({Role.OFFICER, Role.HEADTEACHER, Role.DPO}),
    Permission.DECIDE_REPORT: frozenset({Role.OFFICER}),
    Permission.VIEW_HEAD_REPORTS: frozenset({Role.HEADTEACHER, Role.DPO}),
    Permission.CLOSE_REPORT: frozenset({Role.HEADTEACHER}),
    Permission.BLOCK_FROM_REPORT: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.MANAGE_LOCAL_BLOCKS: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.VIEW_INCIDENTS: frozenset({Role.OFFICER, Role.HEADTEACHER}),
    Permission.DECIDE_INCIDENT: frozenset({Role.HEADTEACHER}),
    Permission.MANAGE_BANS: frozenset({Role.HEADTEACHER}),
    Permission.SUPERVISE: frozenset({Role.TEACHER, Role.OFFICER, Role.HEADTEACHER}),
    Permission.VIEW_CONSENT: frozenset({Role.DPO, Role.HEADTEACHER, Role.OFFICER}),
    Permission.MANAGE_CONSENT: frozenset({Role.DPO}),
    Permission.EXPORT_CONSENT: frozenset({Role.DPO, Role.HEADTEACHER}),
    Permission.APPROVE_DEVICE: frozenset({Role.HEADTEACHER}),
    Permission.VIEW_UPLOADS: frozenset({Role.DPO, Role.HEADTEACHER}),
}

ROLE_TITLES = {
    Role.OFFICER: "E-safety officer (DSL)",
    Role.HEADTEACHER: "Headteacher",
    Role.DPO: "Data protection officer",
    Role.TEACHER: "Teacher",
    Role.IT: "IT technician",
}

PERMISSION_TITLES = {
    Permission.VIEW_LOG: "Read the access log and a person's timeline",
    Permission.EXPORT_LOG: "Export the filtered access log (CSV)",
    Permission.VIEW_DASHBOARD: "Dashboard of blocked and flagged attempts (counts)",
    Permission.VIEW_AUDIT: "Read the audit trail",
    Permission.EXPORT_PERSON: "Subject-access export of one person's log",
    Permission.REVIEW_UNBLOCK: "See unblock requests and the grants in force",
    Permission.TRIAGE_UNBLOCK: "Reject, question or forward an unblock request",
    Permission.DECIDE_UNBLOCK: "Approve or reject a forwarded unblock request",
    Permission.END_GRANT: "End a grant early",
    Permission.PREVIEW_IMPACT: "Preview what a grant or policy change would have let through (from the log)",
    Permission.VIEW_PERMISSIONS: "See personal-account permissions on the WiFi",
    Permission.GRANT_PERMISSION: "Grant a personal-account permission (the first key)",
    Permission.CONFIRM_PERMISSION: "Confirm a permission's security controls (the second key, which makes it live)",
    Permission.REVOKE_PERMISSION: "Revoke a personal-account permission",
    Permission.VIEW_MY_CLASSES: "See today's blocks and flags for the pupils of the classes they teach (no one else)",
    Permission.ASK_WINDOW: "Ask for a curriculum-activity window for a class they teach",
    Permission.VIEW_WINDOWS: "See curriculum-activity windows, asked for and open",
    Permission.DECIDE_WINDOW: "Approve, reject or close a curriculum-activity window",
    Permission.RUN_SELFTEST: "Run the filter self-test against the running gateway and print its report",
    Permission.REPORT_CONTACT: "Report a contact attempt through personal social media to the headteacher",
    Permission.VIEW_REPORTS: "Read the officer's queue of reports (flagged visits, pages, searches, people's reports)",
    Permission.DECIDE_REPORT: "Dismiss a report with a reason, or escalate it to the headteacher",
    Permission.VIEW_HEAD_REPORTS: "Read the headteacher's queue: escalated reports and contact attempts",
    Permission.CLOSE_REPORT: "Close a report in the headteacher's queue with a note",
    Permission.BLOCK_FROM_REPORT: "Block a reported site or page for the whole school in one click",
    Permission.MANAGE_LOCAL_BLOCKS: "See the school's local blocks and lift one, with a reason",
    Permission.VIEW_INCIDENTS: "See circumvention incidents, their evidence and the person's recent activity",
    Permission.DECIDE_INCIDENT: "Confirm a circumvention incident (which bans) or dismiss it as a false positive",
    Permission.MANAGE_BANS: "Set a supervised-only ban's end date, or lift it",
    Permission.SUPERVISE: "Start a supervised session for a banned pupil (one lesson or a set time)",
    Permission.VIEW_CONSENT: "Read the image-consent register",
    Permission.MANAGE_CONSENT: "Record image consent, withdrawals and amendments",
    Permission.EXPORT_CONSENT: "Export the image-consent register for the staff who run the school's accounts",
    Permission.APPROVE_DEVICE: "Approve a school-owned device for taking pupils' pictures",
    Permission.VIEW_UPLOADS: "See the images and videos posted to social media under the school-accounts permission",
}


def allowed(role: str | None, permission: Permission) -> bool:
    return role is not None and role in GRANTS[permission]


def can(permission: Permission) -> bool:
    return bool(current_user.is_authenticated) and allowed(current_user.role, permission)


def require(permission: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Signed in (else to the sign-in page) and holding the permission (else 403)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                from flask import current_app

                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not allowed(current_user.role, permission):
                abort(403)
            return view(*args, **kwargs)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate
