"""Every error of an app answers RFC 9457 problem+json: all fields listed, named by path and rule, no echo."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Header
from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from shared.logs import configure_logging
from shared.problems import (
    PROBLEM_MEDIA_TYPE,
    FieldError,
    Problem,
    field_path,
    install_problem_handlers,
    problem_responses,
    validation_problem,
)

CIN = "91234567A"
NAME = "Maria Lopez"


class Member(BaseModel):
    cin: str = Field(pattern=r"^[0-9]{8}[A-Z]$")
    name: str = Field(min_length=1)
    birth_date: str

    @field_validator("name")
    @classmethod
    def _no_digits(cls, value: str) -> str:
        if any(c.isdigit() for c in value):
            raise ValueError(f"name {value} has digits")  # a careless message that quotes the input
        return value


class Line(BaseModel):
    code: str = Field(pattern=r"^[A-Z][0-9]{4}$")
    units: int = Field(gt=0)


class Referral(BaseModel):
    member: Member
    npi: str
    lines: list[Line]

    @field_validator("npi")
    @classmethod
    def _npi_check_digit(cls, value: str) -> str:
        if not value.endswith("3"):
            raise PydanticCustomError("npi_check_digit", "NPI check digit does not match")
        return value


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/referrals", responses=problem_responses(409, 422))
    async def submit(referral: Referral, limit: int = 10,
                     token: str | None = Header(None, alias="X-Token", max_length=4)) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/conflict")
    async def conflict() -> None:
        raise Problem(409, "referral-already-open", "Referral already open",
                      "An open referral exists for this member and service.", referral_id="ref_1")

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError(f"lookup failed for {CIN} {NAME}")

    @app.get("/v1/rules")
    async def rules() -> None:
        violation = FieldError(field="member.cin", rule="eligibility", message="Not eligible.")
        raise validation_problem([violation])

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions stays on: the 500 is answered and the exception does not escape the app.
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://calhub.test") as http:
        yield http


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for handler in saved_handlers:
        root.removeHandler(handler)
    buffer = io.StringIO()
    handler = configure_logging("INFO", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for saved in saved_handlers:
            root.addHandler(saved)
        root.setLevel(saved_level)


async def test_validation_lists_every_error_by_field_path_and_rule_without_the_input(
        client: httpx.AsyncClient) -> None:
    body = {"member": {"cin": "1234", "name": "Maria 2", "birth_date": None}, "npi": "1234567890",
            "lines": [{"code": "T1016", "units": 1}, {"code": "bad", "units": 0}]}
    response = await client.post("/v1/referrals?limit=x", json=body, headers={"X-Token": "toolong"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["type"] == "https://calhub.dev/problems/validation-failed"
    assert problem["status"] == 422 and problem["title"] == "Request validation failed"
    found = {(e["field"], e["rule"]) for e in problem["errors"]}
    assert found == {
        ("query.limit", "int_parsing"),
        ("header.X-Token", "max_length"),
        ("member.cin", "pattern"),
        ("member.name", "value_error"),
        ("member.birth_date", "string_type"),
        ("npi", "npi_check_digit"),
        ("lines[1].code", "pattern"),
        ("lines[1].units", "gt"),
    }
    text = response.text
    for submitted in ("1234\"", "Maria", "toolong", "1234567890", "\"bad\""):
        assert submitted not in text
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert messages["npi"] == "NPI check digit does not match"
    assert messages["member.name"] == "Value is not valid (value_error)."


async def test_missing_and_malformed_bodies_are_named_body(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/referrals")
    assert missing.json()["errors"] == [{"field": "body", "rule": "required", "message": "Field required"}]
    malformed = await client.post("/v1/referrals", content=b'{"member": ' + CIN.encode(),
                                  headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    assert [e["field"] for e in malformed.json()["errors"]] == ["body"]
    assert CIN not in malformed.text


async def test_problem_exceptions_keep_status_type_and_extra_members(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/conflict")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    # A trace id is added whenever a tracer provider records spans (another test may have installed one).
    body.pop("trace_id", None)
    assert body == {"type": "https://calhub.dev/problems/referral-already-open",
                               "title": "Referral already open", "status": 409,
                               "detail": "An open referral exists for this member and service.",
                               "referral_id": "ref_1"}


async def test_domain_rule_violations_look_like_request_validation(client: httpx.AsyncClient) -> None:
    problem = (await client.get("/v1/rules")).json()
    assert problem["status"] == 422
    assert problem["errors"] == [{"field": "member.cin", "rule": "eligibility", "message": "Not eligible."}]


async def test_unknown_routes_and_wrong_methods_are_problems(client: httpx.AsyncClient) -> None:
    not_found = await client.get(f"/v1/members/{CIN}")
    assert not_found.status_code == 404
    assert not_found.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert not_found.json()["type"] == "https://calhub.dev/problems/not-found"
    wrong_method = await client.delete("/v1/referrals")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["title"] == "Method Not Allowed"


async def test_unexpected_errors_are_a_generic_500_with_a_trace_id_and_a_scrubbed_log(
        client: httpx.AsyncClient, logged: io.StringIO) -> None:
    response = await client.get("/v1/boom")
    assert response.status_code == 500
    problem = response.json()
    assert problem["type"] == "https://calhub.dev/problems/internal-error"
    assert len(problem["trace_id"]) == 32
    assert "lookup failed" not in response.text and CIN not in response.text
    log_text = logged.getvalue()
    assert problem["trace_id"] in log_text
    assert "RuntimeError" in log_text and CIN not in log_text


def test_openapi_documents_problem_json_for_errors() -> None:
    schema = make_app().openapi()
    responses = schema["paths"]["/v1/referrals"]["post"]["responses"]
    for status in ("409", "422"):
        assert list(responses[status]["content"]) == [PROBLEM_MEDIA_TYPE]
    assert "ProblemDetails" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_field_paths_drop_the_body_prefix_and_index_lists() -> None:
    assert field_path(("body", "member", "cin")) == "member.cin"
    assert field_path(("body", "lines", 0, "code")) == "lines[0].code"
    assert field_path(("query", "limit")) == "query.limit"
    assert field_path(("body",)) == "body"


def test_problem_text_is_its_title_only_and_reserved_members_are_refused() -> None:
    assert str(Problem(404, "referral-not-found", "Referral not found", "ref_1 is not visible")) == \
        "Referral not found"
    with pytest.raises(ValueError, match="clash"):
        Problem(400, "bad", "Bad", instance="/v1/x")
    with pytest.raises(ValueError, match="kebab"):
        Problem(400, "Bad Slug", "Bad")


def test_problem_details_are_scrubbed_as_a_second_line_of_defence() -> None:
    error = FieldError(field="member.birth_date", rule="age", message="1984-03-09 is too old")
    problem = Problem(409, "duplicate-referral", "Duplicate referral", f"Member {CIN} already referred",
                      errors=[error])
    body = problem.details().model_dump_json()
    assert CIN not in body and "1984-03-09" not in body
