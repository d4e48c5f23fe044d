"""FHIR R4 (SDOH referral pattern) in and out: a ServiceRequest becomes a referral submission, a referral
becomes a Task (and a ServiceRequest). Parsed and built with fhir.resources' R4B models, which read R4 payloads
(fhir.resources 8 has no R4 package; its default R5 models reject R4 ServiceRequests). The library does not
check bound code values, so status, intent, priority and gender are checked here against the R4 value sets.

Accepted input: a ServiceRequest whose `subject` references a contained Patient (`#id`), or a Bundle
(transaction or collection) holding the ServiceRequest and the Patient it references (`Patient/<id>` or the
entry's `fullUrl`). CalHub's own systems (CIN, MCP, organization, program, POF, CS codes) are listed below and in
docs/decisions/0033-fhir-mapping.md.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from referrals.domain.intake import Violation
from referrals.models import Referral
from referrals.service import as_utc
from shared.contracts.referrals import ReferralStatus
from shared.problems import field_errors

FHIR_MEDIA_TYPE = "application/fhir+json"
BASE = "https://calhub.dev/fhir"
CIN_SYSTEM: Final = f"{BASE}/NamingSystem/medi-cal-cin"
MCP_SYSTEM: Final = f"{BASE}/NamingSystem/mcp"
ORGANIZATION_SYSTEM: Final = f"{BASE}/NamingSystem/organization"
REFERRAL_SYSTEM: Final = f"{BASE}/NamingSystem/referral"
AUTHORIZATION_SYSTEM: Final = f"{BASE}/NamingSystem/authorization"
NPI_SYSTEM: Final = "http://hl7.org/fhir/sid/us-npi"
PROGRAM_SYSTEM: Final = f"{BASE}/CodeSystem/calaim-program"
CS_SYSTEM: Final = f"{BASE}/CodeSystem/community-support"
POF_SYSTEM: Final = f"{BASE}/CodeSystem/ecm-population-of-focus"
STATUS_SYSTEM: Final = f"{BASE}/CodeSystem/referral-status"
CLOSURE_SYSTEM: Final = f"{BASE}/CodeSystem/referral-closure-reason"
TASK_CODE_SYSTEM: Final = "http://hl7.org/fhir/CodeSystem/task-code"
EXT_EXPEDITED_REASON: Final = f"{BASE}/StructureDefinition/expedited-reason"
EXT_AFTER_ACUTE_CARE: Final = f"{BASE}/StructureDefinition/after-acute-care"
EXT_CONSENT_SHARE: Final = f"{BASE}/StructureDefinition/consent-share-with-mcp"
EXT_CONSENT_CONTACT: Final = f"{BASE}/StructureDefinition/consent-contact-member"

# R4 required bindings (hl7.org/fhir/R4/valueset-*.html): the model library accepts any code string.
REQUEST_STATUS: Final = frozenset({"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                                   "unknown"})
REQUEST_INTENT: Final = frozenset({"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                                   "filler-order", "instance-order", "option"})
REQUEST_PRIORITY: Final = frozenset({"routine", "urgent", "asap", "stat"})
ADMINISTRATIVE_GENDER: Final = frozenset({"male", "female", "other", "unknown"})
TASK_STATUS: Final = frozenset({"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                                "in-progress", "on-hold", "failed", "completed", "entered-in-error"})
# A referral is a request to act: an order or a proposal/plan from the referrer; not an option or a filler.
ACCEPTED_INTENTS: Final = frozenset({"proposal", "plan", "order", "original-order"})
_GENDER_TO_SEX: Final = {"female": "F", "male": "M", "unknown": "U", "other": "X"}
_SEX_TO_GENDER: Final = {v: k for k, v in _GENDER_TO_SEX.items()}

# Closed-loop status → Task.status (Gravity SDOH CC: the performer moves the Task through these).
TASK_STATUS_OF: Final[dict[ReferralStatus, str]] = {
    ReferralStatus.RECEIVED: "received",
    ReferralStatus.NEEDS_PLAN: "on-hold",
    ReferralStatus.ROUTED: "received",
    ReferralStatus.REQUESTED: "received",
    ReferralStatus.ACCEPTED: "accepted",
    ReferralStatus.DECLINED: "rejected",
    ReferralStatus.IN_SERVICE: "in-progress",
    ReferralStatus.CLOSED: "completed",
    ReferralStatus.WITHDRAWN: "cancelled",
}
_REQUEST_STATUS_OF: Final[dict[ReferralStatus, str]] = {
    ReferralStatus.DECLINED: "revoked", ReferralStatus.WITHDRAWN: "revoked", ReferralStatus.CLOSED: "completed"}

# Where each JSON-API field of a submission comes from in FHIR, to name FHIR elements in errors.
_FHIR_PATHS: Final[dict[str, str]] = {
    "member": "ServiceRequest.subject",
    "member.cin": "Patient.identifier",
    "member.last_name": "Patient.name.family",
    "member.first_name": "Patient.name.given",
    "member.middle_name": "Patient.name.given",
    "member.birth_date": "Patient.birthDate",
    "member.sex": "Patient.gender",
    "member.phone": "Patient.telecom",
    "member.preferred_language": "Patient.communication.language",
    "member.address": "Patient.address",
    "member.address.line1": "Patient.address.line",
    "member.address.line2": "Patient.address.line",
    "member.address.city": "Patient.address.city",
    "member.address.state": "Patient.address.state",
    "member.address.zip": "Patient.address.postalCode",
    "member.address.county": "Patient.address.district",
    "mcp_code": "ServiceRequest.insurance(Coverage).payor.identifier",
    "service": "ServiceRequest.code",
    "service.program": "ServiceRequest.code",
    "service.cs_code": "ServiceRequest.code",
    "service.pof_codes": "ServiceRequest.reasonCode",
    "service.after_acute_care": f"ServiceRequest.extension({EXT_AFTER_ACUTE_CARE})",
    "urgency": "ServiceRequest.priority",
    "expedited_reason": f"ServiceRequest.extension({EXT_EXPEDITED_REASON})",
    "referring": "ServiceRequest.requester",
    "referring.npi": "ServiceRequest.requester(Organization).identifier",
    "referring.name": "ServiceRequest.requester(Organization).name",
    "referring.contact": "ServiceRequest.requester(Organization).contact",
    "referring.contact.name": "ServiceRequest.requester(Organization).contact.name",
    "referring.contact.phone": "ServiceRequest.requester(Organization).contact.telecom",
    "referring.contact.email": "ServiceRequest.requester(Organization).contact.telecom",
    "cbo_organization_id": "ServiceRequest.performer.identifier",
    "notes": "ServiceRequest.note",
    "consent": "ServiceRequest.extension",
    "consent.share_with_mcp": f"ServiceRequest.extension({EXT_CONSENT_SHARE})",
    "consent.contact_member": f"ServiceRequest.extension({EXT_CONSENT_CONTACT})",
    "external_identifiers": "ServiceRequest.identifier",
}


def fhir_id(referral_id: str) -> str:
    """The FHIR logical id of a referral: FHIR ids allow [A-Za-z0-9-.] only, so `ref_x` is `ref-x`."""
    return referral_id.replace("_", "-")


def referral_id_of(fhir_or_referral_id: str) -> str:
    """The referral id behind a FHIR id (`ref-x` → `ref_x`); a referral id passes unchanged."""
    if fhir_or_referral_id.startswith("ref-"):
        return "ref_" + fhir_or_referral_id.removeprefix("ref-")
    return fhir_or_referral_id


def fhir_path(field: str) -> str:
    """The FHIR element a JSON-API field path was read from (indexes dropped); the field itself if unmapped."""
    plain = field.split("[", 1)[0]
    while plain:
        if plain in _FHIR_PATHS:
            return _FHIR_PATHS[plain]
        plain = plain.rpartition(".")[0]
    return field


def _model_violations(exc: ValidationError, prefix: str) -> list[Violation]:
    # field_errors drops submitted values from the messages (they may be names or birth dates).
    return [Violation(f"{prefix}{'' if e.field.startswith('[') else '.'}{e.field}" if e.field != "body"
                      else prefix, e.rule, e.message)
            for e in field_errors(exc.errors())]


# A referenced resource that was posted but could not be read (its model errors are reported).
_UNREADABLE: Final = object()


def _pruned(raw: Mapping[str, Any], locations: Iterable[tuple[Any, ...]]) -> dict[str, Any] | None:
    """A copy of `raw` without the elements at `locations` (pydantic error locations); None when one of them
    is the resource itself, which no pruning can help."""
    result = copy.deepcopy(dict(raw))
    removals: list[tuple[Any, Any]] = []
    for location in locations:
        if not location:
            return None
        parent: Any = result
        for part in location[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if parent is not None:
            removals.append((parent, location[-1]))
    # List items from the highest index down, so the indexes of the others still hold.
    for parent, key in sorted(removals, key=lambda r: r[1] if isinstance(r[1], int) else -1, reverse=True):
        if isinstance(parent, dict):
            parent.pop(key, None)
        elif isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent):
            del parent[key]
    return result


def _read_resource(raw: Any, name: str) -> tuple[Any, list[Violation]]:
    """A resource read with the FHIR model library, and its model errors named `<name>.<element>`.

    On errors the rest is still read (the elements in error left out, else the top-level elements holding
    them), so the intake rules can check what was sent; None when even that fails. Values are never quoted."""
    if not isinstance(raw, Mapping):
        return None, [Violation(name, "type", "Must be a FHIR resource (JSON object).")]
    model = _model_of(raw.get("resourceType"))
    if model is None:
        return None, [Violation(f"{name}.resourceType", "enum", "Not a FHIR R4 resource type.")]
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        violations = _model_violations(exc, name)
        locations = [tuple(e["loc"]) for e in exc.errors()]
    except KeyError:  # the library's lookup of a nested resource of a type R4 does not define
        return None, [Violation(name, "resource_type", "Holds a resource of a type FHIR R4 does not define.")]
    for attempt in (locations, [location[:1] for location in locations]):
        pruned = _pruned(raw, attempt)
        if pruned is None:
            break
        try:
            return model.model_validate(pruned), violations
        except (ValidationError, KeyError):
            continue
    return None, violations


def _model_of(kind: Any) -> Any:
    """The R4B model class of a resource type, or None if FHIR R4 has no such resource."""
    try:
        return get_fhir_model_class(kind) if isinstance(kind, str) and kind else None
    except ValueError:
        return None


def _role_names(raw_request: Mapping[str, Any]) -> dict[str, str]:
    """How errors name each resource the ServiceRequest references: by the element that references it."""
    roles: dict[str, str] = {}

    def reference_of(element: Any) -> str | None:
        found = element.get("reference") if isinstance(element, Mapping) else None
        return found if isinstance(found, str) else None

    for key, role in (("subject", "subject"), ("requester", "requester")):
        reference = reference_of(raw_request.get(key))
        if reference:
            roles[reference] = role
    insurance = raw_request.get("insurance")
    for element in insurance if isinstance(insurance, list) else ():
        reference = reference_of(element)
        if reference:
            roles[reference] = "insurance"
    return roles


def _resource_name(kind: Any, role: str | None) -> str:
    # The Patient is "Patient", as the intake rules name its elements; others by the element referencing them.
    name = kind if isinstance(kind, str) and kind else "Resource"
    if role is None or (role == "subject" and name == "Patient"):
        return name
    return f"ServiceRequest.{role}({name})"


def _read_request_in_parts(raw_request: Mapping[str, Any], roles: Mapping[str, str]
                           ) -> tuple[ServiceRequest | None, list[Any], set[str], list[Violation]]:
    """A ServiceRequest the model refused as a whole: each contained resource and the rest read on their own
    (`_read_resource`), so model errors name Patient and ServiceRequest elements and the intake rules still run.
    Returns the request (None if unreadable), the contained resources read, the references of those that
    could not be read, and the model errors."""
    violations: list[Violation] = []
    contained: list[Any] = []
    unreadable: set[str] = set()
    raw_contained = raw_request.get("contained")
    if raw_contained is not None and not isinstance(raw_contained, list):
        violations.append(Violation("ServiceRequest.contained", "type", "Must be a list of resources."))
        raw_contained = None
    for index, item in enumerate(raw_contained or ()):
        kind = item.get("resourceType") if isinstance(item, Mapping) else None
        local = f"#{item.get('id')}" if isinstance(item, Mapping) and item.get("id") else None
        name = (_resource_name(kind, roles.get(local)) if local and _model_of(kind) is not None
                else f"ServiceRequest.contained[{index}]")
        resource, problems = _read_resource(item, name)
        violations.extend(problems)
        if resource is not None:
            contained.append(resource)
        elif local:
            unreadable.add(local)
    request, problems = _read_resource({k: v for k, v in raw_request.items() if k != "contained"}, "ServiceRequest")
    violations.extend(problems)
    return request if isinstance(request, ServiceRequest) else None, contained, unreadable, violations


def _read_bundle_in_parts(payload: Mapping[str, Any]
                          ) -> tuple[Bundle | None, list[Mapping[str, Any]], dict[str, Any], list[Violation]]:
    """A Bundle the model refused as a whole: the Bundle without its resources, then each entry's resource on
    its own (named like contained ones). Returns the Bundle shell (None if unreadable), the raw ServiceRequests,
    the other resources read (by fullUrl and `Type/id`, `_UNREADABLE` for those that could not be) and the
    model errors."""
    raw_entries = payload.get("entry")
    raw_entries = raw_entries if isinstance(raw_entries, list) else []
    shell_entries = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, Mapping) else e
                     for e in raw_entries]
    bundle, violations = _read_resource({**payload, "entry": shell_entries} if raw_entries else payload, "Bundle")
    resources = [e.get("resource") if isinstance(e, Mapping) else None for e in raw_entries]
    requests = [r for r in resources if isinstance(r, Mapping) and r.get("resourceType") == "ServiceRequest"]
    roles = _role_names(requests[0]) if len(requests) == 1 else {}
    entries: dict[str, Any] = {}
    for index, (entry, resource) in enumerate(zip(raw_entries, resources, strict=True)):
        if resource is None or resource in requests:
            continue
        kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
        keys = [str(entry["fullUrl"])] if isinstance(entry, Mapping) and entry.get("fullUrl") else []
        if isinstance(resource, Mapping) and resource.get("id") and kind:
            keys.append(f"{kind}/{resource['id']}")
        role = next((roles[k] for k in keys if k in roles), None)
        name = (_resource_name(kind, role) if keys and _model_of(kind) is not None
                else f"Bundle.entry[{index}].resource")
        model, problems = _read_resource(resource, name)
        violations.extend(problems)
        data = _UNREADABLE if model is None else model.model_dump(mode="json", exclude_none=True, by_alias=True)
        for key in keys:
            entries[key] = data
    return bundle if isinstance(bundle, Bundle) else None, requests, entries, violations


def _ext(extensions: Iterable[Any] | None, url: str) -> Any:
    for extension in extensions or ():
        if extension.url == url:
            return extension
    return None


def _codes(concepts: Iterable[Any] | None, system: str) -> list[str]:
    found: list[str] = []
    for concept in concepts or ():
        for coding in concept.coding or ():
            if coding.system == system and coding.code:
                found.append(str(coding.code))
    return found


def _identifier(identifiers: Iterable[Any] | None, system: str) -> str | None:
    for identifier in identifiers or ():
        if identifier.system == system and identifier.value:
            return str(identifier.value)
    return None


def _telecom(points: Iterable[Any] | None, system: str) -> str | None:
    for point in points or ():
        if point.system == system and point.value:
            return str(point.value)
    return None


class _Resolver:
    """Finds a referenced resource: contained (`#id`), or another entry of the posted Bundle."""

    def __init__(self, contained: Sequence[Any], bundle_entries: Mapping[str, Any],
                 unreadable: Iterable[str] = ()) -> None:
        self.contained = {str(r.id): r for r in contained if getattr(r, "id", None)}
        self.entries = bundle_entries
        self.unreadable = frozenset(unreadable)

    def resolve(self, reference: str | None) -> Any:
        """The resource, a Bundle entry's data, `_UNREADABLE` (posted, but its model errors are reported) or
        None."""
        if not reference:
            return None
        if reference in self.unreadable:
            return _UNREADABLE
        if reference.startswith("#"):
            return self.contained.get(reference[1:])
        return self.entries.get(reference)


def _bundle_contents(bundle: Bundle) -> tuple[list[Mapping[str, Any]], dict[str, Any]]:
    """A Bundle's ServiceRequests, and every resource by fullUrl and `Type/id`, as JSON data."""
    requests: list[Mapping[str, Any]] = []
    entries: dict[str, Any] = {}
    for entry in bundle.entry or ():
        resource = entry.resource
        if resource is None:
            continue
        data = resource.model_dump(mode="json", exclude_none=True, by_alias=True)
        kind = data.get("resourceType")
        if entry.fullUrl:
            entries[str(entry.fullUrl)] = data
        if data.get("id"):
            entries[f"{kind}/{data['id']}"] = data
        if kind == "ServiceRequest":
            requests.append(data)
    return requests, entries


def submission_from_fhir(payload: Any) -> tuple[dict[str, Any] | None, list[Violation]]:
    """Map a posted ServiceRequest (or Bundle) onto the JSON-API submission; violations name FHIR elements.

    The submission is None only when the payload cannot be read at all; otherwise it is returned with the
    FHIR-level violations (status, intent, references, and the model library's errors, named by Patient and
    ServiceRequest elements) so the intake rules can add theirs and every problem is reported at once. A
    resource the model refuses is read without the elements in error (`_read_resource`).
    """
    if not isinstance(payload, Mapping):
        return None, [Violation("body", "type", "The body must be a FHIR resource (JSON object).")]
    resource_type = payload.get("resourceType")
    entries: dict[str, Any] = {}
    raw_request: Any = payload
    violations: list[Violation] = []
    if resource_type == "Bundle":
        bundle: Bundle | None
        try:
            bundle = Bundle.model_validate(payload)
        except (ValidationError, KeyError):  # KeyError: an entry of a resource type R4 does not define
            bundle, requests, entries, violations = _read_bundle_in_parts(payload)
        else:
            requests, entries = _bundle_contents(bundle)
        if bundle is None:
            return None, violations
        if bundle.type not in ("transaction", "collection", "batch"):
            return None, [*violations,
                          Violation("Bundle.type", "enum", "Post a transaction, batch or collection Bundle.")]
        if len(requests) != 1:
            return None, [*violations, Violation("Bundle.entry", "one_service_request",
                                                 "The Bundle must hold exactly one ServiceRequest.")]
        raw_request = requests[0]
    elif resource_type != "ServiceRequest":
        return None, [Violation("resourceType", "enum", "Post a ServiceRequest or a Bundle holding one.")]

    unreadable: set[str] = set()
    read: ServiceRequest | None
    try:
        read = ServiceRequest.model_validate(raw_request)
        contained = list(read.contained or [])
    except (ValidationError, KeyError):  # KeyError: a contained resource of a type R4 does not define
        read, contained, unreadable, problems = _read_request_in_parts(raw_request, _role_names(raw_request))
        violations.extend(problems)
    if read is None:
        return None, violations
    request = read
    violations.extend(_check_codes(request))
    resolver = _Resolver(contained, entries, unreadable)
    patient = _patient(resolver, request, violations)
    submission: dict[str, Any] = {}
    if patient is not None:
        submission["member"] = _member(patient)
    _service(request, submission)
    _requester(resolver, request, submission, violations)
    coverage = None
    for insurance in request.insurance or ():
        coverage = resolver.resolve(insurance.reference)
        if coverage is _UNREADABLE:
            violations.append(Violation("ServiceRequest.insurance", "unreadable_resource",
                                        "The referenced Coverage has errors (listed) and could not be read."))
        if isinstance(coverage, Mapping):
            coverage = Coverage.model_validate(coverage)
        break
    if isinstance(coverage, Coverage):
        for payor in coverage.payor or ():
            code = payor.identifier.value if payor.identifier and payor.identifier.system == MCP_SYSTEM else None
            if code:
                submission["mcp_code"] = str(code)
    for performer in request.performer or ():
        if performer.identifier and performer.identifier.system == ORGANIZATION_SYSTEM and performer.identifier.value:
            submission["cbo_organization_id"] = str(performer.identifier.value)
    notes = [str(n.text) for n in request.note or () if n.text]
    if notes:
        submission["notes"] = "\n".join(notes)
    share = _ext(request.extension, EXT_CONSENT_SHARE)
    contact = _ext(request.extension, EXT_CONSENT_CONTACT)
    if share is not None or contact is not None:
        submission["consent"] = {"share_with_mcp": share.valueBoolean if share is not None else None,
                                 "contact_member": contact.valueBoolean if contact is not None else None}
    identifiers = [{"system": str(i.system or ""), "value": str(i.value)} for i in request.identifier or ()
                   if i.value]
    if identifiers:
        submission["external_identifiers"] = identifiers
    return submission, violations


def _check_codes(request: ServiceRequest) -> list[Violation]:
    violations: list[Violation] = []
    if request.status not in REQUEST_STATUS:
        violations.append(Violation("ServiceRequest.status", "value_set",
                                    "Must be a request-status code (draft, active, on-hold, ...)."))
    elif request.status != "active":
        violations.append(Violation("ServiceRequest.status", "active_required",
                                    "A new referral is an active ServiceRequest."))
    if request.intent not in REQUEST_INTENT:
        violations.append(Violation("ServiceRequest.intent", "value_set",
                                    "Must be a request-intent code (proposal, plan, order, ...)."))
    elif request.intent not in ACCEPTED_INTENTS:
        violations.append(Violation("ServiceRequest.intent", "referral_intent",
                                    "A referral's intent is order, original-order, proposal or plan."))
    if request.priority is not None and request.priority not in REQUEST_PRIORITY:
        violations.append(Violation("ServiceRequest.priority", "value_set",
                                    "Must be routine, urgent, asap or stat."))
    if request.doNotPerform:
        violations.append(Violation("ServiceRequest.doNotPerform", "not_supported",
                                    "A referral asks for a service; doNotPerform is not accepted."))
    return violations


def _patient(resolver: _Resolver, request: ServiceRequest, violations: list[Violation]) -> Patient | None:
    reference = request.subject.reference if request.subject else None
    found = resolver.resolve(reference)
    if found is _UNREADABLE:
        violations.append(Violation("ServiceRequest.subject", "unreadable_resource",
                                    "The referenced Patient has errors (listed) and could not be read."))
        return None
    if isinstance(found, Mapping):
        try:
            found = Patient.model_validate(found)
        except ValidationError as exc:
            violations.extend(_model_violations(exc, "Patient"))
            return None
    if not isinstance(found, Patient):
        violations.append(Violation("ServiceRequest.subject", "patient_reference",
                                    "subject must reference a contained Patient (#id) or a Patient in the Bundle."))
        return None
    if found.gender is not None and found.gender not in ADMINISTRATIVE_GENDER:
        violations.append(Violation("Patient.gender", "value_set", "Must be male, female, other or unknown."))
    return found


def _member(patient: Patient) -> dict[str, Any]:
    member: dict[str, Any] = {"cin": _identifier(patient.identifier, CIN_SYSTEM)}
    names = [n for n in patient.name or () if n.use in (None, "official", "usual")] or list(patient.name or ())
    if names:
        given = [str(g) for g in names[0].given or ()]
        member["last_name"] = names[0].family
        member["first_name"] = given[0] if given else None
        member["middle_name"] = " ".join(given[1:]) or None
    if patient.birthDate is not None:
        member["birth_date"] = str(patient.birthDate)
    if patient.gender is not None:
        member["sex"] = _GENDER_TO_SEX.get(str(patient.gender))
    member["phone"] = _telecom(patient.telecom, "phone")
    for communication in patient.communication or ():
        codes = [c.code for c in communication.language.coding or () if c.code]
        if communication.preferred or "preferred_language" not in member:
            member["preferred_language"] = str(codes[0]) if codes else communication.language.text
    addresses = [a for a in patient.address or () if a.use in (None, "home")] or list(patient.address or ())
    if addresses:
        address = addresses[0]
        lines = [str(line) for line in address.line or ()]
        member["address"] = {"line1": lines[0] if lines else None, "line2": ", ".join(lines[1:]) or None,
                             "city": address.city, "state": address.state, "zip": address.postalCode,
                             "county": address.district}
    return {k: v for k, v in member.items() if v is not None}


def _service(request: ServiceRequest, submission: dict[str, Any]) -> None:
    concepts = [request.code] if request.code else []
    programs = _codes(concepts, PROGRAM_SYSTEM)
    supports = _codes(concepts, CS_SYSTEM)
    service: dict[str, Any] = {}
    if programs:
        service["program"] = programs[0]
    elif supports:
        service["program"] = "cs"  # a Community Support code says the program by itself
    if supports:
        service["cs_code"] = supports[0]
    pofs = _codes(request.reasonCode, POF_SYSTEM)
    if pofs:
        service["pof_codes"] = pofs
    acute = _ext(request.extension, EXT_AFTER_ACUTE_CARE)
    if acute is not None:
        service["after_acute_care"] = acute.valueBoolean
    if service:
        submission["service"] = service
    if request.priority in ("urgent", "asap", "stat"):
        submission["urgency"] = "expedited"
    reason = _ext(request.extension, EXT_EXPEDITED_REASON)
    if reason is not None and reason.valueString:
        submission["expedited_reason"] = str(reason.valueString)


def _requester(resolver: _Resolver, request: ServiceRequest, submission: dict[str, Any],
               violations: list[Violation]) -> None:
    if request.requester is None:
        return
    referring: dict[str, Any] = {}
    found = resolver.resolve(request.requester.reference)
    if found is _UNREADABLE:
        violations.append(Violation("ServiceRequest.requester", "unreadable_resource",
                                    "The referenced Organization has errors (listed) and could not be read."))
        return
    if isinstance(found, Mapping) and found.get("resourceType") == "Organization":
        found = Organization.model_validate(found)
    if isinstance(found, Organization):
        referring["npi"] = _identifier(found.identifier, NPI_SYSTEM)
        referring["name"] = found.name
        for contact in found.contact or ():
            referring["contact"] = {"name": contact.name.text or " ".join(
                [*(str(g) for g in contact.name.given or ()), str(contact.name.family or "")]).strip()
                if contact.name else None,
                "phone": _telecom(contact.telecom, "phone"), "email": _telecom(contact.telecom, "email")}
            break
    elif request.requester.identifier is not None and request.requester.identifier.system == NPI_SYSTEM:
        referring["npi"] = request.requester.identifier.value
        referring["name"] = request.requester.display
    submission["referring"] = {k: v for k, v in referring.items() if v is not None}


# ------------------------------------------------------------------------------------------- outgoing

def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def task_for(referral: Referral) -> dict[str, Any]:
    """The referral as a FHIR R4 Task (validated by the R4B model); Task.id is the referral id."""
    status = ReferralStatus(referral.status)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": fhir_id(referral.id),
        "meta": {"lastUpdated": _iso(referral.updated_at)},
        "identifier": [{"system": REFERRAL_SYSTEM, "value": referral.id}],
        "basedOn": [{"reference": f"ServiceRequest/{fhir_id(referral.id)}"}],
        "focus": {"reference": f"ServiceRequest/{fhir_id(referral.id)}"},
        "status": TASK_STATUS_OF[status],
        "businessStatus": {"coding": [{"system": STATUS_SYSTEM, "code": status.value}], "text": status.value},
        "intent": "order",
        "priority": "urgent" if referral.urgency == "expedited" else "routine",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill"}]},
        "for": {"identifier": {"system": CIN_SYSTEM, "value": referral.member["cin"]}},
        "authoredOn": _iso(referral.created_at),
        "lastModified": _iso(referral.status_changed_at),
        "requester": {"identifier": {"system": ORGANIZATION_SYSTEM, "value": referral.referring_organization_id}},
    }
    if referral.mcp_code:
        task["owner"] = {"identifier": {"system": MCP_SYSTEM, "value": referral.mcp_code}}
    if referral.closure_reason_code or referral.status_reason:
        reason: dict[str, Any] = {}
        if referral.closure_reason_code:
            reason["coding"] = [{"system": CLOSURE_SYSTEM, "code": referral.closure_reason_code}]
        if referral.status_reason:
            reason["text"] = referral.status_reason
        task["statusReason"] = reason
    if referral.authorization_id:
        task["output"] = [{"type": {"text": "authorization"},
                           "valueIdentifier": {"system": AUTHORIZATION_SYSTEM, "value": referral.authorization_id}}]
    model = Task.model_validate(task)
    if model.status not in TASK_STATUS:  # the library does not check bound codes; never emit a bad one
        raise ValueError("task status outside the R4 value set")
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


def service_request_for(referral: Referral) -> dict[str, Any]:
    """The referral as a FHIR R4 ServiceRequest with its Patient contained (validated by the R4B model)."""
    member = referral.member
    address = member.get("address") or {}
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": "patient",
        "identifier": [{"system": CIN_SYSTEM, "value": member["cin"]}],
        "name": [{"family": member["last_name"],
                  "given": [member["first_name"], *([member["middle_name"]] if member.get("middle_name") else [])]}],
        "birthDate": member["birth_date"],
    }
    if member.get("sex"):
        patient["gender"] = _SEX_TO_GENDER.get(member["sex"], "unknown")
    if member.get("phone"):
        patient["telecom"] = [{"system": "phone", "value": member["phone"]}]
    if member.get("preferred_language"):
        patient["communication"] = [{"language": {"coding": [{"system": "urn:ietf:bcp:47",
                                                               "code": member["preferred_language"]}]},
                                     "preferred": True}]
    if address:
        patient["address"] = [{"use": "home", "line": [x for x in (address.get("line1"), address.get("line2")) if x],
                               "city": address.get("city"), "state": address.get("state"),
                               "postalCode": address.get("zip"), "district": address.get("county")}]
    service = referral.service
    code = [{"system": PROGRAM_SYSTEM, "code": service["program"]}]
    if service.get("cs_code"):
        code.append({"system": CS_SYSTEM, "code": service["cs_code"]})
    status = ReferralStatus(referral.status)
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest", "id": fhir_id(referral.id),
        "meta": {"lastUpdated": _iso(referral.updated_at)},
        "contained": [patient],
        "identifier": [{"system": REFERRAL_SYSTEM, "value": referral.id},
                       *({"system": i["system"], "value": i["value"]} if i.get("system") else {"value": i["value"]}
                         for i in referral.external_identifiers)],
        "status": _REQUEST_STATUS_OF.get(status, "active"),
        "intent": "order",
        "priority": "urgent" if referral.urgency == "expedited" else "routine",
        "code": {"coding": code},
        "subject": {"reference": "#patient"},
        "authoredOn": _iso(referral.created_at),
        "requester": {"identifier": {"system": NPI_SYSTEM, "value": referral.referring_npi}},
    }
    if service.get("pof_codes"):
        request["reasonCode"] = [{"coding": [{"system": POF_SYSTEM, "code": c}]} for c in service["pof_codes"]]
    if referral.cbo_organization_id:
        request["performer"] = [{"identifier": {"system": ORGANIZATION_SYSTEM, "value": referral.cbo_organization_id}}]
    if referral.notes:
        request["note"] = [{"text": referral.notes}]
    if referral.expedited_reason:
        request["extension"] = [{"url": EXT_EXPEDITED_REASON, "valueString": referral.expedited_reason}]
    model = ServiceRequest.model_validate(request)
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)
