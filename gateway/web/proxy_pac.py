"""`/proxy.pac`: the proxy auto-config file `gateway run` writes for its proxy workers (`gateway.deploy.pac`),
served to devices with no sign-in (a device reads it before anyone has signed in). It is kept beside the console's
secret key file, in the gateway's var folder; without one (a console started on its own) there is none to serve."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app

from gateway.deploy.pac import PAC_NAME

blueprint = Blueprint("proxy_pac", __name__)


def pac_path(secret_key_file: str) -> Path:
    return Path(secret_key_file).with_name(PAC_NAME)


@blueprint.get("/proxy.pac")
def proxy_pac() -> Response:
    path = pac_path(current_app.config["GATEWAY"].secret_key_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        abort(404)
    return Response(text, mimetype="application/x-ns-proxy-autoconfig")
