"""Real-time content analysis of the pages the enforcer allowed: blocks or flags a page by what it says.

Per response, at its headers: text (HTML, plain, JSON …) with a known length up to the policy's `max_bytes` is held
by mitmproxy and analysed whole in `response`, so a harmful page becomes the block page (status 403) before the
browser gets a byte of it. Everything else streams and is never held: images, video, audio and downloads untouched;
text of unknown length (chunked) or over `max_bytes` through a `PageStream`, which holds up to `max_bytes` (a
chunked page that ends within it is answered as a whole: the block page replaces its body, but the status line had
to go out first), then releases and scans the rest as it passes, and drops the rest once it crosses the block
threshold, so harm behind padding never reaches the browser whole.

Bodies are decoded as the browser would: Content-Encoding (gzip, deflate, br, zstd), then the charset from the
header, a byte-order mark or the page's <meta>. A body whose Content-Encoding cannot be decoded is not analysed
but blocked ("could not check this page"): a broken encoding must not be a way round the analysis. A declared image
type is streamed unanalysed even when the body is HTML: browsers never render a declared image as a page.

Many people open the same page (a class loading one lesson): a held body's finding is kept by the body's digest
and what the thresholds depend on (group, year group), for the policy it was found under, so the same bytes are
analysed once.

The gateway's own portal and console are not analysed: the officer's report pages quote what was found. With
content analysis off, every body streams.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import brotli
from mitmproxy import http
from mitmproxy.net import encoding as net_encoding
from mitmproxy.net.http.headers import infer_content_encoding

from gateway.content.analyser import ContentAnalyser, PageScanner
from gateway.content.findings import ContentFinding
from gateway.decisions.types import Action, Decision, Source
from gateway.identity.types import Identity
from gateway.proxy.block_response import block, block_notice
from gateway.proxy.blockpage import render_block_page
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.enforcer import SEVERITY, failed_decision
from gateway.proxy.flow_state import FlowState, flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource

try:
    from compression import zstd
except ImportError:  # Python < 3.14: mitmproxy depends on the backport
    from backports import zstd  # type: ignore[no-redef]

log = logging.getLogger(__name__)

RULE = "content-analysis"
# Decompressed text handed to the analyser at a time, so a small compressed body cannot balloon in memory.
PIECE = 256 * 1024
# Decoded text beyond this many times max_bytes is scanned in pieces instead of analysed whole.
WHOLE_FACTOR = 4
# Findings remembered for bodies already analysed (a few hundred bytes each).
CACHED_FINDINGS = 4096


class Undecodable(ValueError):
    """The body's Content-Encoding cannot be decoded."""


def content_decision(finding: ContentFinding, period: Any, host: str) -> Decision:
    """The decision a flagging or blocking finding stands for: the category as the list, the strongest match."""
    category = finding.category or "unknown"
    words = category.replace("_", " ")
    if finding.kind == "search":
        reason = f"This search was {'blocked' if finding.action is Action.BLOCK else 'reported'}: {words}."
    else:
        reason = f"This page's content was {'blocked' if finding.action is Action.BLOCK else 'reported'}: {words}."
    matched = finding.matches[0] if finding.matches else None
    return Decision(finding.action, Source.CONTENT, reason, period, host, rule=RULE, list=category, matched=matched)


def settle(state: FlowState, finding: ContentFinding) -> Decision | None:
    """Keep a flagging or blocking finding on the flow (the strongest, the first on a tie); returns the decision
    that now stands when it changed."""
    if finding.action is Action.ALLOW or state.decision is None:
        return None
    # A search's results page repeats its terms: the search finding, which names them, stays unless the page's
    # is stronger.
    if state.finding is None or SEVERITY[finding.action] < SEVERITY[state.finding.action]:
        state.finding = finding
    decision = content_decision(finding, state.decision.period, state.decision.host)
    if SEVERITY[decision.action] < SEVERITY[state.decision.action]:
        state.decision = decision
        return decision
    return None


class _Decompressor:
    """Content-Encoding undone piece by piece, never more than PIECE bytes of output at a time."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower()
        self._zlib: Any = None
        self._brotli: Any = None
        self._zstd: Any = None
        self._pending = b""
        if self.encoding in ("", "identity"):
            return
        if self.encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._zlib = None  # decided on the first bytes: zlib-wrapped, or raw as some servers send it
        elif self.encoding == "br":
            self._brotli = brotli.Decompressor()
        elif self.encoding == "zstd":
            self._zstd = zstd.ZstdDecompressor()
        else:
            raise Undecodable(f"unknown Content-Encoding {encoding!r}")

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if self.encoding in ("", "identity"):
                yield data
            elif self._brotli is not None:
                out = self._brotli.process(data, output_buffer_limit=PIECE)
                yield out
                while out and not self._brotli.is_finished():
                    out = self._brotli.process(b"", output_buffer_limit=PIECE)
                    yield out
            elif self._zstd is not None:
                yield self._zstd.decompress(data, PIECE)
                while not self._zstd.eof and not self._zstd.needs_input:
                    yield self._zstd.decompress(b"", PIECE)
            else:
                if self._zlib is None:
                    raw = not data or (data[0] & 0x0F) != 8
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
                chunk = self._zlib.decompress(data, PIECE)
                yield chunk
                while self._zlib.unconsumed_tail:
                    yield self._zlib.decompress(self._zlib.unconsumed_tail, PIECE)
        except (zlib.error, brotli.error, zstd.ZstdError, EOFError) as e:
            raise Undecodable(f"{self.encoding}: {e}") from e


class BodyText:
    """Raw body bytes in, text out: Content-Encoding undone, then the charset the browser would use."""

    def __init__(self, headers: http.Headers) -> None:
        self.content_type = headers.get("content-type", "")
        self.decompressor = _Decompressor(headers.get("content-encoding", ""))
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""

    def feed(self, data: bytes, final: bool = False) -> str:
        out: list[str] = []
        for piece in self.decompressor.feed(data):
            out.append(self._decode(piece, final=False))
        if final:
            out.append(self._decode(b"", final=True))
        return "".join(out)

    def _decode(self, data: bytes, *, final: bool) -> str:
        if self._decoder is None:
            # The charset may be in the page's <meta>: wait for its first KB (or the end) to choose.
            self._head += data
            if len(self._head) < 1024 and not final:
                return ""
            data, self._head = self._head, b""
            charset = infer_content_encoding(self.content_type, data)
            try:
                self._decoder = codecs.getincrementaldecoder(charset)(errors="replace")
            except LookupError:
                self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return self._decoder.decode(data, final)


def analyse_body(analyser: ContentAnalyser, identity: Identity, headers: http.Headers, raw: bytes) -> ContentFinding:
    """A whole buffered body's finding. Raises Undecodable."""
    text = BodyText(headers)
    pieces: list[str] = []
    size = 0
    scanner: PageScanner | None = None
    for start in range(0, max(len(raw), 1), PIECE):
        piece = text.feed(raw[start : start + PIECE], final=start + PIECE >= len(raw))
        if scanner is None:
            pieces.append(piece)
            size += len(piece)
            if size > analyser.max_bytes * WHOLE_FACTOR:
                # A small compressed body that decodes to a great deal of text: scanned, never held whole.
                scanner = analyser.scanner(identity)
                scanner.feed("".join(pieces))
                pieces = []
        elif scanner.feed(piece) is not None:
            return scanner.finish()
    if scanner is not None:
        return scanner.finish()
    return analyser.analyse_page("".join(pieces), identity)


class FindingCache:
    """The latest findings by (body digest, group, year group), for one analyser: a new policy starts afresh."""

    def __init__(self, size: int = CACHED_FINDINGS) -> None:
        self.size = size
        self.analyser: ContentAnalyser | None = None
        self._found: OrderedDict[tuple[bytes, str, int | None], ContentFinding] = OrderedDict()

    def finding(self, analyser: ContentAnalyser, identity: Identity, headers: http.Headers,
                raw: bytes) -> ContentFinding:  # fmt: skip
        if analyser is not self.analyser:
            self.analyser = analyser
            self._found.clear()
        digest = hashlib.blake2b(raw, digest_size=16)
        # The same bytes read differently under another encoding or charset.
        digest.update(f"\0{headers.get('content-encoding', '')}\0{headers.get('content-type', '')}".encode())
        key = (digest.digest(), identity.group, identity.year_group)
        found = self._found.get(key)
        if found is not None:
            self._found.move_to_end(key)
            return found
        found = analyse_body(analyser, identity, headers, raw)
        self._found[key] = found
        if len(self._found) > self.size:
            self._found.popitem(last=False)
        return found


class PageStream:
    """mitmproxy's stream callable for text too long to hold, or of unknown length.

    Holds the raw body up to `limit` bytes; a body that ends within it is analysed whole, as a buffered one. Past
    it, the held bytes are released and every later chunk is scanned before it is passed on; once the scan crosses
    the block threshold nothing more is passed. Any failure stops the stream: a page that could not be checked is
    never passed on."""

    def __init__(self, analyser: ContentAnalyser, identity: Identity, headers: http.Headers,
                 block_body: Callable[[ContentFinding | None], bytes]) -> None:  # fmt: skip
        self.analyser = analyser
        self.identity = identity
        self.headers = headers
        self.limit = analyser.max_bytes
        self.block_body = block_body
        self.held: list[bytes] = []
        self.held_size = 0
        self.scanner: PageScanner | None = None
        self.text: BodyText | None = None
        self.finding: ContentFinding | None = None
        self.failed = False
        self.cut = False

    def __call__(self, data: bytes) -> list[bytes]:
        # Nothing to pass on is an empty list: an empty chunk would end a chunked body.
        if self.failed or self.cut:
            return []
        try:
            if data == b"":
                return self._end()
            if self.scanner is None:
                self.held.append(data)
                self.held_size += len(data)
                if self.held_size <= self.limit:
                    return []
                return self._release()
            return self._scan(data)
        except Exception:
            log.exception("content analysis failed on a streamed page; the rest of it is dropped")
            self.failed = True
            return [self.block_body(None)] if self.scanner is None else []

    def _release(self) -> list[bytes]:
        self.text = BodyText(self.headers)
        self.scanner = self.analyser.scanner(self.identity)
        held, self.held = b"".join(self.held), []
        return self._scan(held)

    def _scan(self, data: bytes) -> list[bytes]:
        assert self.text is not None and self.scanner is not None
        found = self.scanner.feed(self.text.feed(data))
        if found is not None:
            self.finding = found
            self.cut = True
            return []
        return [data] if data else []

    def _end(self) -> list[bytes]:
        if self.scanner is None:
            held, self.held = b"".join(self.held), []
            self.finding = analyse_body(self.analyser, self.identity, self.headers, held)
            if self.finding.action is Action.BLOCK:
                return [self.block_body(self.finding)]
            return [held] if held else []
        assert self.text is not None
        self.scanner.feed(self.text.feed(b"", final=True))
        self.finding = self.scanner.finish()
        return []


class ContentGuard:
    """Place after the enforcer and before the access log."""

    def __init__(self, policy: PolicySource, guard: DestinationGuard) -> None:
        self.policy = policy
        self.guard = guard
        self.cache = FindingCache()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None
        analyser = self.policy.current.content
        state = flow_state(flow)
        if analyser is None or state.decision is None or state.decision.blocked or self._own(state):
            response.stream = True
            return
        if not analyser.wants(response.headers.get("content-type"), None):
            response.stream = True
            return
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) <= analyser.max_bytes:
            return  # held by mitmproxy; analysed whole in `response`
        identity = identity_of(flow, self.policy)
        response.stream = PageStream(analyser, identity, response.headers, lambda found: self._block_body(flow, found))

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        state = flow_state(flow)
        if response is None or state.decision is None or state.decision.blocked:
            return
        stream = response.stream
        if isinstance(stream, PageStream):
            self._streamed(flow, state, stream)
            return
        analyser = self.policy.current.content
        if stream or analyser is None or response.raw_content is None or self._own(state):
            return
        identity = identity_of(flow, self.policy)
        try:
            finding = self.cache.finding(analyser, identity, response.headers, response.raw_content)
        except Undecodable as e:
            log.warning("could not decode %s (%s); blocked", flow.request.pretty_url, e)
            self._fail(flow, state)
            return
        decision = settle(state, finding)
        if decision is not None and decision.blocked:
            self._block(flow, state, decision)

    def _own(self, state: FlowState) -> bool:
        """The gateway's own portal and console: the officer's report pages quote what was found, by design."""
        return state.host is not None and state.port is not None and self.guard.is_portal(state.host, state.port)

    def _streamed(self, flow: http.HTTPFlow, state: FlowState, stream: PageStream) -> None:
        if stream.failed:
            state.decision = failed_decision(state.decision.period, state.decision.host)  # type: ignore[union-attr]
            return
        if stream.finding is not None:
            settle(state, stream.finding)

    def _block(self, flow: http.HTTPFlow, state: FlowState, decision: Decision) -> None:
        assert state.identity is not None and state.instant is not None
        block(flow, self.policy.current.policy, decision, state.identity, state.instant, self.guard.request_form)

    def _fail(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert state.decision is not None
        state.decision = failed_decision(state.decision.period, state.decision.host)
        self._block(flow, state, state.decision)

    def _block_body(self, flow: http.HTTPFlow, finding: ContentFinding | None) -> bytes:
        """The block page as the body of a response whose headers have gone: in its declared encoding."""
        state = flow_state(flow)
        assert state.decision is not None and state.identity is not None and state.instant is not None
        if finding is None:
            decision = failed_decision(state.decision.period, state.decision.host)
        else:
            decision = content_decision(finding, state.decision.period, state.decision.host)
        notice = block_notice(flow, self.policy.current.policy, decision, state.identity, state.instant,
                              self.guard.request_form)  # fmt: skip
        assert flow.response is not None
        charset = infer_content_encoding(flow.response.headers.get("content-type", ""), b"")
        try:
            page = render_block_page(notice).encode(charset, "xmlcharrefreplace")
        except LookupError:
            page = render_block_page(notice).encode("utf-8")
        return _encode(page, flow.response.headers.get("content-encoding", ""))


def _encode(body: bytes, content_encoding: str) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    return net_encoding.encode(body, "gzip" if encoding == "x-gzip" else encoding)
