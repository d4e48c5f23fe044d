"""RFC 9457 problem+json for every CalHub API: the `Problem` exception and the handlers that render errors.

Errors name the field and the rule but never echo a submitted value: a rejected value may be a CIN, a name or
a birth date, and error bodies end up in client logs.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import scrub

log = logging.getLogger("calhub.problems")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://calhub.dev/problems/"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors", "trace_id"})


class FieldError(BaseModel):
    """One violated rule: where (a dotted field path) and which rule, in words a person can act on."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(description="Dotted path into the body (`member.cin`, `lines[0].code`); "
                                   "parameters are prefixed by their location (`query.limit`, "
                                   "`header.Idempotency-Key`).",
                       examples=["member.cin"])
    rule: str = Field(description="Machine name of the rule (`required`, `pattern`, `npi_check_digit`).",
                      examples=["pattern"])
    message: str = Field(description="What is wrong, without the submitted value.",
                         examples=["String should match pattern '^[0-9]{8}[A-Z]$'"])


class ProblemDetails(BaseModel):
    """The problem+json body (RFC 9457); use in OpenAPI `responses=` via `problem_responses(...)`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="URI identifying the problem type.",
                      examples=[PROBLEM_TYPE_BASE + "validation-failed"])
    title: str = Field(description="Short summary of the problem type.",
                       examples=["Request validation failed"])
    status: int = Field(description="HTTP status code.", examples=[422])
    detail: str | None = Field(None, description="Explanation of this occurrence (never contains PHI).")
    instance: str | None = Field(None, description="URI of this occurrence, when there is one.")
    errors: list[FieldError] | None = Field(None, description="Every field that failed validation.")
    trace_id: str | None = Field(None, description="Trace id to quote to support.")


def problem_type(slug: str) -> str:
    """The problem type URI for a slug (`referral-not-found`); raises ValueError for a malformed slug."""
    if not _SLUG.match(slug):
        raise ValueError(f"problem slug must be kebab-case: {slug!r}")
    return PROBLEM_TYPE_BASE + slug


class Problem(Exception):
    """An error answered as problem+json: raise it from routes, dependencies and service code.

    `detail`, `errors` and `extra` members must not contain PHI (they are sent to the client and may be
    logged by it); name fields and rules, never the submitted values.
    """

    def __init__(self, status: int, slug: str, title: str, detail: str | None = None, *,
                 errors: Iterable[FieldError] | None = None, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        clash = _RESERVED_MEMBERS.intersection(extra)
        if clash:
            raise ValueError(f"extra problem members clash with standard members: {sorted(clash)}")
        super().__init__(title)  # str(problem) is the title only: tracebacks never show the detail
        self.status = status
        self.slug = slug
        self.type = problem_type(slug)
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = extra

    def details(self, *, trace_id: str | None = None) -> ProblemDetails:
        """The body of this problem; detail and messages are scrubbed of PHI patterns as a second line."""
        errors = None if self.errors is None else [
            FieldError(field=e.field, rule=e.rule, message=scrub(e.message)) for e in self.errors]
        return ProblemDetails(type=self.type, title=self.title, status=self.status,
                              detail=scrub(self.detail) if self.detail else self.detail, errors=errors,
                              trace_id=trace_id, **self.extra)


def validation_problem(errors: Sequence[FieldError], detail: str | None = None) -> Problem:
    """A 422 listing domain rule violations, shaped like a request validation failure."""
    return Problem(422, "validation-failed", "Request validation failed",
                   detail or f"{len(errors)} field(s) failed validation.", errors=errors)


class ProblemResponse(JSONResponse):
    """A JSON response with the problem+json media type."""

    media_type = PROBLEM_MEDIA_TYPE


def problem_response(problem: Problem, *, trace_id: str | None = None) -> ProblemResponse:
    """Render a Problem as a response (trace id of the current span unless given)."""
    body = problem.details(trace_id=trace_id or current_trace_id())
    return ProblemResponse(body.model_dump(mode="json", exclude_none=True), status_code=problem.status,
                           headers=problem.headers or None)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json bodies for the given statuses."""
    return {
        status: {
            "model": ProblemDetails,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
        }
        for status in statuses
    }


_PROBLEM_REF = "#/components/schemas/ProblemDetails"
_FASTAPI_422_REF = "#/components/schemas/HTTPValidationError"


def _document_problems(app: FastAPI) -> None:
    """Make the app's OpenAPI say what the handlers do: problem+json error bodies, including every 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(problem_schema.pop("$defs", {}))
        components["ProblemDetails"] = problem_schema
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict):
                    continue
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    fastapi_422 = content.get("application/json", {}).get("schema", {}).get("$ref")
                    if str(status) == "422" and fastapi_422 == _FASTAPI_422_REF:
                        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}
                    elif PROBLEM_MEDIA_TYPE in content:
                        content.pop("application/json", None)  # added by FastAPI for `model`
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def current_trace_id() -> str | None:
    """The trace id of the active span as 32 hex digits, or None when nothing is being traced."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


# ------------------------------------------------------------------------------------ request validation

# Short rule names for the common pydantic error types; other types (including custom ones raised with
# PydanticCustomError, e.g. "npi_check_digit") are passed through as the rule.
_RULE_NAMES = {
    "missing": "required",
    "string_pattern_mismatch": "pattern",
    "string_too_short": "min_length",
    "string_too_long": "max_length",
    "too_short": "min_items",
    "too_long": "max_items",
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
    "extra_forbidden": "unknown_field",
    "json_invalid": "json",
    "literal_error": "enum",
    "enum": "enum",
}


def field_path(loc: Sequence[str | int]) -> str:
    """`("body", "member", "cin")` → `member.cin`; list indexes as `[0]`; non-body locations keep a prefix."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _leaf_texts(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return [value] if len(value) >= 2 else []
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        text = str(value)
        return [text] if len(text) >= 2 else []
    if depth >= 4:
        return []
    if isinstance(value, Mapping):
        return [t for item in list(value.values())[:200] for t in _leaf_texts(item, depth + 1)]
    if isinstance(value, list | tuple | set | frozenset):
        return [t for item in list(value)[:200] for t in _leaf_texts(item, depth + 1)]
    return []


def _safe_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "")).strip() or "Invalid value."
    # A custom validator may have put the value in its message ("bad name Maria"): then say nothing specific.
    lowered = message.lower()
    if any(text.lower() in lowered for text in _leaf_texts(error.get("input"))):
        return f"Value is not valid ({error.get('type', 'invalid')})."
    return scrub(message)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Map pydantic/FastAPI error dicts to FieldErrors without the submitted input."""
    mapped: list[FieldError] = []
    for error in errors:
        error_type = str(error.get("type", "invalid"))
        loc = tuple(error.get("loc", ()))
        if error_type == "json_invalid":
            loc = ("body",)  # the loc holds a character position, not a field
        mapped.append(FieldError(field=field_path(loc), rule=_RULE_NAMES.get(error_type, error_type),
                                 message=_safe_message(error)))
    return mapped


# --------------------------------------------------------------------------------------------- handlers

_HTTP_SLUGS = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
               413: "payload-too-large"}


def _status_slug(status: int) -> str:
    if status in _HTTP_SLUGS:
        return _HTTP_SLUGS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http-error"
    return re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-") or "http-error"


async def _handle_problem(_request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _handle_validation(_request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem_response(validation_problem(errors))


async def _handle_http(_request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "HTTP error"
    # Only a string detail that says more than the phrase is kept (and scrubbed); dict details may hold data.
    detail = scrub(exc.detail) if isinstance(exc.detail, str) and exc.detail != title else None
    problem = Problem(exc.status_code, _status_slug(exc.status_code), title, detail,
                      headers=dict(exc.headers or {}))
    return problem_response(problem)


def internal_error_response(exc: BaseException, *, route: str | None = None,
                            method: str | None = None) -> ProblemResponse:
    """Log an unexpected exception (scrubbed traceback) and answer a generic 500 carrying the trace id."""
    trace_id = current_trace_id() or uuid.uuid4().hex  # an incident id that ties the answer to the log line
    span = trace.get_current_span()
    if span.is_recording():
        span.set_status(trace.StatusCode.ERROR)
        span.set_attribute("error.type", type(exc).__qualname__)  # the type only: messages may carry PHI
    log.error("unhandled error in request", exc_info=exc,
              extra={"error_type": type(exc).__qualname__, "trace_id": trace_id, "route": route,
                     "method": method})
    problem = Problem(500, "internal-error", "Internal server error",
                      "An unexpected error occurred; quote the trace id when reporting it.")
    return problem_response(problem, trace_id=trace_id)


async def _handle_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    return internal_error_response(exc, route=_route_template(request.scope), method=request.method)


def _route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class UnhandledErrorMiddleware:
    """Turns any exception that escaped the route into a 500 problem, logged once and not re-raised.

    Starlette's own 500 handler re-raises so the server logs the exception again, unredacted by our rules
    when the server logs through its own handlers; this one stops it here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer a problem if it raises before starting its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise  # too late for a problem body; the server closes the connection
            response = internal_error_response(exc, route=_route_template(scope), method=scope.get("method"))
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of the app as problem+json: Problem, validation (422), HTTP errors, and 500s."""
    app.add_exception_handler(Problem, _handle_problem)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    # Errors raised outside the routes (in user middleware) reach Starlette's ServerErrorMiddleware.
    app.add_exception_handler(Exception, _handle_unexpected)
    app.add_middleware(UnhandledErrorMiddleware)
    _document_problems(app)
