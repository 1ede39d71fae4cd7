"""Home and the dashboard: blocked and flagged attempts over time, top domains and categories, busiest hours."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from gateway.decisions.types import PeriodKind
from gateway.policy.illegal_slot import slot_warning_for_file
from gateway.web import charts, log_queries, sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, can, require

blueprint = Blueprint("dashboard", __name__)

RANGES = (1, 7, 30, 90)


@blueprint.route("/")
def home():  # type: ignore[no-untyped-def]
    from flask_login import current_user

    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    if can(Permission.VIEW_DASHBOARD):
        return dashboard_page()
    if can(Permission.VIEW_MY_CLASSES):
        return redirect(url_for("my_classes.index"))
    return render_template("home.html")


def days_arg() -> int:
    days = int(request.args["days"]) if request.args.get("days", "").isdigit() else 7
    return days if days in RANGES else 7


@blueprint.route("/dashboard")
@require(Permission.VIEW_DASHBOARD)
def dashboard_page():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    days = days_arg()
    site = sites.chosen(request.args)
    audit("view_dashboard", target="access_log", detail={"days": days, "site": site})
    figures = log_queries.dashboard(db(), current_app.extensions["gateway.zone"], days=days, site=site,
                                    allowed_sites=sites.allowed())  # fmt: skip
    kinds = [k.value for k in PeriodKind]
    page_charts = [
        charts.grouped_columns(
            "Blocked and flagged attempts by day",
            [d[5:] for d, _, _ in figures.over_time],
            [
                ("blocked", "s-block", [b for _, b, _ in figures.over_time]),
                ("flagged", "s-flag", [f for _, _, f in figures.over_time]),
            ],
        ),
        charts.horizontal_bars("Top blocked domains", figures.top_domains),
        charts.horizontal_bars("Top blocked categories and lists", figures.top_categories),
        charts.horizontal_bars("Blocked and flagged attempts by group", figures.by_group, "s-flag"),
        charts.horizontal_bars("Blocked and flagged attempts by class", figures.by_class, "s-flag"),
        charts.stacked_columns(
            "Busiest hours (all requests), by timetable period",
            [f"{h:02d}" for h in range(24)],
            [figures.hours[h] for h in range(24)],
            kinds,
        ),
    ]
    return render_template("dashboard.html", charts=page_charts, days=days, ranges=RANGES, figures=figures, site=site,
                           site_choices=sites.choices(),
                           illegal_slot=illegal_slot_banner())  # fmt: skip


def illegal_slot_banner() -> str | None:
    """The empty illegal-content slot warning, when the console knows the policy file (`policy_path`)."""
    policy_path = current_app.config["GATEWAY"].policy_path
    return slot_warning_for_file(policy_path) if policy_path else None
