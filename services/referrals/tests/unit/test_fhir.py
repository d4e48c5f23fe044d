"""FHIR R4: ServiceRequest in (contained or Bundle-referenced Patient) → Task and ServiceRequest out, both
validated by the FHIR model library; errors name FHIR elements."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from referrals.fhir import REQUEST_STATUS, TASK_STATUS, fhir_path, submission_from_fhir
from referrals.testkit import approved, make_service_request, publish, requested

from shared.testing.app import ServiceHarness
from shared.testing.polling import eventually

FHIR_JSON = "application/fhir+json"

# Intake on PostgreSQL is a different code path (one statement): these run on both databases.
ON_BOTH_DATABASES = pytest.mark.parametrize(
    "harness", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True)



async def post_fhir(h: ServiceHarness, resource: dict[str, Any], key: str = "cbo_a", **headers: str) -> Any:
    return await h.client.post("/fhir/r4/ServiceRequest", json=resource,
                               headers=h.headers(key, **{"Content-Type": FHIR_JSON, **headers}))


def as_bundle(request: dict[str, Any]) -> dict[str, Any]:
    """The same referral as a transaction Bundle: Patient and Organization as entries, referenced by URL."""
    request = copy.deepcopy(request)
    patient, organization = request.pop("contained")
    request["subject"] = {"reference": "urn:uuid:7f1d0c3e-0000-4000-8000-000000000001"}
    request["requester"] = {"reference": "Organization/o1"}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7f1d0c3e-0000-4000-8000-000000000001", "resource": patient,
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:7f1d0c3e-0000-4000-8000-000000000002", "resource": organization,
         "request": {"method": "POST", "url": "Organization"}},
        {"fullUrl": "urn:uuid:7f1d0c3e-0000-4000-8000-000000000003", "resource": request,
         "request": {"method": "POST", "url": "ServiceRequest"}},
    ]}


def test_service_request_maps_onto_the_json_submission() -> None:
    submission, violations = submission_from_fhir(make_service_request())
    assert violations == []
    assert submission is not None
    assert submission["member"]["cin"] == "90000004D"
    assert submission["member"]["middle_name"] == "Maria" and submission["member"]["sex"] == "F"
    assert submission["member"]["address"]["county"] == "Fresno"
    assert submission["service"] == {"program": "ecm", "pof_codes": ["2"]}
    assert submission["referring"]["npi"] == "1234567893"
    assert submission["external_identifiers"] == [{"system": "urn:example:ehr", "value": "SR-1001"}]


def test_paths_of_json_fields_map_to_fhir_elements() -> None:
    assert fhir_path("member.cin") == "Patient.identifier"
    assert fhir_path("service.pof_codes[0]") == "ServiceRequest.reasonCode"
    assert fhir_path("member.address.county") == "Patient.address.district"


@ON_BOTH_DATABASES
async def test_round_trip_service_request_in_task_out(harness: ServiceHarness) -> None:
    response = await post_fhir(harness, make_service_request(), **{"Idempotency-Key": "fhir-1"})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    stored = ServiceRequest.model_validate(response.json())
    assert stored.status in REQUEST_STATUS and stored.status == "active"
    fhir_id = stored.id
    referral_id = stored.identifier[0].value  # the CalHub referral id, also the JSON API's
    assert fhir_id == referral_id.replace("_", "-")
    assert response.headers["location"] == f"/fhir/r4/ServiceRequest/{fhir_id}"

    task_response = await harness.client.get(f"/fhir/r4/Task/{fhir_id}", headers=harness.headers("cbo_a"))
    assert task_response.status_code == 200 and task_response.headers["content-type"].startswith(FHIR_JSON)
    task = Task.model_validate(task_response.json())
    assert task.status in TASK_STATUS
    assert task.focus.reference == f"ServiceRequest/{fhir_id}"
    assert task.businessStatus.coding[0].code == "needs_plan" and task.status == "on-hold"

    # The JSON API sees the same referral.
    same = (await harness.client.get(f"/v1/referrals/{referral_id}", headers=harness.headers("cbo_a"))).json()
    assert same["channel"] == "fhir" and same["member"]["cin"] == "90000004D"

    await publish(harness.bus, requested(referral_id, "auth_f"), approved(referral_id, "auth_f"))

    async def accepted() -> Any:
        body = (await harness.client.get(f"/fhir/r4/Task/{fhir_id}", headers=harness.headers("cbo_a"))).json()
        return body if body["status"] == "accepted" else None

    task = Task.model_validate(await eventually(accepted, within=10.0, interval=0.02))
    assert task.output[0].valueIdentifier.value == "auth_f"

    again = await harness.client.get(f"/fhir/r4/ServiceRequest/{fhir_id}", headers=harness.headers("cbo_a"))
    assert ServiceRequest.model_validate(again.json()).contained[0].birthDate.isoformat() == "1975-09-30"
    assert (await harness.client.get(f"/fhir/r4/Task/{fhir_id}",
                                     headers=harness.headers("cbo_b"))).status_code == 404


async def test_a_bundle_with_a_referenced_patient_is_accepted(harness: ServiceHarness) -> None:
    response = await post_fhir(harness, as_bundle(make_service_request(cin="90000005E")))
    assert response.status_code == 201, response.text
    assert ServiceRequest.model_validate(response.json()).contained[0].identifier[0].value == "90000005E"


@ON_BOTH_DATABASES
async def test_the_fhir_intake_refuses_duplicates_like_the_json_api(harness: ServiceHarness) -> None:
    assert (await post_fhir(harness, make_service_request())).status_code == 201
    duplicate = await post_fhir(harness, make_service_request())
    assert duplicate.status_code == 409 and duplicate.json()["existing_referral_id"]


def _with(request: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    request = copy.deepcopy(request)
    target: Any = request
    *parents, last = path.split("/")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return request


@pytest.mark.parametrize(("path", "value", "field", "rule"), [
    ("status", "draft", "ServiceRequest.status", "active_required"),
    ("status", "pending", "ServiceRequest.status", "value_set"),
    ("intent", "option", "ServiceRequest.intent", "referral_intent"),
    ("intent", "wish", "ServiceRequest.intent", "value_set"),
    ("priority", "whenever", "ServiceRequest.priority", "value_set"),
    ("subject", {"reference": "Patient/elsewhere"}, "ServiceRequest.subject", "patient_reference"),
    ("contained/0/identifier", [{"system": "https://calhub.dev/fhir/NamingSystem/medi-cal-cin", "value": "BAD"}],
     "Patient.identifier", "cin_format"),
    ("contained/0/address/0/district", "Mordor", "Patient.address.district", "california_county"),
    ("contained/1/identifier", [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567890"}],
     "ServiceRequest.requester(Organization).identifier", "npi_check_digit"),
    ("reasonCode", [], "ServiceRequest.reasonCode", "required_for_ecm"),
])
async def test_fhir_errors_name_the_fhir_element(harness: ServiceHarness, path: str, value: Any, field: str,
                                                 rule: str) -> None:
    response = await post_fhir(harness, _with(make_service_request(), path, value))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {"field": field, "rule": rule} in [{"field": e["field"], "rule": e["rule"]}
                                              for e in response.json()["errors"]]


def every_error_at_once() -> dict[str, Any]:
    """Bad CIN, NPI and county (intake rules) and a birth date the FHIR model refuses."""
    request = make_service_request(cin="9000002")
    request["contained"][1]["identifier"][0]["value"] = "1234567890"
    request["contained"][0]["address"][0]["district"] = "Nowhere"
    request["contained"][0]["birthDate"] = "1975-13-45"
    return request


EVERY_ERROR = {("Patient.birthDate", "value_error"), ("Patient.identifier", "cin_format"),
               ("Patient.address.district", "california_county"),
               ("ServiceRequest.requester(Organization).identifier", "npi_check_digit")}


@pytest.mark.parametrize("shape", ["contained", "bundle"])
async def test_model_errors_and_intake_rules_are_reported_together(harness: ServiceHarness, shape: str) -> None:
    request = every_error_at_once()
    response = await post_fhir(harness, as_bundle(request) if shape == "bundle" else request)
    assert response.status_code == 422
    # The birth date is named as the Patient's element, and not reported again as missing by the intake rules.
    assert {(e["field"], e["rule"]) for e in response.json()["errors"]} == EVERY_ERROR


@pytest.mark.parametrize(("path", "value", "expected"), [
    # The requester's phone is not a string: one error, not also "phone or email required".
    ("contained/1/contact/0/telecom/0/value", 5,
     {("ServiceRequest.requester(Organization).contact[0].telecom[0].value", "string_type")}),
    ("authoredOn", "2026-99-99", {("ServiceRequest.authoredOn", "value_error")}),
    ("contained/0/name", [{"family": 123, "given": ["Rosa"]}], {("Patient.name[0].family", "string_type")}),
])
def test_a_model_error_names_its_element_and_the_rest_is_still_checked(path: str, value: Any,
                                                                       expected: set[tuple[str, str]]) -> None:
    request = _with(make_service_request(cin="BAD"), path, value)
    submission, violations = submission_from_fhir(request)
    assert submission is not None and submission["member"]["cin"] == "BAD"  # read on, for the intake rules
    assert {(v.field, v.rule) for v in violations} == expected


async def test_a_model_error_inside_an_element_does_not_hide_that_elements_own_error(harness: ServiceHarness
                                                                                     ) -> None:
    request = _with(make_service_request(), "code/coding/0/code", "ecmm")  # no such CalAIM program
    request = _with(request, "code/coding/0/display", {"x": 1})  # and a display the model refuses
    response = await post_fhir(harness, request)
    assert response.status_code == 422
    assert {(e["field"], e["rule"]) for e in response.json()["errors"]} == {
        ("ServiceRequest.code.coding[0].display", "string_type"), ("ServiceRequest.code", "enum")}


def test_a_patient_that_cannot_be_read_at_all_is_named() -> None:
    request = make_service_request()
    request["contained"][0].update(deceasedBoolean=True, deceasedDateTime="2020-01-01")  # one of, not both
    submission, violations = submission_from_fhir(request)
    assert submission is not None and "member" not in submission
    assert {(v.field, v.rule) for v in violations} == {("Patient", "value_error"),
                                                       ("ServiceRequest.subject", "unreadable_resource")}


def test_a_contained_resource_of_no_r4_type_is_a_violation() -> None:
    request = make_service_request()
    request["contained"].append({"resourceType": "Spaceship", "id": "s1"})
    _, violations = submission_from_fhir(request)
    assert [(v.field, v.rule) for v in violations] == [("ServiceRequest.contained[2].resourceType", "enum")]


async def test_a_malformed_resource_is_refused_with_model_errors(harness: ServiceHarness) -> None:
    bad = _with(make_service_request(), "contained/0/birthDate", "1975-13-45")
    response = await post_fhir(harness, bad)
    assert response.status_code == 422
    assert all("1975-13-45" not in e["message"] for e in response.json()["errors"])
    other = await post_fhir(harness, {"resourceType": "Observation", "status": "final"})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "resourceType"
