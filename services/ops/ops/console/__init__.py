"""The ops console: server-rendered pages (Jinja2, a few lines of hand-written JS, no build step) under /ops.

Login takes an API key with the `ops` scope of a hub organization and gives a signed session cookie; every
POST form carries the session's CSRF token. The pages call the same use cases as the JSON API (service.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ops.api import boards_json, entry_out, flow_data, monitor_of, payload_json
from ops.console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    csrf_matches,
    decode_session,
    encode_session,
    new_session,
    sign,
    unsign,
)
from ops.domain.alerts import METRICS, Metric
from ops.monitor import settings_of
from ops.repository import DeadLetterStatus, OpsUnitOfWork, aware
from ops.service import (
    RuleInput,
    add_destination,
    compute_boards,
    create_rule,
    destinations,
    disable_rule,
    discard_dead_letter,
    member_id_of_cin,
    now_utc,
    read_entry,
    remove_destination,
    replay_dead_letters,
    replay_outcomes,
    timeline,
    timeline_query,
    trace_url,
)
from shared.auth import OPS_SCOPE, Authenticator, record_audit
from shared.problems import Problem
from shared.reference.calendar import PACIFIC
from shared.runtime import ServiceRuntime

HERE = Path(__file__).resolve().parent
STATIC = {"ops.css": "text/css; charset=utf-8", "ops.js": "text/javascript; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
NOTICES = {
    "replayed": "Dead letters replayed: the relay publishes them now.",
    "nothing-replayed": "Nothing was replayed (select pending dead letters).",
    "discarded": "Dead letter discarded; the reason is kept in the audit trail.",
    "rule-created": "Alert rule created; it is evaluated from the next round.",
    "rule-disabled": "Alert rule disabled.",
    "destination-added": "Destination added.",
    "destination-removed": "Destination removed.",
    "evaluated": "Alert rules evaluated.",
    "logged-out": "You are logged out.",
}


def _pacific(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    value = aware(moment) or moment
    return value.astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S %Z")


templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
templates.filters["pt"] = _pacific


@asynccontextmanager
async def console_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Hand the ops runtime the app's runtimes (every service in embedded mode) for health and backlogs."""
    runtimes: dict[str, ServiceRuntime] = getattr(app.state, "runtimes", {})
    ops = runtimes.get("ops")
    if ops is not None:
        ops.state["peers"] = dict(runtimes)
    yield


router = APIRouter(prefix="/ops", include_in_schema=False, lifespan=console_lifespan)


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtimes["ops"]
    return runtime


def _secret(runtime: ServiceRuntime) -> bytes:
    secret = runtime.ports.get("session_secret")
    assert isinstance(secret, bytes)
    return secret


def _uow(runtime: ServiceRuntime) -> OpsUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, OpsUnitOfWork)
    return uow


async def _session(request: Request) -> ConsoleSession | None:
    """The signed session of this request, if it has not expired and its key has not been revoked since login
    (the authenticator caches that answer as it caches key verifications)."""
    session = decode_session(_secret(_runtime(request)), request.cookies.get(SESSION_COOKIE), time.time())
    if session is None:
        return None
    authenticator: Authenticator = request.app.state.authenticator
    return session if await authenticator.key_active(session.key_id) else None


def _secure(request: Request) -> bool:
    configured = settings_of(_runtime(request)).cookie_secure
    return configured if configured is not None else request.url.scheme == "https"


def _page(request: Request, template: str, session: ConsoleSession | None, status: int = 200,
          **context: Any) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = templates.get_template(template).render(session=session, notice=notice, path=request.url.path,
                                                   **context)
    return HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/ops/login?" + urlencode({"next": request.url.path}), status_code=303)


def _back(path: str, notice: str, **params: str) -> RedirectResponse:
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}{urlencode({'notice': notice, **params})}", status_code=303)


def _forbidden(request: Request, session: ConsoleSession | None, detail: str) -> HTMLResponse:
    return _page(request, "error.html", session, status=403, title="Not allowed", detail=detail)


def _problem_page(request: Request, session: ConsoleSession | None, problem: Problem) -> HTMLResponse:
    detail = problem.detail or problem.title
    errors = [f"{e.field}: {e.message}" for e in problem.errors or []]
    return _page(request, "error.html", session, status=problem.status, title=problem.title, detail=detail,
                 errors=errors)


async def _form_session(request: Request, csrf: str | None) -> ConsoleSession | Response:
    """The session of a POST whose CSRF token matches (and whose Origin, when sent, is this site)."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return _forbidden(request, session, "The form came from another site.")
    if not csrf_matches(session.csrf, csrf):
        return _forbidden(request, session, "The form expired; reload the page and try again.")
    return session


# ----------------------------------------------------------------------------------------------- login

@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The console's stylesheet and script (a fixed list: no path from the URL reaches the file system)."""
    media = STATIC.get(name)
    if media is None:
        return Response(status_code=404)
    return Response((HERE / "static" / name).read_bytes(), media_type=media,
                    headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/ops") and "//" not in value and "\\" not in value else "/ops/"


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The login form; a signed nonce cookie protects it against login CSRF."""
    nonce = sign(_secret(_runtime(request)), {"n": time.time_ns()})
    response: Response = _page(request, "login.html", None, nonce=nonce, next=_safe_next(next), error=None)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=900, httponly=True, samesite="strict", secure=_secure(request),
                        path="/ops")
    return response


@router.post("/login")
async def login(request: Request, api_key: Annotated[str, Form(max_length=200)],
                nonce: Annotated[str, Form(max_length=200)], next: Annotated[str | None, Form()] = None) -> Response:
    """Verify the key; hub keys with the `ops` scope get a session cookie."""
    runtime = _runtime(request)
    secret = _secret(runtime)
    target = _safe_next(next)
    cookie_nonce = request.cookies.get(LOGIN_COOKIE)
    if unsign(secret, nonce) is None or not csrf_matches(nonce, cookie_nonce):
        return _page(request, "login.html", None, status=403, nonce=sign(secret, {"n": time.time_ns()}),
                     next=target, error="The login form expired; try again.")
    authenticator: Authenticator = request.app.state.authenticator
    caller = await authenticator.verify(api_key.strip())
    if caller is None or not caller.has_scope(OPS_SCOPE) or not caller.is_hub:
        fresh = sign(secret, {"n": time.time_ns()})
        response: Response = _page(request, "login.html", None, status=401, nonce=fresh, next=target,
                         error="That key is unknown, revoked, or lacks the ops scope of a hub organization.")
        response.set_cookie(LOGIN_COOKIE, fresh, max_age=900, httponly=True, samesite="strict",
                            secure=_secure(request), path="/ops")
        return response
    session = new_session(caller, time.time(), settings_of(runtime).session_hours)
    async with _uow(runtime) as uow:
        await record_audit(uow.session, _audit_table(), action="console.login", resource_type="api_key",
                           resource_id=caller.key_id, caller=caller)
        await uow.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, encode_session(secret, session), max_age=int(session.expires_at - time.time()),
                        httponly=True, samesite="strict", secure=_secure(request), path="/ops")
    response.delete_cookie(LOGIN_COOKIE, path="/ops")
    return response


def _audit_table() -> Any:
    from ops.models import audit_event

    return audit_event


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    """End the session."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    response = RedirectResponse("/ops/login?notice=logged-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ops")
    return response


# ------------------------------------------------------------------------------------------- overview

@router.get("/")
async def overview(request: Request) -> Response:
    """Flow overview: events per minute per topic, lag per group, dead letters, health of every service."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    monitor = monitor_of(runtime)
    now = now_utc()
    flow = await flow_data(runtime, now)
    sample = await monitor.sample()
    lag = await monitor.lag(sample, now)
    health = await monitor.health(now)
    async with _uow(runtime) as uow:
        firing = await uow.alerts.firing()
    peak = max((max(t["per_minute"]) for t in flow["topics"]), default=0)
    return _page(request, "overview.html", session, flow=flow, lag=lag, health=health, peak=peak,
                 dlq_depth=sample.dead_letter_depth, bus_errors=sample.errors, firing=firing, now=now)


# ------------------------------------------------------------------------------------------- timeline

@router.get("/timeline")
async def timeline_page(request: Request, referral_id: str | None = None, claim_id: str | None = None,
                        subject: str | None = None, member_id: str | None = None,
                        correlation_id: str | None = None) -> Response:
    """Search form and the story of one referral, claim, member or correlation id, with trace links."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    asked = {k: v for k, v in (("referral_id", referral_id), ("claim_id", claim_id), ("subject", subject),
                               ("member_id", member_id), ("correlation_id", correlation_id)) if v}
    entries: list[Any] = []
    error = None
    if asked:
        try:
            query = timeline_query(**asked)
        except Problem as problem:
            error = "; ".join(e.message for e in problem.errors or []) or problem.title
        else:
            async with _uow(runtime) as uow:
                rows = await timeline(uow, query, limit=1000)
            template = settings_of(runtime).trace_url_template
            entries = [entry_out(r, template) for r in rows]
    kind, value = next(iter(asked.items())) if asked else ("referral_id", "")
    return _page(request, "timeline.html", session, entries=entries, kind=kind, value=value, error=error,
                 asked=bool(asked))


@router.post("/timeline/member")
async def timeline_by_cin(request: Request, cin: Annotated[str, Form(max_length=20)],
                          csrf: Annotated[str | None, Form()] = None) -> Response:
    """Look a member up by CIN without putting the CIN in a URL: it becomes the internal member id here."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    try:
        member = member_id_of_cin(cin)
    except Problem as problem:
        return _problem_page(request, checked, problem)
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        await record_audit(uow.session, _audit_table(), action="timeline.member_lookup", resource_type="member",
                           resource_id=member, caller=checked.caller())
        await uow.commit()
    return RedirectResponse("/ops/timeline?" + urlencode({"member_id": member}), status_code=303)


@router.get("/events/{entry_id}")
async def event_page(request: Request, entry_id: UUID) -> Response:
    """One event with its payload (audited read)."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    try:
        async with _uow(runtime) as uow:
            entry, payload, references = await read_entry(uow, entry_id, session.caller(), now_utc())
            await uow.commit()
    except Problem as problem:
        return _problem_page(request, session, problem)
    import json

    body = payload_json(payload.value) if payload else None
    pretty = json.dumps(body, indent=2, default=str) if not isinstance(body, str) else body
    template = settings_of(runtime).trace_url_template
    return _page(request, "event.html", session, entry=entry_out(entry, template), references=references,
                 headers=payload.headers if payload else [], payload=pretty)


# ---------------------------------------------------------------------------------------- dead letters

@router.get("/dead-letters")
async def dead_letters_page(request: Request, status: str = "pending", topic: str | None = None,
                            group: str | None = None) -> Response:
    """Dead letters by status, with replay (one or many) and discard."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    if status not in DeadLetterStatus.ALL:
        status = DeadLetterStatus.PENDING
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        rows = await uow.dead_letters.listing(status=status, topic=topic or None, group=group or None, limit=200)
        outcomes = await replay_outcomes(uow, runtime.bus, rows)
        counts = {g: n for g, _, n in await uow.dead_letters.pending_counts()}
    return _page(request, "dead_letters.html", session, rows=rows, outcomes=outcomes, dl_status=status,
                 topic=topic or "", group=group or "", statuses=DeadLetterStatus.ALL, pending_by_group=counts)


@router.get("/dead-letters/{dead_letter_id}")
async def dead_letter_page(request: Request, dead_letter_id: UUID) -> Response:
    """A dead letter: the event, its error, its retry history; replay or discard."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        row = await uow.dead_letters.get(dead_letter_id)
        if row is None:
            return _problem_page(request, session, Problem(404, "dead-letter-not-found", "Dead letter not found"))
        found = await uow.journal.get(row.entry_id)
        history = await uow.dead_letters.history(row.event_id, row.consumer_group, row.entry_id)
        outcomes = await replay_outcomes(uow, runtime.bus, history)
    template = settings_of(runtime).trace_url_template
    entry = entry_out(found[0], template) if found else None
    return _page(request, "dead_letter.html", session, row=row, entry=entry, history=history, outcomes=outcomes)


@router.post("/dead-letters/replay")
async def replay_form(request: Request) -> Response:
    """Replay the selected dead letters."""
    form = await request.form()
    checked = await _form_session(request, str(form.get("csrf") or ""))
    if isinstance(checked, Response):
        return checked
    ids: list[UUID] = []
    for value in form.getlist("ids"):
        try:
            ids.append(UUID(str(value)))
        except ValueError:
            continue
    back = str(form.get("back") or "/ops/dead-letters")
    back = back if back.startswith("/ops/dead-letters") and "//" not in back else "/ops/dead-letters"
    if not ids:
        return _back(back, "nothing-replayed")
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        results = await replay_dead_letters(uow, ids[:500], checked.caller(), now_utc())
        await uow.commit()
    replayed = sum(r.outcome == "replayed" for r in results)
    return _back(back, "replayed" if replayed else "nothing-replayed")


@router.post("/dead-letters/{dead_letter_id}/discard")
async def discard_form(request: Request, dead_letter_id: UUID, reason: Annotated[str, Form(max_length=500)],
                       csrf: Annotated[str | None, Form()] = None) -> Response:
    """Discard a dead letter with a reason."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    runtime = _runtime(request)
    try:
        async with _uow(runtime) as uow:
            await discard_dead_letter(uow, dead_letter_id, reason, checked.caller(), now_utc())
            await uow.commit()
    except Problem as problem:
        return _problem_page(request, checked, problem)
    return _back(f"/ops/dead-letters/{dead_letter_id}", "discarded")


# --------------------------------------------------------------------------------------------- boards

@router.get("/boards")
async def boards_page(request: Request) -> Response:
    """SLA boards per MCP."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        boards = await compute_boards(uow, settings_of(runtime), now_utc())
    return _page(request, "boards.html", session, boards=boards, data=boards_json(boards))


# --------------------------------------------------------------------------------------------- alerts

@router.get("/alerts")
async def alerts_page(request: Request) -> Response:
    """Alert rules, what fires now, the history and the webhook destinations."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        rules = await uow.alerts.rule_rows()
        history = await uow.alerts.history(100)
        firing = await uow.alerts.firing()
        targets = await destinations(uow)
    secret = request.query_params.get("secret_for")
    return _page(request, "alerts.html", session, rules=rules, history=history, firing=firing,
                 destinations=targets, metrics=METRICS, metric_names=[m.value for m in Metric],
                 new_destination=secret)


@router.post("/alerts/rules")
async def create_rule_form(request: Request, name: Annotated[str, Form(max_length=100)],
                           metric: Annotated[str, Form(max_length=50)], threshold: Annotated[str, Form(max_length=30)],
                           comparator: Annotated[str | None, Form(max_length=10)] = None,
                           scope: Annotated[str | None, Form(max_length=200)] = None,
                           for_minutes: Annotated[int, Form(ge=0, le=10080)] = 0,
                           csrf: Annotated[str | None, Form()] = None) -> Response:
    """Create an alert rule."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    runtime = _runtime(request)
    try:
        async with _uow(runtime) as uow:
            await create_rule(uow, RuleInput(name=name, metric=metric, threshold=threshold,
                                             comparator=comparator or None, scope=scope, for_minutes=for_minutes),
                              checked.caller(), now_utc())
            await uow.commit()
    except Problem as problem:
        return _problem_page(request, checked, problem)
    return _back("/ops/alerts", "rule-created")


@router.post("/alerts/rules/{rule_id}/disable")
async def disable_rule_form(request: Request, rule_id: str, csrf: Annotated[str | None, Form()] = None) -> Response:
    """Disable an alert rule."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    try:
        async with _uow(_runtime(request)) as uow:
            await disable_rule(uow, rule_id[:40], checked.caller(), now_utc())
            await uow.commit()
    except Problem as problem:
        return _problem_page(request, checked, problem)
    return _back("/ops/alerts", "rule-disabled")


@router.post("/alerts/evaluate")
async def evaluate_form(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    """Run a monitor round now."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    await monitor_of(_runtime(request)).run_once()
    return _back("/ops/alerts", "evaluated")


@router.post("/alerts/destinations")
async def add_destination_form(request: Request, url: Annotated[str, Form(max_length=2000)],
                               description: Annotated[str | None, Form(max_length=200)] = None,
                               csrf: Annotated[str | None, Form()] = None) -> Response:
    """Add a webhook destination; its signing secret is shown once on the page that follows."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    runtime = _runtime(request)
    try:
        async with _uow(runtime) as uow:
            subscription_id, secret = await add_destination(uow, url, description or None, checked.caller(),
                                                            settings_of(runtime), now_utc())
            await uow.commit()
    except Problem as problem:
        return _problem_page(request, checked, problem)
    # Shown once, on this response only (not in a URL: it would land in history and proxy logs).
    return _page(request, "secret.html", checked, subscription_id=subscription_id, secret=secret, url=url)


@router.post("/alerts/destinations/{subscription_id}/remove")
async def remove_destination_form(request: Request, subscription_id: str,
                                  csrf: Annotated[str | None, Form()] = None) -> Response:
    """Stop sending alerts to a destination."""
    checked = await _form_session(request, csrf)
    if isinstance(checked, Response):
        return checked
    try:
        async with _uow(_runtime(request)) as uow:
            await remove_destination(uow, subscription_id[:40], checked.caller(), now_utc())
            await uow.commit()
    except Problem as problem:
        return _problem_page(request, checked, problem)
    return _back("/ops/alerts", "destination-removed")


__all__ = ["router", "trace_url", "UTC"]
