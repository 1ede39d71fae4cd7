"""Help: the roles table, so everyone can see who may see what."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from gateway.store.models.users import Role
from gateway.web.roles import GRANTS, PERMISSION_TITLES, ROLE_TITLES

blueprint = Blueprint("help", __name__)


@blueprint.route("/help")
@login_required
def index():  # type: ignore[no-untyped-def]
    return render_template(
        "help.html", roles=list(Role), grants=GRANTS, role_titles=ROLE_TITLES, permission_titles=PERMISSION_TITLES
    )
