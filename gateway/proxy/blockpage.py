"""The page a pupil or teacher sees when the gateway blocks a request. Pure (no mitmproxy): the proxy serves it.

Every value shown is escaped: the URL, reason and names come from requests and policy files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from string import Template
from urllib.parse import urlencode

from gateway.decisions.types import Decision, Source
from gateway.identity.types import Identity
from gateway.store.request_outcomes import RequestOutcome

MAX_URL_SHOWN = 200

PERIOD_NAMES = {
    "lesson": "lesson time",
    "break": "break time",
    "lunch": "lunch time",
    "before_school": "before school",
    "after_school": "after school",
    "weekend": "the weekend",
    "holiday": "the school holidays",
    "closure": "a school closure day",
}

PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Blocked: $host</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f6fb;color:#1d2433;margin:0}
main{max-width:40rem;margin:3rem auto;background:#fff;border-radius:12px;padding:2rem 2.5rem;
box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.6rem;margin:.2rem 0 1rem;color:#b3261e}
.school{color:#5b6477;font-size:.95rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem;margin:1.2rem 0}
dt{font-weight:600;color:#5b6477}dd{margin:0;overflow-wrap:anywhere}
.ask{background:#eef3ff;border-radius:8px;padding:1rem 1.2rem;margin-top:1.2rem}
.ask a{font-weight:600;color:#1a4fd6}
.asked{background:#fff6e0;border-radius:8px;padding:1rem 1.2rem;margin-top:1.2rem;overflow-wrap:anywhere}
.asked a{font-weight:600;color:#1a4fd6}
.ref{color:#5b6477;font-size:.85rem;margin-top:1.5rem}
</style>
</head>
<body>
<main>
<div class="school">$school</div>
<h1>$heading</h1>
<p>$reason</p>
<dl>
<dt>Address</dt><dd>$url</dd>
<dt>Why</dt><dd>$why</dd>
<dt>When</dt><dd>$when ($period)</dd>
<dt>Who</dt><dd>$who</dd>
</dl>
$asked
$ask
<p class="ref">Reference $ref. If you saw something that upset you, tell your teacher.$report</p>
</main>
</body>
</html>
""")


@dataclass(frozen=True, slots=True)
class BlockNotice:
    decision: Decision
    identity: Identity
    url: str
    instant: datetime
    school: str
    contact: str
    request_url: str | None
    reference: str
    # The policy's description of the matched list, in words a pupil can read.
    list_description: str = ""
    # This person's (or, for nobody signed in, this device's) latest request about this site.
    earlier: RequestOutcome | None = None
    # The gateway's "Report this page" form, beside its request form; None when the gateway has no portal.
    report_url: str | None = None


def _why(notice: BlockNotice) -> str:
    decision = notice.decision
    if decision.source is Source.ILLEGAL:
        return f"illegal-content list ({decision.list})"
    if decision.source is Source.FAILURE:
        return "the gateway could not check this page, so it is blocked to keep you safe"
    if decision.source is Source.CONNECTION:
        return f"the gateway's connection rules ({decision.rule})"
    if decision.source is Source.BAN:
        return "you are on supervised-only access, so every website is blocked unless a teacher is with you"
    if decision.source is Source.UPLOAD:
        return "photos and videos are only posted on the school's own accounts, by the staff who run them"
    if decision.source is Source.AGE:
        return f"{decision.matched}: the minimum age in the site's own rules"
    if decision.source is Source.CIRCUMVENTION:
        # Which detector fired is left out: the page must not tell a pupil which trick the filter saw.
        return "the school's rule against getting round the web filter"
    if decision.source is Source.CONTENT:
        # The matched phrase is left out: the block page must not repeat harmful words to a pupil.
        return f"content analysis found {(decision.list or 'unsuitable').replace('_', ' ')} content"
    parts = []
    if decision.list:
        described = f"{notice.list_description} " if notice.list_description else ""
        parts.append(f"{described}(list {decision.list})")
    if decision.matched:
        parts.append(f"matched {decision.matched}")
    if decision.rule:
        parts.append(f"rule {decision.rule}")
    return ", ".join(parts) or "the school's default policy"


def _ask(notice: BlockNotice) -> str:
    if notice.decision.source is Source.ILLEGAL:
        return ""
    if notice.decision.source is Source.CIRCUMVENTION:
        # Not a site anyone unblocks; a mistake is for a person to look into.
        return (
            f'<div class="ask">The Acceptable Use Policy says that trying to get round the school\'s filter leads to '
            f"school computers being used only under close supervision. If you were not trying to, or need this for a "
            f"lesson, tell your teacher or {escape(notice.contact)}.</div>"
        )
    if notice.decision.source is Source.BAN:
        # Not a site to unblock: a teacher starts a supervised session from the console.
        return ('<div class="ask">Ask your teacher. When a teacher is with you, they can start a supervised session '
                "and you can use the internet again while it lasts.</div>")
    if notice.decision.source is Source.AGE:
        # Not the school's rule to lift: the site's own terms set the age.
        return ('<div class="ask">When you are old enough, this page opens by itself. If the school has your age '
                f"wrong, tell your teacher or {escape(notice.contact)}.</div>")
    if notice.decision.source is Source.UPLOAD:
        # Not a site to unblock: the school's consent rules decide who posts pictures, so no request form.
        return ("<div class=\"ask\">If this picture or video is for the school's accounts, give it to the staff who "
                f"run them, or ask {escape(notice.contact)}.</div>")
    if notice.request_url:
        query = urlencode({"url": notice.url, "rule": notice.decision.rule or "", "ref": notice.reference})
        link = escape(f"{notice.request_url}?{query}")
        return (
            f'<div class="ask">Think this is wrong? <a href="{link}">Ask for access</a>. '
            f"The e-safety officer reviews requests and the headteacher approves them.</div>"
        )
    return (
        f'<div class="ask">Think this is wrong, or need it for a lesson? Ask {escape(notice.contact)}: '
        f"they review blocked-content requests, which the headteacher approves.</div>"
    )


def _report(notice: BlockNotice) -> str:
    """Blocked is not always wrong and not always enough: a pupil can tell the officer what they met, or that the
    page should not be blocked, without asking for access."""
    if not notice.report_url:
        return ""
    link = escape(f"{notice.report_url}?{urlencode({'url': notice.url})}")
    return (f' <a href="{link}">Report this page</a> to the e-safety officer: something on it worried you, or it '
            "should not be blocked.")


def _day(moment: datetime, notice: BlockNotice) -> str:
    local = moment.astimezone(notice.instant.tzinfo)
    year = f" {local.year}" if local.year != notice.instant.year else ""
    return f"{local.day} {local:%b}{year}"


def _asked(notice: BlockNotice) -> str:
    """One line on where this person's request about the site stands, with what the request form tells them."""
    asked = notice.earlier
    if asked is None:
        return ""
    said = escape(asked.said or "")
    if asked.status == "rejected":
        outcome = f"not approved — {said}" if said else "not approved"
    elif asked.status == "more_info":
        answer = (f'<a href="{escape(notice.request_url)}">answer it here</a>' if notice.request_url
                  else "answer it on the request form")  # fmt: skip
        outcome = f"the e-safety officer asked a question — {said + ' — ' if said else ''}{answer}"
    elif asked.status == "forwarded":
        outcome = "waiting for the headteacher"
    elif asked.status == "approved":
        outcome = _approved(asked, notice)
        outcome += f" — {said}" if said else ""
    else:
        outcome = "waiting for the e-safety officer"
    return f'<p class="asked">You asked for access on {escape(_day(asked.asked_at, notice))}: {outcome}</p>'


def _approved(asked: RequestOutcome, notice: BlockNotice) -> str:
    if asked.until is None:
        return "approved"
    until = asked.until.astimezone(notice.instant.tzinfo)
    when = escape(f"{_day(until, notice)}, {until:%H:%M}")
    if asked.ended_early:
        return f"approved until {when}, but the approval was ended early"
    if until <= notice.instant:
        return f"approved until {when}; that has ended"
    return f"approved until {when}"


def render_block_page(notice: BlockNotice) -> str:
    decision = notice.decision
    url = notice.url if len(notice.url) <= MAX_URL_SHOWN else notice.url[:MAX_URL_SHOWN] + "…"
    return PAGE.substitute(
        heading="You are on supervised-only access" if decision.source is Source.BAN else "This page is blocked",
        host=escape(decision.host),
        school=escape(notice.school),
        reason=escape(decision.reason),
        url=escape(url),
        why=escape(_why(notice)),
        when=escape(notice.instant.strftime("%A %d %B %Y, %H:%M")),
        period=escape(PERIOD_NAMES.get(decision.period.value, decision.period.value)),
        who=escape(notice.identity.describe()),
        asked=_asked(notice),
        ask=_ask(notice),
        ref=escape(notice.reference),
        report=_report(notice),
    )


def render_block_text(notice: BlockNotice) -> str:
    """For requests that are not pages (images, scripts, API calls): short, plain, no markup."""
    return f"Blocked by the school web gateway: {notice.decision.reason} (reference {notice.reference})\n"
