"""mitmproxy addon: one access-log row per request decision and per connection refused, blocked or relayed
untouched, queued to the batched writer.

Reads the flow's state the identity part and the enforcer left (`gateway.proxy.flow_state`); flows without a
decision (the gateway's own pages) are not logged. The hooks only build a dict and queue it. The destination logged
is the one decided and contacted, not the Host header.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from mitmproxy import ctx, exceptions, http

from gateway.circumvention.incident import Detection
from gateway.decisions.types import Action
from gateway.proxy.flow_state import ConnectionState, flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.upload_guard import upload_seen
from gateway.store.access_rows import access_row
from gateway.store.engine import NotMigrated, make_engine, require_migrated
from gateway.store.retention import DEFAULT_RETENTION_DAYS
from gateway.store.writer import AccessLogWriter

log = logging.getLogger(__name__)

class AccessLog:
    """Reads gateway_db, gateway_spool and gateway_site, declared by `gateway.proxy.store_options.StoreOptions`;
    without gateway_site, rows carry the policy's school.site."""

    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
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
        db_url = ctx.options.gateway_db
        if db_url.startswith("sqlite"):
            # A local file answers at once: a database nobody migrated stops the gateway with what to run.
            try:
                _check_schema(db_url)
            except NotMigrated as e:
                raise exceptions.OptionsError(str(e)) from None
        else:
            # A server may not answer for a long time: check off the event loop; rows spool meanwhile.
            threading.Thread(target=_check_schema_logged, args=(db_url,), name="access-log schema", daemon=True).start()
        previous = self.writer
        days = ctx.options.gateway_retention_days
        self.writer = AccessLogWriter(
            ctx.options.gateway_db, ctx.options.gateway_spool, retention_days=days if days > 0 else None
        ).start()
        if previous is not None:
            # Closing flushes to the database, which may not answer: never on the event loop.
            threading.Thread(target=previous.close, name="access-log close", daemon=True).start()

    def response(self, flow: http.HTTPFlow) -> None:
        self._log(flow, error=None)

    def error(self, flow: http.HTTPFlow) -> None:
        self._log(flow, error=flow.error.msg if flow.error else "error")

    async def done(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await asyncio.to_thread(writer.close)

    def connection(self, tunnel: ConnectionState, error: str | None) -> None:
        """A connection refused, blocked at CONNECT, or relayed untouched (when it ends)."""
        if self.writer is None or tunnel.decision is None:
            return
        relayed = tunnel.started > 0
        row = access_row(
            identity=tunnel.identity,
            decision=tunnel.decision,
            instant=tunnel.instant,
            method="CONNECT",
            scheme="tls" if tunnel.sni else "tcp",
            host=tunnel.target or tunnel.decision.host,
            path="",
            query="",
            status=None,
            size=None,
            keep_query=False,
            site=self.site or self.policy.current.policy.school.site,
            error=error,
            port=tunnel.port,
            sni=tunnel.sni,
            bytes_up=tunnel.bytes_up if relayed else None,
            bytes_down=tunnel.bytes_down if relayed else None,
            duration_ms=round((time.monotonic() - tunnel.started) * 1000) if relayed else None,
        )
        if tunnel.detection is not None:
            row["incident"] = self._incident(tunnel.detection)
        self.writer.submit(row)

    def _log(self, flow: http.HTTPFlow, *, error: str | None) -> None:
        state = flow_state(flow)
        if state.decision is None or self.writer is None or state.logged or flow.request.method == "CONNECT":
            return
        state.logged = True
        identity = identity_of(flow, self.policy)
        instant = state.instant or datetime.now(UTC)
        request = flow.request
        path, _, query = request.path.partition("?")
        response = flow.response
        policy = self.policy.current.policy
        decision = state.decision
        row = access_row(
            identity=identity,
            decision=decision,
            instant=instant,
            method=request.method,
            scheme=request.scheme,
            host=state.host or request.host,
            path=path,
            query=query,
            status=response.status_code if response else None,
            size=_size(response),
            keep_query=self.keep_query,
            site=self.site or policy.school.site,
            error=error,
            port=state.port,
            sni=flow.client_conn.sni,
            finding=state.finding,
            alert=decision.action is Action.FLAG and policy.reports.alerts.is_high_risk(decision.list),
        )
        if state.detection is not None:
            row["incident"] = self._incident(state.detection)
        upload = upload_seen(flow)
        if upload is not None:
            # Not a column: the writer adds the DPO's upload event from it.
            row["upload"] = upload.as_row_value()
        self.writer.submit(row)

    def _incident(self, detection: Detection) -> dict[str, Any]:
        """Not a column: the writer records the incident from it, and bans at once where the policy says."""
        rules = self.policy.current.circumvention
        return rules.row_value(detection) if rules is not None else detection.as_row_value()


def _check_schema(db_url: str) -> None:
    engine = make_engine(db_url, statement_timeout=10)
    try:
        require_migrated(engine)
    finally:
        engine.dispose()


def _check_schema_logged(db_url: str) -> None:
    try:
        _check_schema(db_url)
    except NotMigrated as e:
        log.error("the access-log database is not ready, rows are spooled until it is: %s", e)
    except Exception as e:
        log.warning("access-log database not reachable at start-up (%s); rows will be spooled", e)


def _size(response: http.Response | None) -> int | None:
    if response is None:
        return None
    if response.raw_content is not None:
        return len(response.raw_content)
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None
