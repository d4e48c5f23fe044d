"""Logging with PHI redaction: JSON or text lines carrying trace ids, allow-listed extras and scrubbed text.

The rules, in the order the `PhiRedactionFilter` applies them to every record that reaches the root handler:

1. `extra` keys not on the allow-list (`is_safe_extra_key`) are dropped; allowed values are scrubbed.
2. `%`-args are redacted to "[REDACTED]" unless they are of a safe type (int, float, Decimal, UUID, bool,
   enum, None, `SafeStr`); a `Phi` value renders "[PHI]". Only loggers of trusted third-party libraries
   that log operational data (uvicorn, aiokafka, asyncio, ...) keep their args; everything else, the `calhub`
   tree included, is redacted, because a name cannot be recognised by pattern.
3. The rendered message, exception traceback and stack are scrubbed of what patterns can catch: CIN, BIC id,
   SSN, dates, phone numbers, emails, pydantic `input_value=...`, SQL parameters and PostgreSQL key details.

So message templates are constants: never build a log message with an f-string, `%` or `.format()` (a name
in it cannot be caught); tests/unit/test_no_fstring_logging.py enforces this in shared/ and services/.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import IO, Any, Generic, Literal, TypeVar
from uuid import UUID

from opentelemetry import trace

T = TypeVar("T")

REDACTED = "[REDACTED]"
PHI_MARK = "[PHI]"


class Phi(Generic[T]):
    """A value marked as PHI: it renders "[PHI]" in str(), repr() and format(); `.value` unwraps it."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __str__(self) -> str:
        return PHI_MARK

    def __repr__(self) -> str:
        return PHI_MARK

    def __format__(self, format_spec: str) -> str:
        return PHI_MARK


def phi(value: T) -> Phi[T]:
    """Mark a value as PHI so that it can never be rendered into a log line, error or repr."""
    return Phi(value)


class SafeStr(str):
    """A string known to be an id or code, never PHI (an event type, an MCP code, a file id).

    Wrap only values CalHub generates or takes from code lists; never a CIN, name or free text.
    """

    __slots__ = ()


# ---------------------------------------------------------------------------------------------- scrubbing

_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0[1-9]|1[0-2])"
_YEAR = r"(?:19|20)[0-9]{2}"

# Order matters: the structured leaks first (they may contain any of the later patterns), BIC before CIN.
_SCRUB_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # pydantic ValidationError text: "[type=..., input_value='Maria Lopez', input_type=str]".
    (re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL), "input_value=" + REDACTED),
    # SQLAlchemy statement errors print the bound parameters on their own line.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: " + REDACTED + "]"),
    # PostgreSQL constraint details: "Key (cin)=(12345678A) already exists", "Failing row contains (...)".
    (re.compile(r"Key \(([^)\n]*)\)=\([^\n]*?\)(?= already exists| is not present|\.|$)", re.MULTILINE),
     r"Key (\1)=(" + REDACTED + ")"),
    (re.compile(r"Failing row contains \([^\n]*"), "Failing row contains (" + REDACTED + ")"),
    # Benefits Identification Card id: the 9-character CIN followed by a check digit and issue date.
    (re.compile(r"\b[0-9]{8}[A-Z][0-9A-Z]{5}\b"), "[BIC]"),
    (re.compile(r"\b[0-9]{8}[A-Z]\b"), "[CIN]"),
    (re.compile(r"(?<![0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9])"), "[SSN]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[EMAIL]"),
    # Any calendar date may be a birth date: ISO, US and the X12 CCYYMMDD form (DMG*D8 carries a birth date).
    (re.compile(rf"(?<![0-9]){_YEAR}-{_MONTH}-{_DAY}(?![0-9])"), "[DATE]"),
    (re.compile(rf"(?<![0-9]){_MONTH}/{_DAY}/{_YEAR}(?![0-9])"), "[DATE]"),
    # The compact form stands alone (X12 elements, file names); inside a token it is a run of a hex id.
    (re.compile(rf"(?<![0-9A-Za-z]){_YEAR}{_MONTH}{_DAY}(?![0-9A-Za-z])"), "[DATE]"),
    # North American phone numbers with separators; bare 10-digit runs are NPIs, epoch seconds and offsets.
    (re.compile(r"(?<![\w-])(?:\+?1[-. ]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[-. ])[0-9]{3}[-. ][0-9]{4}(?![\w-])"),
     "[PHONE]"),
)


def scrub(text: str) -> str:
    """Replace what looks like PHI (CIN, BIC, SSN, email, dates, phone numbers, echoed values) in text."""
    for pattern, replacement in _SCRUB_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# ------------------------------------------------------------------------------------------------ extras

SAFE_EXTRA_KEYS: frozenset[str] = frozenset({
    "service", "topic", "topics", "partition", "partitions", "offset", "group", "consumer_group",
    "event_type",
    "status", "status_code", "mcp_code", "error_type", "duration_ms", "duration_s", "seconds", "count",
    "attempt", "attempts", "gave_up", "batch_size", "retry_in_s", "method", "route", "scope", "scopes",
    "rule", "rules", "field", "fields", "kind", "state", "action", "resource_type", "schema_version",
    "timer_kind", "lag", "size", "bytes", "rows", "limit", "mode", "reason", "profile", "direction",
})
# Ids, codes, counts and durations are safe by name, unless the name says it carries a member identifier.
_SAFE_KEY_SUFFIXES = ("_id", "_ids", "_code", "_codes", "_count", "_type", "_kind", "_ms", "_s", "_seconds",
                      "_size", "_status", "_state", "_total")
_PHI_KEY_TOKENS = frozenset({
    "cin", "bic", "dob", "ssn", "zip", "postal", "street", "subscriber", "patient", "mrn", "diagnosis", "icd",
    "body", "payload", "medical", "sex", "gender", "race"})
_PHI_KEY_FRAGMENTS = ("name", "birth", "phone", "email", "address", "member_number")

_STANDARD_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "trace_id", "span_id"}


def is_phi_key(key: str) -> bool:
    """True if a field or key name says it holds member data (`member_name`, `cin`, `dob`, `phone`...)."""
    lowered = key.lower()
    if any(token in _PHI_KEY_TOKENS for token in re.split(r"[_.\-]", lowered)):
        return True
    return any(fragment in lowered for fragment in _PHI_KEY_FRAGMENTS)


def is_safe_extra_key(key: str) -> bool:
    """True if an `extra` key may be logged: on the allow-list, or an id/code/count/duration by its suffix."""
    lowered = key.lower()
    if lowered in SAFE_EXTRA_KEYS:
        return True
    return not is_phi_key(lowered) and lowered.endswith(_SAFE_KEY_SUFFIXES)


def _safe_extra_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, Phi):
        return PHI_MARK
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return _safe_extra_value(value.value, depth + 1) if depth < 3 else REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset) and depth < 2:
        return [_safe_extra_value(item, depth + 1) for item in list(value)[:100]]
    # Arbitrary objects (a Member, a dict of fields) may render PHI in their repr.
    return REDACTED


# -------------------------------------------------------------------------------------------------- args

_SAFE_ARG_TYPES: tuple[type, ...] = (int, float, Decimal, UUID, bool, enum.Enum, SafeStr, type(None))

# Third-party trees whose log args are operational (addresses, ports, topics), never a member's data.
DEFAULT_TRUSTED_LOGGERS: tuple[str, ...] = (
    "uvicorn", "aiokafka", "kafka", "asyncio", "alembic", "opentelemetry", "watchfiles")

_CONVERSION = re.compile(
    r"%(\([^)]*\))?[#0 +\-]*(?:\*|[0-9]+)?(?:\.(?:\*|[0-9]+))?[hlL]?([diouxXeEfFgGcrsa%])")


def _safe_arg(arg: Any) -> Any:
    if isinstance(arg, Phi):
        return PHI_MARK
    if isinstance(arg, _SAFE_ARG_TYPES):
        return arg
    return REDACTED


def _render(msg: str, args: Any) -> str:
    """`msg % args` as logging does, falling back to %s conversions when a redacted arg broke a %d."""
    if not args:
        return msg
    try:
        return str(msg % args)
    except (TypeError, ValueError, KeyError):
        pass
    as_strings = _CONVERSION.sub(lambda m: "%%" if m.group(2) == "%" else f"%{m.group(1) or ''}s", msg)
    try:
        if isinstance(args, Mapping):
            return as_strings % {k: str(v) for k, v in args.items()}
        return as_strings % tuple(str(a) for a in args)
    except (TypeError, ValueError, KeyError):
        return msg + " [unformattable log arguments]"


# ------------------------------------------------------------------------------------------- exceptions

def _exception_message(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__.endswith(("ValidationError", "ValidationException")):
        # pydantic and FastAPI validation errors print the offending input; list locations and rules only.
        try:
            items = list(errors())
        except Exception:  # a summary must never fail the log call
            items = []
        summary = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('type', '?')}"
            for item in items[:20] if isinstance(item, Mapping))
        return f"{len(items)} validation error(s): {summary}"
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the traceback
        return "<unprintable>"


def _format_one(exc: BaseException, depth: int) -> list[str]:
    lines = ["Traceback (most recent call last):\n"] if exc.__traceback__ is not None else []
    lines.extend(traceback.format_tb(exc.__traceback__))
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    message = _exception_message(exc)
    lines.append(f"{name}: {message}\n" if message else f"{name}\n")
    if isinstance(exc, BaseExceptionGroup) and depth < 3:
        for index, inner in enumerate(exc.exceptions[:10], start=1):
            block = "".join(format_exception_chain(inner, depth + 1))
            lines.append(f"+---- sub-exception {index} ----\n")
            lines.extend("| " + line + "\n" for line in block.splitlines())
    return lines


def format_exception_chain(exc: BaseException, depth: int = 0) -> list[str]:
    """Traceback lines of an exception and its causes, with validation errors summarised (not scrubbed)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 10:
        seen.add(id(current))
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    lines: list[str] = []
    for earlier, later in zip(reversed(chain), list(reversed(chain))[1:] + [None], strict=True):
        lines.extend(_format_one(earlier, depth))
        if later is not None:
            lines.append("\nThe above exception was the direct cause of the following exception:\n\n"
                         if later.__cause__ is earlier else
                         "\nDuring handling of the above exception, another exception occurred:\n\n")
    return lines


def format_exception(exc: BaseException) -> str:
    """A traceback safe to log: validation inputs summarised away, then scrubbed of PHI patterns."""
    return scrub("".join(format_exception_chain(exc)).rstrip("\n"))


# ------------------------------------------------------------------------------------------------ filters

class PhiRedactionFilter(logging.Filter):
    """Drops unsafe `extra` keys, redacts unsafe args and scrubs message and traceback (see module doc).

    Install it on handlers (filters on a logger do not see records propagated from child loggers). The record
    is rewritten in place and its `exc_info` replaced by the scrubbed `exc_text`, so handlers after this one
    see only the redacted record.
    """

    def __init__(self, trusted_loggers: Iterable[str] = DEFAULT_TRUSTED_LOGGERS) -> None:
        super().__init__()
        self.trusted_loggers = tuple(trusted_loggers)

    def _trusted(self, name: str) -> bool:
        return any(name == t or name.startswith(t + ".") for t in self.trusted_loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; always lets it through."""
        if getattr(record, "_phi_redacted", False):
            return True
        self._attach_trace(record)
        self._redact_extras(record)
        self._redact_message(record)
        self._redact_exception(record)
        record._phi_redacted = True
        return True

    @staticmethod
    def _attach_trace(record: logging.LogRecord) -> None:
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:  # set explicitly (e.g. the 500 handler's incident id)
            record.trace_id = str(trace_id)
            record.span_id = getattr(record, "span_id", None)
            return
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = None
            record.span_id = None

    @staticmethod
    def _redact_extras(record: logging.LogRecord) -> None:
        for key in [k for k in record.__dict__ if k not in _STANDARD_RECORD_KEYS and not k.startswith("_")]:
            if is_safe_extra_key(key):
                setattr(record, key, _safe_extra_value(record.__dict__[key]))
            else:
                delattr(record, key)

    def _redact_message(self, record: logging.LogRecord) -> None:
        msg: Any = record.msg
        args: Any = record.args
        trusted = self._trusted(record.name)
        if not isinstance(msg, str):
            safe = trusted or isinstance(msg, _SAFE_ARG_TYPES) or isinstance(msg, Phi)
            msg = str(msg) if safe else REDACTED
        if args and not trusted:
            if isinstance(args, Mapping):
                args = {key: _safe_arg(value) for key, value in args.items()}
            else:
                args = tuple(_safe_arg(value) for value in args)
        record.msg = scrub(_render(msg, args))
        record.args = None

    @staticmethod
    def _redact_exception(record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = format_exception(record.exc_info[1])
            # Handlers after this one must not format the raw exception again.
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)


class AccessLogQueryFilter(logging.Filter):
    """Strips the query string from uvicorn access log lines (a query may carry a CIN or a name)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path argument of a uvicorn access record without its query; always lets it through."""
        args = record.args
        # uvicorn: '%s - "%s %s HTTP/%s" %d' % (client, method, path_with_query, http_version, status)
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


# ---------------------------------------------------------------------------------------------- formatters

def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items()
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id, span_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the (already redacted) record as a JSON line."""
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines: `time level logger: message key=value ... [trace=...]` and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the (already redacted) record as text."""
        parts = [_timestamp(record), f"{record.levelname:<7}", f"{record.name}:", record.getMessage()]
        parts.extend(f"{key}={value}" for key, value in _extras(record).items())
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            parts.append(f"trace_id={trace_id}")
        text = " ".join(parts)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        return text


# ---------------------------------------------------------------------------------------------- configure

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(level: str | int = "INFO", fmt: Literal["json", "text"] = "json", *,
                      stream: IO[str] | None = None,
                      trusted_loggers: Iterable[str] = DEFAULT_TRUSTED_LOGGERS) -> logging.Handler:
    """Send every log record through one redacting root handler, in JSON lines or text; returns the handler.

    Idempotent: a handler installed by an earlier call is replaced. Uvicorn's own handlers are removed so its
    records reach the root handler too: run uvicorn with `log_config=None`, or call this after it started.
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_calhub_handler", False):
            root.removeHandler(existing)
            existing.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(PhiRedactionFilter(trusted_loggers))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._calhub_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        for existing in list(uvicorn_logger.handlers):
            uvicorn_logger.removeHandler(existing)
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogQueryFilter) for f in access.filters):
        access.addFilter(AccessLogQueryFilter())
    return handler
