"""The filter self-test in the console: the officer or headteacher runs it against the running proxy and gets a
report to print for governors (school, date, who ran it, each group and category, the illegal-content slot).
Every run is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, current_app, render_template
from flask_login import current_user

from gateway.policy.loader import PolicyError, load_policy
from gateway.selftest.plan import SelftestDataError, build_plan
from gateway.selftest.runner import Status, run_selftest
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require

blueprint = Blueprint("selftest", __name__, url_prefix="/selftest")

PRINT_CSS = Path(__file__).with_name("templates") / "selftest" / "print.css"


@blueprint.get("/")
@require(Permission.RUN_SELFTEST)
def index():  # type: ignore[no-untyped-def]
    return render_template("selftest/index.html", proxy_url=current_app.config["GATEWAY"].proxy_url)


@blueprint.post("/")
@require(Permission.RUN_SELFTEST)
def run():  # type: ignore[no-untyped-def]
    config = current_app.config["GATEWAY"]
    if not config.proxy_url or not config.policy_path:
        return _cannot("The console was started without the proxy's address or the policy (`gateway run` gives "
                       "both; `gateway console --proxy-url ... --policy ...`).")  # fmt: skip
    try:
        plan = build_plan(load_policy(config.policy_path))
    except (PolicyError, SelftestDataError, OSError) as exc:
        return _cannot(f"The self-test cannot be planned: {str(exc).splitlines()[0]}")
    zone = current_app.extensions["gateway.zone"]
    report = run_selftest(plan, config.proxy_url, current_app.config["SECRET_KEY"],
                          ran_by=f"{current_user.display_name} ({current_user.username})",
                          now=datetime.now(UTC).astimezone(zone))  # fmt: skip
    audit("selftest_run", target="selftest", detail={
        "passed": report.passed, "groups": list(plan.groups), "illegal_slot_filled": plan.slot_filled,
        "failed": sorted(f"{r.group}/{r.category}" for r in report.results if r.status is Status.FAIL),
    })  # fmt: skip
    return render_template("selftest/report.html", report=report)


@blueprint.get("/print.css")
@require(Permission.RUN_SELFTEST)
def print_css() -> Response:
    return Response(PRINT_CSS.read_text(), mimetype="text/css")


def _cannot(message: str):  # type: ignore[no-untyped-def]
    return render_template("error.html", title="Self-test not run", message=message), 503


