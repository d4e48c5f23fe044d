"""Outbox rows for the row events of a tabular file, encoded without a second validation pass.

A 100,000-row MIF means 100,000 `member_information.received` envelopes. Validating each payload again with
pydantic and then serializing the model cost ~70 us a row; every value was already checked by the tabular
parser against its field type (CIN, dates, flags, POF codes, ZIP, NPI, required names), so the contract
validation repeated work and found nothing. This module builds the envelope as plain dicts in the contracts'
own field order (templates taken from the models, so additive contract fields appear with their defaults) and
serializes them with pydantic-core's JSON serializer — the engine `Envelope.to_json` uses — which gives the
same bytes as the validated path.

Byte compatibility is checked at run time, not assumed: the first row of every chunk is also built through
the validated path (`model_validate` + `Envelope`) with the same ids and time, and if the bytes differ the
whole chunk falls back to the validated path (and a warning says the fast path needs attention). Rows the
validated path refuses come back as `contract` problems, as before.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from sftp_gateway.domain.tabular import Problem, Row
from shared.bus.message import encode
from shared.contracts.base import EventData
from shared.contracts.gateway import FileKind, MemberInformationReceived, MemberReferralReceived
from shared.contracts.values import Address, MemberDemographics
from shared.envelope import Envelope, EventBatch
from shared.identity import member_id_secret
from shared.ids import uuid7
from shared.uow import OutboxRow, headers_text

log = logging.getLogger("calhub.sftp_gateway")

SOURCE = "sftp-gateway"
_ID_MARK = "00000000-0000-0000-0000-000000000000"


def _template(model: type[BaseModel]) -> dict[str, Any]:
    """Every field of `model` in declaration order (the order pydantic serializes), with its default."""
    return {name: None if info.is_required() else info.get_default(call_default_factory=True)
            for name, info in model.model_fields.items()}


_ADDRESS = _template(Address)
_MEMBER = _template(MemberDemographics)
_MIF = _template(MemberInformationReceived)
_REFERRAL = _template(MemberReferralReceived)
_ENVELOPE = _template(Envelope)


def _member(v: dict[str, Any]) -> dict[str, Any]:
    address = None
    if v.get("address_line1") and v.get("city") and v.get("zip"):
        address = {**_ADDRESS, "line1": v["address_line1"], "line2": v.get("address_line2"), "city": v["city"],
                   "state": v.get("state") or "CA", "zip": v["zip"]}
    return {**_MEMBER, "cin": v["cin"], "last_name": v["last_name"], "first_name": v["first_name"],
            "middle_name": v.get("middle_name"), "birth_date": v["birth_date"], "sex": v.get("sex"),
            "phone": v.get("phone"), "preferred_language": v.get("preferred_language"), "address": address,
            "mcp_member_id": v.get("mcp_member_id")}


def payload(kind: FileKind, file_id: str, mcp_code: str, row: Row) -> dict[str, Any]:
    """The row event's payload as a plain dict in contract field order (not validated here)."""
    v = row.values
    if kind is FileKind.MIF:
        return {**_MIF, "file_id": file_id, "row_number": row.number, "mcp_code": mcp_code, "member": _member(v),
                "homeless": v.get("homeless"), "pof_codes": v.get("pof_codes", ()),
                "ecm_status": v.get("ecm_status"), "mcp_authorization_id": v.get("mcp_authorization_id"),
                "authorization_start": v.get("authorization_start"),
                "authorization_end": v.get("authorization_end"),
                "assigned_provider_npi": v.get("assigned_provider_npi"),
                "assigned_provider_name": v.get("assigned_provider_name"), "acuity_tier": v.get("acuity_tier"),
                "reporting_period": v.get("reporting_period"), "extra": row.extra}
    return {**_REFERRAL, "file_id": file_id, "row_number": row.number, "mcp_code": mcp_code, "member": _member(v),
            "referral_id": v.get("referral_id"), "referral_date": v.get("referral_date"),
            "referring_entity_name": v.get("referring_entity_name"),
            "referring_entity_type": v.get("referring_entity_type"), "referring_npi": v.get("referring_npi"),
            "homeless": v.get("homeless"), "pof_codes": v.get("pof_codes", ()),
            "requested_service": v.get("requested_service"), "consent": v.get("consent"), "extra": row.extra}


def model_for(kind: FileKind) -> type[EventData]:
    """The row event contract of a tabular kind."""
    return MemberInformationReceived if kind is FileKind.MIF else MemberReferralReceived


def member_id(cin: str, secret: bytes) -> str:
    """`shared.identity.member_id_for` with the one-shot C HMAC (same digest, a third of the cost);
    the parser already stripped and upper-cased the CIN."""
    return "mbr_" + hmac.digest(secret, cin.encode(), "sha256").hex()[:24]


class _Chunk:
    """What every row event of one chunk shares: the event batch (time, trace context, cause), the dict
    template of its envelopes."""

    def __init__(self, parent: Envelope[Any], model: type[EventData]) -> None:
        self.model = model
        self.batch = EventBatch(source=SOURCE, parent=parent)
        self.now = self.batch.time
        self.base = {**_ENVELOPE, "type": model.event_type, "schema_version": model.schema_version,
                     "time": self.now, "source": SOURCE, "correlation_id": parent.correlation_id,
                     "causation_id": parent.id, "traceparent": self.batch.traceparent}
        self.topic = model.topic.name

    def reference(self, data: dict[str, Any], event_id: UUID, subject: str) -> Envelope[Any]:
        """The envelope of a row whose payload the contract validates (raises ValidationError when it refuses
        the row)."""
        return self.batch.event(self.model.model_validate(data), subject=subject, member_id=subject,
                                event_id=event_id)


def _problem(exc: ValidationError, row: Row) -> Problem:
    error = exc.errors()[0]
    return Problem("contract", f"the row does not fit the event contract ({error['type']})", row=row.number,
                   field=".".join(str(p) for p in error["loc"]))


def encode_rows(parent: Envelope[Any], kind: FileKind, file_id: str, mcp_code: str,
                rows: Sequence[Row]) -> tuple[list[OutboxRow], list[Problem]]:
    """Outbox rows for one chunk of good MIF or referral rows (one event each, keyed by the internal member
    id, never the CIN), caused by `parent`; rows the contract refuses come back as problems."""
    if kind not in (FileKind.MIF, FileKind.REFERRAL) or not rows:
        return [], []
    chunk = _Chunk(parent, model_for(kind))
    secret = member_id_secret()  # read once: an environment lookup per row costs more than the row
    out: list[OutboxRow] = []
    problems: list[Problem] = []
    # The header JSON of every row differs only by the event id: a template from the shared encoder.
    ids = [uuid7() for _ in rows]
    first = rows[0]
    first_id = ids[0]
    first_subject = member_id(first.values["cin"], secret)
    first_data = payload(kind, file_id, mcp_code, first)
    try:
        reference = chunk.reference(first_data, first_id, first_subject)
    except ValidationError as exc:
        problems.append(_problem(exc, first))
        return _validated(chunk, kind, file_id, mcp_code, rows[1:], ids[1:], secret, out, problems)
    message = encode(reference)
    headers = headers_text(message).replace(str(first_id), _ID_MARK)
    head, _, tail = headers.partition(_ID_MARK)
    fast = to_json({**chunk.base, "id": first_id, "subject": first_subject, "member_id": first_subject,
                    "data": first_data})
    if fast != message.value or not tail:
        log.warning("row event fast encoding differs from the contract; validating every row",
                    extra={"event_type": chunk.model.event_type})
        return _validated(chunk, kind, file_id, mcp_code, rows, ids, secret, out, problems)
    now, topic, base = chunk.now, chunk.topic, chunk.base
    append = out.append
    append((first_id, topic, message.key, message.value, head + str(first_id) + tail, now))
    for row, event_id in zip(rows[1:], ids[1:], strict=True):
        subject = member_id(row.values["cin"], secret)
        value = to_json({**base, "id": event_id, "subject": subject, "member_id": subject,
                         "data": payload(kind, file_id, mcp_code, row)})
        append((event_id, topic, subject.encode(), value, head + str(event_id) + tail, now))
    return out, problems


def _validated(chunk: _Chunk, kind: FileKind, file_id: str, mcp_code: str, rows: Sequence[Row],
               ids: Sequence[UUID], secret: bytes, out: list[OutboxRow],
               problems: list[Problem]) -> tuple[list[OutboxRow], list[Problem]]:
    """The slow, validating path: every payload through its contract model (fallback)."""
    for row, event_id in zip(rows, ids, strict=True):
        subject = member_id(row.values["cin"], secret)
        try:
            envelope = chunk.reference(payload(kind, file_id, mcp_code, row), event_id, subject)
        except ValidationError as exc:
            problems.append(_problem(exc, row))
            continue
        message = encode(envelope)
        out.append((envelope.id, message.topic, message.key, message.value,
                    headers_text(message), chunk.now))
    return out, problems
