"""FHIR R4 routes of the referrals service: POST ServiceRequest (intake), GET ServiceRequest and Task."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from referrals.api import Reader, Writer, intake, json_body, referral_not_found, referrals_runtime
from referrals.fhir import (
    FHIR_MEDIA_TYPE,
    fhir_id,
    fhir_path,
    referral_id_of,
    service_request_for,
    submission_from_fhir,
    task_for,
)
from referrals.models import Referral
from referrals.repository import ReferralsUnitOfWork, can_see
from shared.auth import Caller, record_audit
from shared.idempotency import IdempotencyKey
from shared.problems import problem_responses

router = APIRouter(prefix="/fhir/r4", tags=["fhir"])

_SERVICE_REQUEST_EXAMPLE: dict[str, Any] = {
    "resourceType": "ServiceRequest",
    "contained": [
        {"resourceType": "Patient", "id": "p1",
         "identifier": [{"system": "https://calhub.dev/fhir/NamingSystem/medi-cal-cin", "value": "90000004D"}],
         "name": [{"family": "Testperson", "given": ["Rosa"]}], "birthDate": "1975-09-30", "gender": "female",
         "address": [{"line": ["200 Example Ave"], "city": "Fresno", "state": "CA", "postalCode": "93721",
                      "district": "Fresno"}]},
        {"resourceType": "Organization", "id": "o1", "name": "Valley Care Partners",
         "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
         "contact": [{"name": {"text": "Sam Coordinator"}, "telecom": [{"system": "phone", "value": "5595550100"}]}]},
    ],
    "status": "active", "intent": "order", "priority": "routine",
    "code": {"coding": [{"system": "https://calhub.dev/fhir/CodeSystem/calaim-program", "code": "ecm"}]},
    "reasonCode": [{"coding": [{"system": "https://calhub.dev/fhir/CodeSystem/ecm-population-of-focus",
                                "code": "2"}]}],
    "subject": {"reference": "#p1"}, "requester": {"reference": "#o1"},
}


class FhirResponse(JSONResponse):
    """A FHIR JSON response."""

    media_type = FHIR_MEDIA_TYPE


@router.post("/ServiceRequest", status_code=201, summary="Submit a referral as a FHIR ServiceRequest",
             openapi_extra={"requestBody": {"required": True, "content": {FHIR_MEDIA_TYPE: {
                 "schema": {"type": "object"}, "examples": {"ecm": {"summary": "SDOH referral, contained Patient",
                                                                    "value": _SERVICE_REQUEST_EXAMPLE}}}}}},
             responses={201: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}},
                              "description": "The stored ServiceRequest; Location names it, Link the Task."},
                        **problem_responses(400, 401, 403, 409, 413, 422)})
async def submit_service_request(request: Request, caller: Writer, key: IdempotencyKey) -> Response:
    """Accepted exactly like POST /v1/referrals (same rules, idempotency and duplicates); errors name FHIR
    elements. Answers the ServiceRequest with the referral's FHIR id (`ref-…` for referral `ref_…`); its status
    is the Task of that id."""
    payload = await json_body(request)
    submission, violations = submission_from_fhir(payload)

    async def render(_uow: ReferralsUnitOfWork, referral: Referral) -> tuple[dict[str, Any], dict[str, str]]:
        return service_request_for(referral), {
            "Location": f"/fhir/r4/ServiceRequest/{fhir_id(referral.id)}",
            "Link": f'</fhir/r4/Task/{fhir_id(referral.id)}>; rel="related"',
            "content-type": FHIR_MEDIA_TYPE,
        }

    return await intake(request, caller, key, payload, submission, channel="fhir", render=render, rename=fhir_path,
                        pre_violations=violations)


async def _load(request: Request, caller: Caller, referral_id: str, action: str) -> Referral:
    runtime = referrals_runtime(request)
    uow = runtime.uow()
    assert isinstance(uow, ReferralsUnitOfWork)
    async with uow:
        referral = await uow.referrals.get(referral_id_of(referral_id))
        if referral is None or not can_see(caller, referral):
            raise referral_not_found()
        await record_audit(uow.session, uow.audit, action=action, resource_type="referral",
                           resource_id=referral.id, caller=caller)
        await uow.commit()
    return referral


@router.get("/Task/{task_id}", summary="The referral's status as a FHIR Task",
            responses={200: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}},
                             "description": "A FHIR R4 Task"}, **problem_responses(401, 403, 404)})
async def get_task(task_id: str, request: Request, caller: Reader) -> Response:
    """Task.status follows the closed loop (received, on-hold, accepted, rejected, in-progress, completed,
    cancelled); businessStatus carries CalHub's status, statusReason the reason for loop closure."""
    referral = await _load(request, caller, task_id, "referral.read_task")
    return FhirResponse(task_for(referral))


@router.get("/ServiceRequest/{request_id}", summary="The referral as a FHIR ServiceRequest",
            responses={200: {"content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}},
                             "description": "A FHIR R4 ServiceRequest with its Patient contained"},
                       **problem_responses(401, 403, 404)})
async def get_service_request(request_id: str, request: Request, caller: Reader) -> Response:
    """The referral as submitted (canonical codes), its Patient contained (the read is audited)."""
    referral = await _load(request, caller, request_id, "referral.read_service_request")
    return FhirResponse(service_request_for(referral))
