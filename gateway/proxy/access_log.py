"""mitmproxy addon: one access-log row per request decision, queued to the batched writer.

Reads what the identity addon and the enforcer left in `flow.metadata`; flows without a decision (the gateway's
own pages, CONNECTs not yet decided) are not logged. The hooks only build a dict and queue it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mitmproxy import ctx, exceptions, http

from gateway.decisions.types import Decision
from gateway.identity.types import Identity
from gateway.proxy.request_host import pretty_host
from gateway.store.access_rows import access_row
from gateway.store.engine import NotMigrated, make_engine, require_migrated
from gateway.store.retention import DEFAULT_RETENTION_DAYS
from gateway.store.writer import AccessLogWriter

log = logging.getLogger(__name__)

_LOGGED = "gateway.logged"


class AccessLog:
    """Reads gateway_db, gateway_spool and gateway_site, declared by `gateway.proxy.store_options.StoreOptions`."""

    def __init__(self) -> None:
        self.writer: AccessLogWriter | None = None
        # Copies of options read per request: `ctx.options.x` deep-copies the value on every read.
        self.keep_query = False
        self.site: str | None = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_log_query", bool, False,
            "Keep URL query strings in the access log (search terms are kept either way).",
        )  # fmt: skip
        loader.add_option(
            "gateway_retention_days", int, DEFAULT_RETENTION_DAYS,
            "Delete access-log rows older than this many days, daily (0: never).",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "gateway_log_query" in updated:
            self.keep_query = ctx.options.gateway_log_query
        if "gateway_site" in updated:
            self.site = ctx.options.gateway_site or None
        if not updated & {"gateway_db", "gateway_spool", "gateway_retention_days"} and self.writer is not None:
            return
        engine = make_engine(ctx.options.gateway_db)
        try:
            require_migrated(engine)
        except NotMigrated as e:
            raise exceptions.OptionsError(str(e)) from None
        except Exception as e:
            # Unreachable now is fine: the writer spools until the database answers.
            log.warning("access-log database not reachable at start-up (%s); rows will be spooled", e)
        finally:
            engine.dispose()
        previous = self.writer
        days = ctx.options.gateway_retention_days
        self.writer = AccessLogWriter(
            ctx.options.gateway_db, ctx.options.gateway_spool, retention_days=days if days > 0 else None
        ).start()
        if previous is not None:
            previous.close()

    def response(self, flow: http.HTTPFlow) -> None:
        self._log(flow, error=None)

    def error(self, flow: http.HTTPFlow) -> None:
        self._log(flow, error=flow.error.msg if flow.error else "error")

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _log(self, flow: http.HTTPFlow, *, error: str | None) -> None:
        decision = flow.metadata.get("gateway.decision")
        if not isinstance(decision, Decision) or self.writer is None or flow.metadata.get(_LOGGED):
            return
        flow.metadata[_LOGGED] = True
        identity = flow.metadata.get("gateway.identity")
        if not isinstance(identity, Identity):
            peer = flow.client_conn.peername[0] if flow.client_conn.peername else None
            identity = Identity(group="unknown", client_ip=peer)
        instant = flow.metadata.get("gateway.instant") or datetime.now(UTC)
        request = flow.request
        path, _, query = request.path.partition("?")
        response = flow.response
        self.writer.submit(
            access_row(
                identity=identity,
                decision=decision,
                instant=instant,
                method=request.method,
                scheme=request.scheme,
                host=pretty_host(request),
                path=path,
                query=query,
                status=response.status_code if response else None,
                size=_size(response),
                keep_query=self.keep_query,
                site=self.site,
                error=error,
            )
        )


def _size(response: http.Response | None) -> int | None:
    if response is None:
        return None
    if response.raw_content is not None:
        return len(response.raw_content)
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None
