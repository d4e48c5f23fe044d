"""The fast row-event encoding gives the same outbox rows as the validated path, byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sftp_gateway import row_encoding
from sftp_gateway.domain.tabular import Row
from sftp_gateway.row_encoding import encode_rows, member_id

from shared.bus.message import IncomingMessage, decode
from shared.contracts.gateway import FileKind, FileReceived
from shared.contracts.values import FileReference
from shared.envelope import Envelope, new_event
from shared.identity import member_id_for, member_id_secret
from shared.uow import encode_outbox_rows

MIF_VALUES: dict[str, Any] = {
    "cin": "90000001A", "mcp_member_id": "HN0000001", "last_name": "Testperson", "first_name": "Ana",
    "middle_name": "Q", "birth_date": date(1980, 1, 15), "sex": "F", "preferred_language": "Español",
    "address_line1": "100 Main St, Apt 4", "city": "Los Angeles", "state": "CA", "zip": "90001",
    "phone": "5555550001", "homeless": False, "pof_codes": ("1a", "3"), "ecm_status": "A",
    "mcp_authorization_id": "AUTH000001", "authorization_start": date(2026, 10, 1),
    "authorization_end": date(2027, 9, 30), "assigned_provider_npi": "1234567893",
    "assigned_provider_name": "Golden \"State\" Care Hub", "acuity_tier": "2", "reporting_period": "2026-10",
}
MINIMAL = {"cin": "90000002B", "last_name": "Testperson", "first_name": "Bo", "birth_date": date(1990, 2, 28)}
REFERRAL_VALUES: dict[str, Any] = {
    **MINIMAL, "referral_id": "R-1", "referral_date": date(2026, 10, 2), "referring_entity_name": "Clinic",
    "referring_entity_type": "provider", "referring_npi": "1234567893", "homeless": True, "pof_codes": ("2",),
    "requested_service": "ECM", "consent": True, "address_line1": "1 Elm", "city": "Fresno", "zip": "93701",
}


def _parent() -> Envelope[Any]:
    reference = FileReference(uri="store://sha256/" + "0" * 64, sha256="0" * 64, size=1)
    return new_event(FileReceived(file_id="fil_1", mcp_code="healthnet", kind=FileKind.MIF, file=reference,
                                  received_at=datetime.now(UTC)), subject="fil_1", source="sftp-gateway")


def _validated_rows(parent: Envelope[Any], kind: FileKind, rows: list[Row], produced: list[Any]) -> list[Any]:
    """What the validated path (contract model + Envelope + shared encoder) makes with the same ids/time."""
    model = row_encoding.model_for(kind)
    secret = member_id_secret()
    envelopes = []
    for row, out in zip(rows, produced, strict=True):
        subject = member_id_for(row.values["cin"], secret)
        data = model.model_validate(row_encoding.payload(kind, "fil_1", "healthnet", row))
        envelopes.append(Envelope[model](  # type: ignore[valid-type]
            id=out[0], type=model.event_type, schema_version=model.schema_version, time=out[5],
            source="sftp-gateway", subject=subject, member_id=subject, correlation_id=parent.correlation_id,
            causation_id=parent.id, traceparent=None, data=data))
    return [(*r[:5],) for r in encode_outbox_rows(envelopes)]


@pytest.mark.parametrize(("kind", "values"), [
    (FileKind.MIF, MIF_VALUES), (FileKind.MIF, MINIMAL), (FileKind.REFERRAL, REFERRAL_VALUES),
    (FileKind.REFERRAL, MINIMAL)])
def test_fast_rows_equal_validated_rows_byte_for_byte(kind: FileKind, values: dict[str, Any]) -> None:
    parent = _parent()
    rows = [Row(number=n + 2, values=dict(values, cin=f"{90000000 + n:08d}A"),
                extra={"Custom_Col": "x"} if n % 2 else {}) for n in range(5)]
    produced, problems = encode_rows(parent, kind, "fil_1", "healthnet", rows)
    assert problems == []
    assert [(*r[:5],) for r in produced] == _validated_rows(parent, kind, rows, produced)
    for out in produced:  # and consumers decode them with the contract
        message = IncomingMessage(topic=out[1], partition=0, offset=0, key=out[2], value=out[3],
                                  headers=tuple((k, v.encode()) for k, v in json.loads(out[4])))
        assert decode(message).data.mcp_code == "healthnet"


def test_a_first_row_the_contract_refuses_is_a_problem_and_the_rest_go_out() -> None:
    rows = [Row(number=2, values=dict(MINIMAL, birth_date="not a date")), Row(number=3, values=MINIMAL)]
    produced, problems = encode_rows(_parent(), FileKind.MIF, "fil_1", "healthnet", rows)
    assert [(p.rule, p.row, p.field) for p in problems] == [("contract", 2, "member.birth_date")]
    assert len(produced) == 1


def test_when_fast_bytes_differ_every_row_goes_through_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(row_encoding, "to_json", lambda value: b"{}")
    parent = _parent()
    rows = [Row(number=n + 2, values=dict(MIF_VALUES, cin=f"{90000000 + n:08d}A")) for n in range(3)]
    produced, problems = encode_rows(parent, FileKind.MIF, "fil_1", "healthnet", rows)
    assert problems == []
    assert [(*r[:5],) for r in produced] == _validated_rows(parent, FileKind.MIF, rows, produced)


def test_member_id_matches_the_shared_identity() -> None:
    secret = member_id_secret()
    assert member_id("90000001A", secret) == member_id_for("90000001A", secret)
    assert member_id("90000001A", b"other") == member_id_for("90000001A", b"other")
