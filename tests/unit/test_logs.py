"""PHI never reaches a log line: args, extras, f-string messages, tracebacks and access logs are redacted."""

from __future__ import annotations

import enum
import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from uuid import UUID

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import (
    PHI_MARK,
    REDACTED,
    AccessLogQueryFilter,
    SafeStr,
    configure_logging,
    format_exception,
    is_safe_extra_key,
    phi,
    scrub,
)

CIN = "91234567A"
NAME = "Maria Lopez"
BIRTH_DATE = "1984-03-09"


@pytest.fixture(params=["json", "text"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Root logging configured into a buffer, in each format; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for handler in saved_handlers:
        root.removeHandler(handler)
    # A uvicorn started by an earlier test in this process (log_level="warning") leaves its loggers' levels set;
    # these tests log through them at INFO, so they start from no level of their own.
    uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved_uvicorn_levels = [logger.level for logger in uvicorn_loggers]
    for logger in uvicorn_loggers:
        logger.setLevel(logging.NOTSET)
    buffer = io.StringIO()
    handler = configure_logging("DEBUG", request.param, stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for saved in saved_handlers:
            root.addHandler(saved)
        root.setLevel(saved_level)
        for logger, level in zip(uvicorn_loggers, saved_uvicorn_levels, strict=True):
            logger.setLevel(level)


def assert_no_phi(text: str) -> None:
    for value in (CIN, NAME, "Maria", "Lopez", BIRTH_DATE, "03/09/1984", "19840309"):
        assert value not in text


def test_a_log_call_given_a_cin_a_name_and_a_birth_date_prints_none_of_them(log_output: io.StringIO) -> None:
    log = logging.getLogger("calhub.referrals.api")
    log.info("referral for %s %s born %s", CIN, NAME, BIRTH_DATE)
    log.info("referral received", extra={"cin": CIN, "member_name": NAME, "dob": BIRTH_DATE,
                                          "referral_id": "ref_1"})
    log.warning(f"referral for {CIN} born {BIRTH_DATE}")  # the point of the test
    log.info("member %(name)s born %(dob)s", {"name": NAME, "dob": BIRTH_DATE})
    output = log_output.getvalue()
    assert_no_phi(output)
    assert output.count("referral for") == 2
    assert "[CIN]" in output and "[DATE]" in output
    assert "ref_1" in output  # the safe extra survived


def test_args_of_safe_types_are_kept_and_the_template_too(log_output: io.StringIO) -> None:
    class Status(enum.Enum):
        OPEN = "open"

    logging.getLogger("calhub.claims").info(
        "batch %s: %d claims, %.2f total, %s, %s, %s", SafeStr("batch_7"), 12, Decimal("10.50"),
        UUID(int=5), Status.OPEN, True)
    output = log_output.getvalue()
    assert "batch batch_7: 12 claims, 10.50 total, 00000000-0000-0000-0000-000000000005, Status.OPEN, True" \
        in output


def test_an_unsafe_arg_under_a_numeric_conversion_does_not_break_the_line(log_output: io.StringIO) -> None:
    logging.getLogger("calhub.claims").info("%d units for %s", "12", NAME)
    output = log_output.getvalue()
    assert f"{REDACTED} units for {REDACTED}" in output
    assert "Logging error" not in output


def test_phi_wrapped_values_render_as_a_mark(log_output: io.StringIO) -> None:
    name = phi(NAME)
    assert str(name) == repr(name) == f"{name}" == f"{name:>20}" == PHI_MARK
    assert name.value == NAME
    logging.getLogger("uvicorn.error").info("name %s", name)  # a trusted logger keeps args: still masked
    logging.getLogger("calhub.x").info("name %s", name, extra={"member_id": name})
    output = log_output.getvalue()
    assert_no_phi(output)
    assert output.count(PHI_MARK) == 3


def test_non_calhub_loggers_are_redacted_too_unless_trusted(log_output: io.StringIO) -> None:
    logging.getLogger("sqlalchemy.engine").info("[generated] %r", (CIN, NAME))
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s://%s:%d", "http", "0.0.0.0", 8000)
    output = log_output.getvalue()
    assert_no_phi(output)
    assert "Uvicorn running on http://0.0.0.0:8000" in output


def test_exception_tracebacks_are_scrubbed(log_output: io.StringIO) -> None:
    try:
        raise ValueError(f"no eligibility for {CIN} born {BIRTH_DATE}")
    except ValueError:
        logging.getLogger("calhub.eligibility").exception("check failed")
    output = log_output.getvalue()
    assert_no_phi(output)
    assert "ValueError: no eligibility for [CIN] born [DATE]" in output.replace("\\n", "\n")
    assert "test_exception_tracebacks_are_scrubbed" in output  # the frames are still there


def test_pydantic_validation_errors_do_not_echo_the_input() -> None:
    from pydantic import BaseModel, ValidationError

    class Member(BaseModel):
        cin: int
        name: int

    with pytest.raises(ValidationError) as caught:
        Member(cin=CIN, name=NAME)
    text = format_exception(caught.value)
    assert_no_phi(text)
    assert "cin: int_parsing" in text and "name: int_parsing" in text


def test_database_error_texts_lose_their_parameters() -> None:
    text = scrub('duplicate key value violates unique constraint "uq_member_cin"\n'
                 f"DETAIL:  Key (name, city)=({NAME}, Fresno) already exists.\n"
                 "[SQL: INSERT INTO member (cin, name) VALUES ($1, $2)]\n"
                 f"[parameters: ('{CIN}', '{NAME}')]")
    assert_no_phi(text)
    assert "Key (name, city)=([REDACTED]) already exists" in text


@pytest.mark.parametrize(("text", "expected"), [
    (f"cin {CIN}.", "cin [CIN]."),
    ("bic 91234567A12345 issued", "bic [BIC] issued"),
    ("ssn 123-45-6789", "ssn [SSN]"),
    ("mail maria.lopez@example.org now", "mail [EMAIL] now"),
    ("dob 03/09/1984", "dob [DATE]"),
    ("DMG*D8*19840309*F~", "DMG*D8*[DATE]*F~"),
    ("call (559) 555-0100 or 559-555-0100 or +1 559.555.0100", "call [PHONE] or [PHONE] or [PHONE]"),
    ("npi 1234567893, offset 1714000000, id 0190f3a2-7c1d-7e2a-8f00-1b2c3d4e5f60",
     "npi 1234567893, offset 1714000000, id 0190f3a2-7c1d-7e2a-8f00-1b2c3d4e5f60"),
    # A hex id may hold a date-shaped run of digits: it is an id, not a birth date (the audit guard refused it).
    ("file rmf_019aa3f2c20240115e7d2b9f0a1c4d5e6", "file rmf_019aa3f2c20240115e7d2b9f0a1c4d5e6"),
    ("MIF_LAC_20241101.csv", "MIF_LAC_[DATE].csv"),
])
def test_scrub_catches_identifiers_and_spares_operational_numbers(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(("key", "safe"), [
    ("referral_id", True), ("topic", True), ("mcp_code", True), ("error_type", True), ("count", True),
    ("member_id", True), ("member_name", False), ("cin", False), ("subscriber_id", False), ("dob", False),
    ("birth_date", False), ("phone", False), ("first_name", False), ("free_text", False), ("user", False),
])
def test_extra_keys_pass_only_when_safe_by_name(key: str, safe: bool) -> None:
    assert is_safe_extra_key(key) is safe


def test_json_lines_carry_the_trace_and_span_ids(log_output: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("calhub.x").info("inside", extra={"topic": "claims.claim.v1", "partition": 3})
        context = span.get_span_context()
    lines = [line for line in log_output.getvalue().splitlines() if "inside" in line]
    assert format(context.trace_id, "032x") in lines[0]
    if lines[0].startswith("{"):
        record = json.loads(lines[0])
        assert record["span_id"] == format(context.span_id, "016x")
        assert record["level"] == "INFO" and record["logger"] == "calhub.x"
        assert record["topic"] == "claims.claim.v1" and record["partition"] == 3


def test_access_log_lines_lose_their_query_string(log_output: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET",
                                             f"/v1/members?cin={CIN}&name=Maria+Lopez", "1.1", 200)
    output = log_output.getvalue()
    assert 'GET /v1/members HTTP/1.1' in output
    assert_no_phi(output)


def test_access_filter_leaves_other_records_alone() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "%s", ("x?y",), None)
    assert AccessLogQueryFilter().filter(record)
    assert record.args == ("x?y",)
