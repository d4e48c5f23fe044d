"""What the journal reads from a message: metadata, dead-letter facts, references, and no PHI in indexed fields."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from ops.domain.journal import journal_record, references_in, safe_identifier, trace_id_of
from ops.testkit import authorization_requested, messages, referral_received

from shared.bus.base import dead_letter_message
from shared.bus.message import IncomingMessage, PermanentError
from shared.bus.replay import replay_message

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def incoming(message, partition=0, offset=0) -> IncomingMessage:
    return IncomingMessage(topic=message.topic, partition=partition, offset=offset, key=message.key,
                           value=message.value, headers=message.headers)


def test_event_metadata_is_read_from_the_envelope() -> None:
    event = referral_received()
    record = journal_record("referrals.referral.v1", 3, 7, event.to_json(), incoming(messages(event)[0]).headers)
    assert (record.event_id, record.event_type, record.subject, record.source) == (
        event.id, "referral.received", "ref_0001", "referrals")
    assert record.member_id == event.member_id and record.member_id.startswith("mbr_")
    assert record.correlation_id == event.id and record.causation_id is None
    assert record.mcp_code == "healthnet" and record.occurred_at == event.time
    assert (record.partition, record.offset, record.position) == (3, 7, "referrals.referral.v1/3/7")
    assert record.dead_letter is None and record.data is not None


def test_references_name_aggregate_ids_but_never_members_or_organizations() -> None:
    parent = referral_received()
    event = authorization_requested(parent)
    record = journal_record("authorizations.authorization.v1", 0, 0, event.to_json(), ())
    assert dict(record.references) == {"authorization_id": "auth_0001", "referral_id": "ref_0001"}
    data = {"claim_id": "clm_1", "mcp_member_id": "M123", "cbo_organization_id": "org_1", "note_id": "90000001A",
            "file_id": "has space", "count": 3}
    assert references_in(data) == (("claim_id", "clm_1"),)


@pytest.mark.parametrize(("value", "expected"), [
    ("ref_0001", "ref_0001"),
    ("90000001A", None),                 # a CIN
    ("90000001A22345", None),            # a BIC card id (CIN + check digit + issue date)
    ("ref 1", None),                     # spaces: free text, not an id
    ("", None),
    (12, None),
    ("x" * 201, None),
])
def test_only_id_shaped_values_reach_indexes(value: object, expected: str | None) -> None:
    assert safe_identifier(value) == expected


def test_a_cin_as_subject_or_member_id_is_not_journaled_in_indexed_columns() -> None:
    envelope = json.loads(referral_received().to_json())
    envelope["subject"] = "90000001A"
    envelope["member_id"] = "90000001A"
    record = journal_record("referrals.referral.v1", 0, 0, json.dumps(envelope).encode(), ())
    assert record.subject is None and record.member_id is None


@pytest.mark.parametrize(("traceparent", "expected"), [
    (TRACEPARENT, "0af7651916cd43dd8448eb211c80319c"),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
    ("garbage", None),
    (None, None),
])
def test_trace_id_comes_from_a_valid_traceparent(traceparent: str | None, expected: str | None) -> None:
    assert trace_id_of(traceparent) == expected


def test_a_message_that_is_not_json_is_still_journaled_by_position() -> None:
    first = journal_record("referrals.referral.v1", 1, 5, b"not json {", ())
    again = journal_record("referrals.referral.v1", 1, 5, b"not json {", ())
    elsewhere = journal_record("referrals.referral.v1", 1, 6, b"not json {", ())
    assert first.event_id is None and first.event_type is None and first.data is None
    assert first.entry_key == again.entry_key != elsewhere.entry_key


def test_redelivery_has_the_same_key_and_replays_and_dead_letters_have_their_own() -> None:
    event = referral_received()
    original = incoming(messages(event)[0], partition=2, offset=9)
    delivered = journal_record(original.topic, 2, 9, original.value, original.headers)
    redelivered = journal_record(original.topic, 4, 0, original.value, original.headers)  # restarted bus
    dead = dead_letter_message(original, "claims", PermanentError("boom"), 1)
    dead_in = IncomingMessage(topic=dead.topic, partition=2, offset=0, key=dead.key, value=dead.value,
                              headers=dead.headers)
    dead_record = journal_record(dead_in.topic, 2, 0, dead_in.value, dead_in.headers)
    replay = replay_message(dead_in)
    replay_record = journal_record(replay.topic, 2, 10, replay.value, replay.headers)
    assert delivered.entry_key == redelivered.entry_key
    assert len({delivered.entry_key, dead_record.entry_key, replay_record.entry_key}) == 3
    assert replay_record.replayed_from == "referrals.referral.v1.dlq/2/0"


def test_dead_letter_facts_come_from_the_bus_headers() -> None:
    event = referral_received()
    original = incoming(messages(event)[0], partition=1, offset=4)
    dead = dead_letter_message(original, "authorizations", PermanentError("schema validation failed: x"), 3)
    record = journal_record(dead.topic, 0, 0, dead.value, dead.headers)
    facts = record.dead_letter
    assert facts is not None and record.is_dead_letter
    assert (facts.consumer_group, facts.error_type, facts.attempts) == ("authorizations", "PermanentError", 3)
    assert (facts.original_topic, facts.original_partition, facts.original_offset) == (
        "referrals.referral.v1", 1, 4)
    assert facts.error.startswith("schema validation failed")
    assert record.event_id == event.id


def test_a_dead_letter_without_headers_is_attributed_to_its_topic() -> None:
    record = journal_record("claims.claim.v1.dlq", 0, 0, b"{}", ())
    assert record.dead_letter is not None
    assert record.dead_letter.original_topic == "claims.claim.v1"
    assert record.dead_letter.consumer_group == "unknown"


def test_event_id_falls_back_to_the_header() -> None:
    event_id = uuid4()
    record = journal_record("x.y.v1", 0, 0, b"[]", (("calhub-event-id", str(event_id).encode()),
                                                    ("calhub-event-type", b"x.happened")))
    assert record.event_id == event_id and record.event_type == "x.happened"
